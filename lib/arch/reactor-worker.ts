// One reactor of multi-reactor (multi-reactor.ts), in a worker_thread: its own
// EventLoop owning the thread, its own SO_REUSEPORT listener on the shared port
// (or the one listening socket of the process, registered with
// EPOLLEXCLUSIVE), counters in shared memory. The main thread stops it by
// setting ctl[0] (1 graceful, 2 cut now) and writing to its eventfd.
import { parentPort, workerData } from 'node:worker_threads';
import { native } from '../native';
import { EventLoop } from '../loop';
import { Interest, type BackendName } from '../poller';
import * as sys from '../sys';
import { COUNTERS, ReactorCore } from './reactor-core';
import type { LabProtocol } from './types';

export interface ReactorWorkerData {
  id: number;
  protocol: LabProtocol;
  host: string;
  port: number;
  backend: BackendName;
  edge: boolean;
  /** The shared listening socket (EPOLLEXCLUSIVE), or -1: make an SO_REUSEPORT listener of its own. */
  listenFd: number;
  backlog: number;
  graceMs: number;
  /** Float64Array of COUNTERS per worker. */
  counters: SharedArrayBuffer;
  /** Int32Array: [0] 0 run, 1 stop gracefully, 2 cut every connection. */
  ctl: SharedArrayBuffer;
  /** An eventfd owned by the main thread: written after ctl changes. */
  wakeFd: number;
}

function main(d: ReactorWorkerData): void {
  const port = parentPort!;
  const loop = new EventLoop(d.backend);
  const counters = new Float64Array(d.counters, d.id * COUNTERS * 8, COUNTERS);
  const core = new ReactorCore({ loop, protocol: d.protocol, edge: d.edge, counters, graceMs: d.graceMs });
  let fd = -1;
  try {
    if (d.listenFd >= 0) {
      core.listen(d.listenFd, { owned: false, exclusive: true });
    } else {
      fd = sys.listenTcp(d.host, d.port, { backlog: d.backlog, reusePort: true });
      core.listen(fd, { owned: true });
    }
  } catch (err) {
    if (fd >= 0) sys.close(fd);
    loop.close();
    const e = err as Error & { code?: string };
    port.postMessage({ type: 'error', message: e.message, code: e.code });
    return;
  }
  const ctl = new Int32Array(d.ctl);
  const drain = new Uint8Array(8);
  const wake = loop.watch(d.wakeFd, Interest.READABLE, () => {
    native.sys.read(d.wakeFd, drain, 0, 8);
    const s = Atomics.load(ctl, 0);
    if (s >= 1) void core.shutdown();
    if (s >= 2) core.destroyAll();
  });
  core.onstopped = () => loop.stop();
  port.postMessage({ type: 'ready' });
  loop.run().then(
    () => {
      wake.close();
      loop.close();
    },
    (err: Error) => {
      // fds are the process's, not the thread's: release them before leaving.
      core.destroyAll();
      void core.shutdown();
      wake.close();
      loop.close();
      port.postMessage({ type: 'error', message: err && err.stack ? err.stack : String(err) });
    },
  );
}

main(workerData as ReactorWorkerData);
