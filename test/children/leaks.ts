// Leak checks that need --expose-gc, run by test/leaks.test.ts in a child.
//   leaks.ts rss <backend> <cycles>  fds and RSS before/after <cycles> Pollers created and closed (after as many to warm up)
//   leaks.ts gc <backend> <count>    fds after <count> Pollers dropped without close() and collected
// Prints one JSON line.
import * as fs from 'node:fs';
import { type BackendName } from '../../lib/poller';
import { newPoller } from '../helpers/backends';
import * as sys from '../../lib/sys';

const [mode, backend, countArg] = process.argv.slice(2);
const count = Number(countArg);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

const fdCount = () => fs.readdirSync('/proc/self/fd').length;
const [r, w] = sys.pipe();
sys.write(w, Buffer.from('x')); // r stays readable: every wait(0) has an event

function cycle(close: boolean): void {
  const p = newPoller(backend as BackendName);
  p.add(r, 1);
  p.wait(0);
  if (close) p.close();
}

async function settle(): Promise<void> {
  // Finalizers of wrapped native objects run after the collection, from the event loop.
  for (let i = 0; i < 5; i++) {
    gc!();
    await new Promise((res) => setImmediate(res));
  }
}

async function main(): Promise<void> {
  if (mode === 'rss') {
    // Warm-up with as many cycles as are measured: the first 10,000 grow RSS by
    // about 40 MB on any backend (V8 heap and ArrayBuffer allocator sizing),
    // after which it stays flat; a leak keeps growing.
    for (let i = 0; i < count; i++) cycle(true);
    await settle();
    const fds0 = fdCount();
    const rss0 = process.memoryUsage().rss;
    const t0 = Date.now();
    for (let i = 0; i < count; i++) cycle(true);
    const ms = Date.now() - t0;
    await settle();
    const rss1 = process.memoryUsage().rss;
    console.log(JSON.stringify({ backend, cycles: count, ms, fds0, fds1: fdCount(), rss0, rss1, growth: rss1 - rss0 }));
  } else {
    await settle();
    const fds0 = fdCount();
    for (let i = 0; i < count; i++) cycle(false);
    const fdsLive = fdCount();
    await settle();
    console.log(JSON.stringify({ backend, pollers: count, fds0, fdsLive, fds1: fdCount() }));
  }
}
main();
