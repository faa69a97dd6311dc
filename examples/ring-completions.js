// The Ring at its lowest level: queue, submit and wait in one io_uring_enter,
// read (userData, res, flags, bufferId) tuples, hand buffers back.
const { Ring, CompletionFlags, sys } = require('iomux');

const ring = new Ring({ bufferCount: 4, bufferSize: 64 });
const [a, b] = sys.socketpair();
ring.recv(a, 1);                                  // multishot recv into the buffer ring
ring.timeout(20, 2);                              // completes with -ETIME after 20 ms
sys.write(b, Buffer.from('ping'));
let done = false;
while (!done) {
  const n = ring.submitAndWait(1, 1000);          // one syscall: submit + wait
  for (let i = 0; i < n; i++) {
    const c = ring.completions;
    const ud = c[4 * i] >>> 0, res = c[4 * i + 1], flags = c[4 * i + 2], bid = c[4 * i + 3];
    if (ud === 1) {
      console.log(`recv: ${res} bytes in buffer ${bid}: "${Buffer.from(ring.buffer(bid, res))}", more: ${(flags & CompletionFlags.MORE) !== 0}`);
      ring.returnBuffer(bid);
      ring.send(a, Buffer.from('pong'), 3);        // the Buffer stays referenced until its completion
    } else if (ud === 2) {
      console.log(`timeout: res ${res} (-ETIME)`);
      done = true;
    } else console.log(`send: ${res} bytes`);
  }
}
const buf = Buffer.alloc(8);
console.log(`peer reads: "${buf.subarray(0, sys.read(b, buf))}"`);
console.log(ring.stats);
ring.close(); sys.close(a); sys.close(b);
