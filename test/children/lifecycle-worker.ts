// Worker thread of test/children/lifecycle.ts: Pollers, EventLoops (with a
// watcher, a timer and the wakeup fd; one attached to Node's loop through
// uv_poll and one through a helper thread where select is there) of every
// backend, and a Ring with a recv and a timeout pending, none of them ever
// closed; then the thread ends as workerData.mode says.
import { parentPort, workerData } from 'node:worker_threads';
import { Poller, type BackendName } from '../../lib/poller';
import { liveLoops, livePollers, liveRings } from './live-objects';

const { mode, backends, wake } = workerData as { mode: string; backends: BackendName[]; wake?: number };
const live = livePollers(backends);
const loops = liveLoops(backends, ['epoll', 'select']);
const rings = liveRings();
const fds = [...live.fds, ...loops.fds, ...rings.fds];
(globalThis as { keep?: unknown }).keep = { live, loops, rings };
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
