// Leak checks (in children run with --expose-gc, so that RSS is measured after
// a full collection): 10,000 Pollers of each available backend, each with a
// registration and a wait, created and closed: the fd count returns exactly to
// its baseline and RSS stays flat; Pollers dropped without close() have their
// fds closed by the finalizer once collected.
//   IOMUX_LEAK_CYCLES (default 10000)
import { describe, expect, it } from 'vitest';
import { available, noteUnavailable } from './helpers/backends';
import { describeExit, runChild } from './helpers/child';
import * as fs from 'node:fs';

const CYCLES = Number(process.env.IOMUX_LEAK_CYCLES ?? 10000);
// Measured growth over 10,000 cycles after the warm-up: -0.6 to +1.0 MB on every
// backend (see RELIABILITY.md). 8 MB catches any leak of 800 bytes or more per
// Poller: an events buffer is 8 KB, an io_uring ring about 30 KB.
// Under npm run test:asan the ASan quarantine moves RSS by tens of MB either
// way (measured -33 to +9 MB), so it is off in these children, which only
// measure (then -0.7 to +2.1 MB), and the bound is 16 MB (1.6 KB per Poller).
const SANITIZED = process.env.IOMUX_SANITIZED === '1';
const RSS_BOUND = (SANITIZED ? 16 : 8) * 1024 * 1024;
const childEnv = SANITIZED ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS}:quarantine_size_mb=0` } : undefined;
// Pollers left to the garbage collector.
const DROPPED = 500;
noteUnavailable('leaks');

function stats(line: string): Record<string, number | string> {
  return JSON.parse(line.trim().split('\n').pop()!);
}

function record(entry: unknown): void {
  const out = process.env.IOMUX_RELIAB_STATS;
  if (out) fs.appendFileSync(out, JSON.stringify({ leaks: entry }) + '\n');
}

describe.each(available)('%s', (backend) => {
  it(`${CYCLES} Pollers created and closed: fds back to baseline, RSS flat`, async () => {
    const r = await runChild('leaks.ts', ['rss', backend, String(CYCLES)], { nodeArgs: ['--expose-gc'], timeoutMs: 170_000, env: childEnv });
    expect(r.code, describeExit(r)).toBe(0);
    const s = stats(r.stdout);
    console.log(`[leaks] ${backend}: ${CYCLES} create/add/wait/close cycles in ${s.ms} ms; fds ${s.fds0} -> ${s.fds1}; RSS growth ${((s.growth as number) / 1048576).toFixed(2)} MB`);
    record({ kind: 'cycles', ...s });
    expect(s.fds1).toBe(s.fds0);
    expect(s.growth as number).toBeLessThan(RSS_BOUND);
  }, 180_000);

  it(`${DROPPED} Pollers dropped without close(): the finalizer closes their fds`, async () => {
    const r = await runChild('leaks.ts', ['gc', backend, String(DROPPED)], { nodeArgs: ['--expose-gc'], timeoutMs: 60_000 });
    expect(r.code, describeExit(r)).toBe(0);
    const s = stats(r.stdout);
    console.log(`[leaks] ${backend}: ${DROPPED} unclosed Pollers: fds ${s.fds0} -> ${s.fdsLive} while alive -> ${s.fds1} after gc()`);
    record({ kind: 'gc', ...s });
    // Backends with a kernel object hold one fd per Poller until collected.
    if (backend !== 'select' && backend !== 'poll') expect(s.fdsLive).toBeGreaterThanOrEqual((s.fds0 as number) + DROPPED);
    expect(s.fds1).toBe(s.fds0);
  }, 90_000);
});
