// Lifecycle scenarios, each in its own process (run by test/lifecycle.test.ts).
//   lifecycle.ts <mode>   prints one JSON line, or exits as the mode says.
// Modes with worker threads run test/children/lifecycle-worker.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { EventLoop } from '../../lib/loop';
import type { BackendName } from '../../lib/poller';
import { Ring } from '../../lib/ring';
import * as sys from '../../lib/sys';
import { available } from '../helpers/backends';
import { liveLoops, livePollers as pollersOf, liveRings } from './live-objects';

const mode = process.argv[2];
const fdCount = () => fs.readdirSync('/proc/self/fd').length;
const REGISTER = path.join(__dirname, '..', 'helpers', 'ts-register.cjs');
const WORKER = path.join(__dirname, 'lifecycle-worker.ts');

function startWorker(workerMode: string, extra: Record<string, unknown> = {}): Worker {
  return new Worker(`require(${JSON.stringify(REGISTER)}); require(${JSON.stringify(WORKER)});`, {
    eval: true,
    workerData: { mode: workerMode, backends: available, ...extra },
  });
}

/** Pollers of every backend, watching pipes, never closed. */
const livePollers = () => pollersOf(available as BackendName[]);

/** EventLoops of every backend (one attached, unref'd) and a Ring, with work pending, never closed. */
function liveLoopsAndRings(): { loops: EventLoop[]; rings: Ring[] } {
  return { loops: liveLoops(available as BackendName[], ['epoll']).loops, rings: liveRings().rings };
}

async function workerExits(workerMode: string): Promise<void> {
  const before = fdCount();
  const w = startWorker(workerMode);
  let fds: number[] = [];
  let whileAlive = 0;
  w.on('message', (m: { fds: number[] }) => {
    fds = m.fds;
    whileAlive = fdCount();
    if (workerMode === 'loop') setTimeout(() => void w.terminate(), 100);
  });
  const t0 = Date.now();
  const code = await new Promise<number>((res) => w.on('exit', res));
  const exitMs = Date.now() - t0;
  for (const fd of fds) sys.close(fd); // the pipes are plain fds: the worker handed them over
  console.log(JSON.stringify({ mode: workerMode, code, before, whileAlive, after: fdCount(), exitMs }));
}

async function main(): Promise<void> {
  switch (mode) {
    case 'worker-return':
      return workerExits('return');
    case 'worker-exit':
      return workerExits('exit');
    case 'worker-terminate':
      return workerExits('loop');
    case 'main-exit-live': {
      livePollers();
      console.log('exiting with live Pollers');
      process.exit(0);
    }
    // falls through (unreachable)
    case 'main-natural-live': {
      const live = livePollers();
      (globalThis as { keep?: unknown }).keep = live; // still referenced at exit
      console.log('ending with live Pollers');
      return;
    }
    case 'main-exit-live-loops': {
      livePollers();
      liveLoopsAndRings();
      console.log('exiting with live EventLoops and Rings');
      process.exit(0);
    }
    // falls through (unreachable)
    case 'main-natural-live-loops': {
      (globalThis as { keep?: unknown }).keep = [livePollers(), liveLoopsAndRings()];
      console.log('ending with live EventLoops and Rings');
      return;
    }
    case 'main-exit-in-loop-run': {
      // process.exit() from a callback of an owned loop that is running (run()).
      const live = liveLoopsAndRings();
      const loop = new EventLoop('epoll');
      const [r, w] = sys.pipe();
      loop.watch(r, 1, () => {
        console.log('exiting from a callback of a running EventLoop');
        process.exit(0);
      });
      loop.setTimeout(() => sys.write(w, Buffer.from('x')), 20);
      (globalThis as { keep?: unknown }).keep = live;
      void loop.run();
      return;
    }
    case 'main-exit-in-ring-run': {
      // process.exit() from the completion callback of ring.run().
      const live = liveLoopsAndRings();
      (globalThis as { keep?: unknown }).keep = live;
      if (!Ring.probe().available) {
        console.log('exiting from a ring.run() callback (no io_uring here: nothing to run)');
        process.exit(0);
      }
      const ring = new Ring({ entries: 8, bufferCount: 8, bufferSize: 256 });
      const [a] = sys.socketpair();
      ring.recv(a, 1); // stays pending
      ring.timeout(20, 7);
      ring.run((n) => {
        for (let i = 0; i < n; i++) {
          if (ring.completions[4 * i] === 7) {
            console.log('exiting from a ring.run() callback');
            process.exit(0);
          }
        }
      });
      console.log('ring.run() returned: unexpected');
      process.exit(3);
    }
    // falls through (unreachable)
    case 'main-exit-worker-looping': {
      const w = startWorker('loop');
      w.on('message', () => {
        console.log('exiting while a worker waits in a loop');
        process.exit(0);
      });
      return;
    }
    case 'main-exit-worker-blocked-woken': {
      // The pattern for a worker blocked in wait(-1): something it watches
      // must become ready, e.g. an eventfd written from the 'exit' handler.
      const efd = sys.eventfd();
      const w = startWorker('blocked', { wake: efd });
      process.on('exit', () => {
        const one = Buffer.alloc(8);
        one.writeBigUInt64LE(1n);
        sys.write(efd, one);
      });
      w.on('message', () => {
        console.log('exiting while a worker is blocked in wait(-1)');
        setTimeout(() => process.exit(0), 50);
      });
      return;
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}
main();
