// Worker thread for the close-on-exec race test: creates and closes every kind
// of fd iomux makes, as fast as it can, until told to stop.
import { parentPort, workerData } from 'node:worker_threads';
import { Poller, type BackendName } from '../../lib/poller';
import * as sys from '../../lib/sys';

const stop = new Int32Array(workerData.stop as SharedArrayBuffer);
const backends = workerData.backends as BackendName[];
const listener = sys.listenTcp('127.0.0.1', 0);
const port = sys.getsockname(listener).port!;
let n = 0;
parentPort!.postMessage('started');
while (Atomics.load(stop, 0) === 0) {
  const [a, b] = sys.socketpair();
  const [r, w] = sys.pipe({ nonblocking: n % 2 === 0 });
  const s = sys.socket(n % 3 === 0 ? 'ipv6' : 'ipv4');
  const c = sys.socket('ipv4');
  sys.connect(c, '127.0.0.1', port);
  const acc = sys.accept(listener);
  const e = sys.eventfd();
  const d = sys.dup(a);
  for (const fd of [a, b, r, w, s, c, e, d]) sys.close(fd);
  if (acc >= 0) sys.close(acc);
  if (n % 16 === 0) new Poller(backends[n % backends.length]).close();
  n++;
}
sys.close(listener);
parentPort!.postMessage(n);
