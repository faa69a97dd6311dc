// A worker thread hands results to a loop that is blocked in its multiplexer:
// it needs only the number of the loop's wakeup fd.
//   node examples/worker-wakeup.js [backend]
const { Worker } = require('node:worker_threads');
const { EventLoop } = require('iomux');

const loop = new EventLoop(process.argv[2] || 'epoll');
const results = new Int32Array(new SharedArrayBuffer(4 * 4)); // [count, r1, r2, r3]
loop.onwakeup = () => {
  const n = Atomics.load(results, 0);
  console.log(`woken: ${n} result(s) so far: ${Array.from(results.subarray(1, 1 + n)).join(', ')}`);
  if (n === 3) loop.stop();
};
const worker = new Worker(
  `const { workerData: { fd, results } } = require('node:worker_threads');
   const { EventLoop } = require('iomux');
   for (let i = 1; i <= 3; i++) {
     Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30); // "work"
     results[i] = i * i;
     Atomics.store(results, 0, i);
     EventLoop.wake(fd); // write(2) on an eventfd (a pipe elsewhere): any thread may
   }`,
  { eval: true, workerData: { fd: loop.wakeupFd, results } },
);
loop.run().then(() => {
  console.log(`stopped after ${loop.stats.wakeups} wakeups, ${loop.stats.iterations} iterations`);
  loop.close();
  return worker.terminate();
});
