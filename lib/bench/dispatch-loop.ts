// The dispatch workload on the EventLoop itself: one watcher per pair, the
// read-then-chain-a-write callback of libevent's bench.c, and runOnce(0)
// passes (libevent's EVLOOP_ONCE | EVLOOP_NONBLOCK) until every byte fired
// has been read. This is the figure the dispatch target is about.
import { ErrnoError } from '../errors';
import { EventLoop, type Watcher } from '../loop';
import { Interest } from '../poller';
import * as sys from '../sys';
import { native } from '../native';
import { registerDispatchRunner, type DispatchRunner } from './dispatch';

const now = () => process.hrtime.bigint();
const cpuNow: () => number = native.bench.threadCpuNs;

export const eventLoopRunner: DispatchRunner = ({ backend, fds, n, a, w, capacity }) => {
  const loop = new EventLoop(backend, { capacity });
  const ch = new Uint8Array(1);
  const e = Uint8Array.of(101);
  const space = Math.floor(n / a);
  const maxPasses = 100 * (a + w) + 100000;
  let count = 0;
  let fired = 0;
  let writes = 0;
  let wrote = 0;
  const watchers: Watcher[] = [];

  const onRead = (idx: number) => () => {
    if (sys.read(fds[2 * idx], ch) === 1) count++;
    if (writes > 0) {
      let next = idx + 1;
      if (next >= n) next -= n;
      sys.write(fds[2 * next + 1], e);
      writes--;
      wrote++;
      fired++;
    }
  };
  const callbacks = Array.from({ length: n }, (_, i) => onRead(i));

  return {
    run() {
      const c0 = cpuNow();
      const t0 = now();
      try {
        for (let i = 0; i < n; i++) watchers.push(loop.watch(fds[2 * i], Interest.READABLE, callbacks[i]));
        const t1 = now();
        const c1 = cpuNow();
        count = 0;
        fired = 0;
        wrote = 0;
        writes = w;
        for (let i = 0; i < a; i++, fired++) sys.write(fds[2 * (i * space) + 1], e);
        const c2 = cpuNow();
        const t2 = now();
        let passes = 0;
        do {
          loop.runOnce(0);
          if (++passes > maxPasses) throw new ErrnoError(11, `bench dispatch (eventloop, ${backend})`, 'did not converge');
        } while (count !== fired);
        const t3 = now();
        const c3 = cpuNow();
        return {
          setupUs: Number(t1 - t0) / 1e3,
          setupCpuUs: (c1 - c0) / 1e3,
          dispatchUs: Number(t3 - t2) / 1e3,
          dispatchCpuUs: (c3 - c2) / 1e3,
          reads: count,
          writes: wrote,
          passes,
        };
      } finally {
        for (const wt of watchers.splice(0)) wt.close();
      }
    },
    close() {
      loop.close();
    },
  };
};

registerDispatchRunner('eventloop', eventLoopRunner, 'ts', 'the algorithm on the TypeScript EventLoop: one watcher per pair, runOnce(0) passes');
