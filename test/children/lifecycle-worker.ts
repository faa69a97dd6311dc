// Worker thread of test/children/lifecycle.ts: Pollers, EventLoops (with a
// watcher, a timer and the wakeup fd; one attached to Node's loop through
// uv_poll and one through a helper thread where select is there) of every
// backend, and a Ring with a recv and a timeout pending, none of them ever
// closed; then the thread ends as workerData.mode says.
import { parentPort, workerData } from 'node:worker_threads';
import { EventLoop } from '../../lib/loop';
import { Poller, type BackendName } from '../../lib/poller';
import { Ring } from '../../lib/ring';
import * as sys from '../../lib/sys';

const { mode, backends, wake } = workerData as { mode: string; backends: BackendName[]; wake?: number };
const fds: number[] = [];
const pollers: Poller[] = [];
for (const name of backends) {
  const p = new Poller(name);
  const [r, w] = sys.pipe();
  const [idle, idleW] = sys.pipe();
  sys.write(w, Buffer.from('x'));
  p.add(r, 1);
  p.add(idle, 1);
  p.wait(0);
  pollers.push(p);
  fds.push(r, w, idle, idleW);
}
const loops: EventLoop[] = [];
for (const name of backends) {
  const loop = new EventLoop(name);
  const [r, w] = sys.pipe();
  sys.write(w, Buffer.from('x'));
  loop.watch(r, 1, () => {});
  loop.setTimeout(() => {}, 60_000);
  void loop.wakeupFd;
  loop.runOnce(0);
  loops.push(loop);
  fds.push(r, w);
}
// Attached: unref'd, so that they do not keep the thread alive by themselves.
for (const name of backends.filter((b) => b === 'epoll' || b === 'select')) {
  const loop = new EventLoop(name);
  const [r, w] = sys.pipe();
  loop.watch(r, 1, () => {}).unref();
  void loop.wakeupFd;
  loop.attach();
  loops.push(loop);
  fds.push(r, w);
}
const rings: Ring[] = [];
if (Ring.probe().available) {
  const ring = new Ring({ entries: 8, bufferCount: 8, bufferSize: 256 });
  const [a, b] = sys.socketpair();
  ring.recv(a, 1);
  ring.timeout(60_000, 2);
  ring.submit();
  rings.push(ring);
  fds.push(a, b);
}
(globalThis as { keep?: unknown }).keep = { pollers, loops, rings };
parentPort!.postMessage({ fds });

if (mode === 'exit') process.exit(0);
if (mode === 'loop') {
  // Finite waits: terminate() and process.exit() take effect when one returns.
  const idle = new Poller(backends[backends.length - 1]);
  idle.add(fds[2], 1);
  for (;;) idle.wait(20);
}
if (mode === 'blocked') {
  const p = new Poller(backends[backends.length - 1]);
  p.add(wake!, 1);
  p.wait(-1);
}
// mode 'return': the script ends, the Pollers are still open
