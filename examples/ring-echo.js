// A proactor echo server on io_uring: multishot accept, multishot recv into
// the ring's buffers, sends from a queue. Three clients in the same Ring.
const { Ring, RingTcpServer, ringConnect } = require('iomux');

const ring = new Ring();                          // 256 SQEs, 256 × 16 KiB receive buffers
const server = new RingTcpServer(ring, { port: 0 });   // 127.0.0.1, any free port
server.onconnection = (conn) => {
  conn.ondata = (chunk) => conn.write(chunk);     // chunk: a view into ring.buffers
  conn.onend = () => conn.end();
};

let open = 3;
for (let i = 0; i < 3; i++) {
  const c = ringConnect(ring, server.address.port);
  let reply = '';
  c.ondata = (chunk) => { reply += Buffer.from(chunk); if (reply.length === 7) c.end(); };
  c.onclose = () => { console.log(`client ${i}: ${reply}`); if (--open === 0) server.close(); };
  c.write(`hello ${i}`);
}
ring.run();                                       // owns the thread until nothing is pending
const s = ring.stats;
console.log(`${s.reaped} completions, ${s.submitted} SQEs, ${s.enters} io_uring_enter calls`);
ring.close();
