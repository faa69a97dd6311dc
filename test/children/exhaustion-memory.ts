// Run by test/exhaustion.test.ts: lowers this process's RLIMIT_AS (prlimit
// --pid, from outside, since Node cannot call setrlimit) to what it maps now
// plus 512 MiB, then asks for Rings, Pollers and EventLoops that do not fit.
// Each call must return or throw ErrnoError (ENOMEM) / RangeError; afterwards
// small ones must still work. Prints one JSON line.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { ErrnoError } from '../../lib/errors';
import { EventLoop } from '../../lib/loop';
import { Poller, backends } from '../../lib/poller';
import { Ring } from '../../lib/ring';
import * as sys from '../../lib/sys';

const vm = Number(/\nVmSize:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'latin1'))![1]) * 1024;
const limit = vm + 512 * 1024 * 1024;
execFileSync('prlimit', ['--pid', String(process.pid), `--as=${limit}:${limit}`]);

const results: Array<{ what: string; outcome: string }> = [];
function attempt<T>(what: string, f: () => T): T | null {
  try {
    const v = f();
    results.push({ what, outcome: 'ok' });
    return v;
  } catch (err) {
    if (err instanceof ErrnoError) results.push({ what, outcome: `ErrnoError ${err.code} (${err.syscall}): ${err.message}` });
    else if (err instanceof RangeError) results.push({ what, outcome: `RangeError: ${err.message}` });
    else results.push({ what, outcome: `UNEXPECTED ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}` });
    return null;
  }
}

const uring = Ring.probe().available;
const keep: Array<{ close(): void }> = [];
if (uring) {
  // 2 GiB of receive buffers: more than the whole limit.
  const r = attempt('new Ring 32768 x 64 KiB buffers (2 GiB)', () => new Ring({ entries: 256, bufferCount: 32768, bufferSize: 65536 }));
  if (r) keep.push(r);
  // 128 MiB each until the limit is met: the last one fails, the others stay usable.
  for (let i = 0; i < 8; i++) {
    const x = attempt(`new Ring #${i} 32768 x 4 KiB buffers (128 MiB)`, () => new Ring({ entries: 4096, bufferCount: 32768, bufferSize: 4096 }));
    if (!x) break;
    keep.push(x);
  }
}
// The largest capacities there are (events arrays of 8 MiB): they fit, or fail cleanly.
for (const b of backends().filter((s) => s.available)) {
  const p = attempt(`new Poller('${b.name}', capacity 2^20)`, () => new Poller(b.name, { capacity: 1 << 20 }));
  if (p) keep.push(p);
}
const l = attempt("new EventLoop('epoll', capacity 2^20)", () => new EventLoop('epoll', { capacity: 1 << 20 }));
if (l) keep.push(l);
// Fill what is left with 64 MiB Rings (or, without io_uring, nothing more).
for (let i = 0; uring && i < 16; i++) {
  const x = attempt(`new Ring fill #${i} 16384 x 4 KiB`, () => new Ring({ entries: 64, bufferCount: 16384, bufferSize: 4096 }));
  if (!x) break;
  keep.push(x);
}
for (const k of keep) k.close();

// Afterwards: a small Ring and Poller work.
let after = 'ok';
try {
  const [a, b] = sys.socketpair();
  const p = new Poller('epoll');
  p.add(a, 1);
  sys.write(b, Buffer.from('hi'));
  if (p.wait(1000) !== 1) after = 'the Poller did not report the readable socket';
  p.close();
  if (uring) {
    const r = new Ring({ entries: 8, bufferCount: 8, bufferSize: 64 });
    r.recv(a, 1);
    const n = r.submitAndWait(1, 1000);
    if (n !== 1 || r.completions[1] !== 2) after = `the Ring's recv gave ${n} completions, res ${r.completions[1]}`;
    r.close();
  }
  sys.close(a);
  sys.close(b);
} catch (err) {
  after = `threw ${(err as Error).message}`;
}
console.log(JSON.stringify({ limitMiB: Math.round(limit / 1048576), results, after }));
