// Timers, immediates, an fd watcher and `await` inside callbacks, in owned mode.
//   node examples/loop-basics.js [backend]
const { EventLoop, Interest, sys } = require('iomux');

const loop = new EventLoop(process.argv[2] || 'epoll');
const t0 = loop.now();
const log = (what) => console.log(`${(loop.now() - t0).toFixed(1).padStart(6)} ms  ${what}`);

const [r, w] = sys.pipe(); // non-blocking, close-on-exec
const buf = Buffer.alloc(64);
const watcher = loop.watch(r, Interest.READABLE, async (fd, events) => {
  const n = sys.read(fd, buf);
  log(`readable (events=${events}): ${JSON.stringify(buf.toString('utf8', 0, n))}`);
  await Promise.resolve(); // promise jobs run between iterations, before the next wait
  log('after await in the callback');
});

loop.setTimeout(() => log('timeout 30 ms'), 30);
loop.setTimeout(() => sys.write(w, Buffer.from('hello')), 10);
const iv = loop.setInterval(() => {
  log('interval 15 ms');
  if (loop.stats.timersFired >= 4) loop.clearTimer(iv);
}, 15);
loop.setImmediate(() => log('immediate'));
loop.setTimeout(() => {
  watcher.close(); // unregister first, then close the fds
  sys.close(r);
  sys.close(w);
  log('closed the pipe; nothing left: run() resolves');
}, 50);

loop.run().then(() => {
  const s = loop.stats;
  console.log(`${s.iterations} iterations, ${s.eventsDelivered} events, ${s.timersFired} timers,`,
    `${(s.blockedNs / 1e6).toFixed(1)} ms blocked in ${loop.backend}, ${(s.callbackNs / 1e6).toFixed(1)} ms between waits`);
});
