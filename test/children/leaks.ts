// Leak checks that need --expose-gc, run by test/leaks.test.ts in a child.
//   leaks.ts rss <backend> <cycles>       fds and RSS before/after <cycles> Pollers created and closed (after as many to warm up)
//   leaks.ts gc <backend> <count>         fds after <count> Pollers dropped without close() and collected
//   leaks.ts loop-rss <backend> <cycles>  the same for EventLoops (a watcher, a timer, the wakeup fd, one
//                                         iteration; every 10th attached to Node's loop and detached)
//   leaks.ts loop-gc <backend> <count>    EventLoops with a watcher and a wakeup fd, dropped without close()
//   leaks.ts ring-rss - <cycles>          the same for Rings (a buffer ring, a recv, a nop and a timeout completed)
//   leaks.ts ring-gc - <count>            Rings with a recv pending, dropped without close()
// Prints one JSON line.
import * as fs from 'node:fs';
import { type BackendName } from '../../lib/poller';
import { newPoller, newRing } from '../helpers/backends';
import * as sys from '../../lib/sys';
import { EventLoop } from '../../lib/loop';

const [mode, backend, countArg] = process.argv.slice(2);
const count = Number(countArg);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const fdCount = () => fs.readdirSync('/proc/self/fd').length;
const [r, w] = sys.pipe();
sys.write(w, Buffer.from('x')); // r stays readable: every wait(0) has an event

const [idleA, idleB] = sys.socketpair(); // a Ring's recv on it stays pending
let n = 0;
const noop = () => {};

function pollerCycle(close: boolean): void {
  const p = newPoller(backend as BackendName);
  p.add(r, 1);
  p.wait(0);
  if (close) p.close();
}

function loopCycle(close: boolean): void {
  const loop = new EventLoop(newPoller(backend as BackendName));
  loop.watch(r, 1, noop);
  loop.setTimeout(noop, 60_000);
  void loop.wakeupFd; // the eventfd (or pipe) other threads wake it with
  if (close && n % 10 === 0) {
    loop.attach(); // embedded: uv_poll on the backend's fd, or a helper thread (select, poll)
    loop.detach();
  }
  loop.runOnce(0);
  n++;
  if (close) loop.close();
}

function ringCycle(close: boolean): void {
  const ring = newRing({ entries: 8, bufferCount: 8, bufferSize: 256, capacity: 8 });
  ring.recv(idleA, 1);
  if (close) {
    ring.nop(2);
    ring.timeout(0, 3);
    ring.submitAndWait(2, 1000);
    ring.close();
  } else {
    ring.submit();
  }
}

const cycle = mode.startsWith('loop') ? loopCycle : mode.startsWith('ring') ? ringCycle : pollerCycle;

async function settle(rounds = 5): Promise<void> {
  // Finalizers of wrapped native objects run after the collection, from the event loop.
  for (let i = 0; i < rounds; i++) {
    gc!();
    await new Promise((res) => setImmediate(res));
  }
}

async function main(): Promise<void> {
  if (mode.endsWith('rss')) {
    // Warm-up first (Pollers: as many cycles as are measured; EventLoops and
    // Rings: 5,000): the first thousands grow RSS by tens of MB (V8 heap and
    // ArrayBuffer allocator sizing), after which it stays flat; a leak keeps
    // growing. Everything is collected every 1,000 cycles: V8 does not see
    // the native memory of these objects, so otherwise the garbage between
    // two collections, and the RSS the allocator keeps afterwards, depends on
    // when V8 happens to collect (measured: RSS 186 MB after 10,000 unsettled
    // EventLoops, 510 MB after 40,000, the JS heap at 4 MB throughout;
    // 10,000 unsettled select Pollers once grew RSS by 78 MB under ASan, 2-4 MB
    // in every other run).
    const chunk = 1000;
    const run = async (cycles: number) => {
      for (let i = 0; i < cycles; i++) {
        cycle(true);
        if ((i + 1) % chunk === 0) await settle(1);
      }
    };
    await run(mode === 'rss' ? count : Math.min(count, 5000));
    await settle();
    const fds0 = fdCount();
    const rss0 = process.memoryUsage().rss;
    const t0 = Date.now();
    await run(count);
    const ms = Date.now() - t0;
    await settle();
    const rss1 = process.memoryUsage().rss;
    console.log(JSON.stringify({ mode, backend, cycles: count, ms, fds0, fds1: fdCount(), rss0, rss1, growth: rss1 - rss0 }));
  } else {
    await settle();
    const fds0 = fdCount();
    for (let i = 0; i < count; i++) cycle(false);
    const fdsLive = fdCount();
    await settle();
    console.log(JSON.stringify({ mode, backend, dropped: count, fds0, fdsLive, fds1: fdCount() }));
  }
}
main();
