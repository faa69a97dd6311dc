// Sends `count` messages over `conns` connections to an echo server and checks every byte.
//   node examples/echo-client.js [port] [conns] [count] [backend]
const crypto = require('node:crypto');
const { EventLoop, connectTcp } = require('iomux');

const [port = '7000', conns = '10', count = '100', backend = 'epoll'] = process.argv.slice(2);
const loop = new EventLoop(backend);
let verified = 0;
let bytes = 0;
for (let id = 0; id < Number(conns); id++) {
  const c = connectTcp(loop, Number(port));
  let sent = 0;
  let expected;
  let got = [];
  let have = 0;
  const send = () => {
    expected = crypto.randomBytes(1 + crypto.randomInt(4096));
    got = [];
    have = 0;
    c.write(expected);
  };
  c.onconnect = send;
  c.ondata = (chunk) => {
    got.push(Buffer.from(chunk)); // chunks are reused after the callback: copy
    have += chunk.length;
    if (have < expected.length) return;
    if (!Buffer.concat(got).equals(expected)) throw new Error(`connection ${id}: echo differs`);
    verified++;
    bytes += have;
    if (++sent < Number(count)) send();
    else c.end();
  };
  c.onerror = (err) => console.error(`connection ${id}: ${err.message}`);
}
const t0 = loop.now();
loop.run().then(() => {
  const ms = loop.now() - t0;
  console.log(`${verified} messages (${bytes} bytes) echoed byte-for-byte over ${conns} connections in ${ms.toFixed(0)} ms`);
});
