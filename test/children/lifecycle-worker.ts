// Worker thread of test/children/lifecycle.ts: Pollers of every backend that
// are never closed, then the thread ends as workerData.mode says.
import { parentPort, workerData } from 'node:worker_threads';
import { Poller, type BackendName } from '../../lib/poller';
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
