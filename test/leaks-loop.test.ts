// Leak checks of EventLoops and Rings (children with --expose-gc, as
// test/leaks.test.ts does for Pollers): per available backend, 5,000
// EventLoops (20,000 in all on 4 backends) with a watcher, a timer, the
// wakeup fd and one iteration (every 10th attached to Node's loop and
// detached again: uv_poll, or a helper thread for select and poll), and
// 10,000 Rings with a buffer ring, a recv, a nop and a timeout, created and
// closed: the fd count returns exactly to its baseline and RSS stays flat;
// EventLoops and Rings dropped without close() have every fd closed once
// collected, the EventLoop's wakeup fd included.
//   IOMUX_LEAK_LOOP_CYCLES (default 5000 per backend), IOMUX_LEAK_CYCLES (Rings, default 10000)
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { available, noteUnavailable } from './helpers/backends';
import { describeExit, runChild } from './helpers/child';
import { Ring } from '../lib/ring';

const CYCLES = Number(process.env.IOMUX_LEAK_LOOP_CYCLES ?? 5000);
const RING_CYCLES = Number(process.env.IOMUX_LEAK_CYCLES ?? 10000);
// Measured growth over 10,000 EventLoops after 3,000 to warm up, collected
// every 1,000: +0.3 to +6.6 MB; over 10,000 Rings: -2.3 to +1.1 MB. 16 MB is
// 3.2 KB per EventLoop (an events buffer alone is 8 KB) and 1.6 KB per Ring.
// Under ASan (quarantine off in these children, as in test/leaks.test.ts) 24 MB.
const SANITIZED = process.env.IOMUX_SANITIZED === '1';
const RSS_BOUND = (SANITIZED ? 24 : 16) * 1024 * 1024;
const childEnv = SANITIZED ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS}:quarantine_size_mb=0` } : undefined;
const DROPPED = 300;
noteUnavailable('leaks-loop');

function stats(out: string): Record<string, number | string> {
  return JSON.parse(out.trim().split('\n').pop()!);
}

function record(entry: unknown): void {
  const out = process.env.IOMUX_RELIAB_STATS;
  if (out) fs.appendFileSync(out, JSON.stringify({ leaks: entry }) + '\n');
}

describe.each(available)('EventLoop on %s', (backend) => {
  it(`${CYCLES} EventLoops created, run once and closed: fds back to baseline, RSS flat`, async () => {
    const r = await runChild('leaks.ts', ['loop-rss', backend, String(CYCLES)], { nodeArgs: ['--expose-gc'], timeoutMs: 170_000, env: childEnv });
    expect(r.code, describeExit(r)).toBe(0);
    const s = stats(r.stdout);
    console.log(`[leaks] EventLoop ${backend}: ${CYCLES} create/watch/timer/wakeup/run/close cycles in ${s.ms} ms; fds ${s.fds0} -> ${s.fds1}; RSS growth ${((s.growth as number) / 1048576).toFixed(2)} MB`);
    record({ kind: 'loop-cycles', ...s });
    expect(s.fds1).toBe(s.fds0);
    expect(s.growth as number).toBeLessThan(RSS_BOUND);
  }, 180_000);

  it(`${DROPPED} EventLoops dropped without close(): collected, every fd closed (the wakeup fd too)`, async () => {
    const r = await runChild('leaks.ts', ['loop-gc', backend, String(DROPPED)], { nodeArgs: ['--expose-gc'], timeoutMs: 60_000 });
    expect(r.code, describeExit(r)).toBe(0);
    const s = stats(r.stdout);
    console.log(`[leaks] EventLoop ${backend}: ${DROPPED} unclosed EventLoops: fds ${s.fds0} -> ${s.fdsLive} while alive -> ${s.fds1} after gc()`);
    record({ kind: 'loop-gc', ...s });
    expect(s.fdsLive).toBeGreaterThanOrEqual((s.fds0 as number) + DROPPED); // at least the wakeup fd each
    expect(s.fds1).toBe(s.fds0);
  }, 90_000);
});

const ring = Ring.probe();
if (!ring.available) console.log(`[leaks-loop] Rings skipped: ${ring.reason}`);
describe.skipIf(!ring.available)('Ring', () => {
  it(`${RING_CYCLES} Rings (buffer ring, recv, nop, timeout) created and closed: fds back to baseline, RSS flat`, async () => {
    const r = await runChild('leaks.ts', ['ring-rss', '-', String(RING_CYCLES)], { nodeArgs: ['--expose-gc'], timeoutMs: 170_000, env: childEnv });
    expect(r.code, describeExit(r)).toBe(0);
    const s = stats(r.stdout);
    console.log(`[leaks] Ring: ${RING_CYCLES} create/recv/nop/timeout/close cycles in ${s.ms} ms; fds ${s.fds0} -> ${s.fds1}; RSS growth ${((s.growth as number) / 1048576).toFixed(2)} MB`);
    record({ kind: 'ring-cycles', ...s });
    expect(s.fds1).toBe(s.fds0);
    expect(s.growth as number).toBeLessThan(RSS_BOUND);
  }, 180_000);

  it(`${DROPPED} Rings with a recv pending, dropped without close(): collected, their fds are closed`, async () => {
    const r = await runChild('leaks.ts', ['ring-gc', '-', String(DROPPED)], { nodeArgs: ['--expose-gc'], timeoutMs: 60_000 });
    expect(r.code, describeExit(r)).toBe(0);
    const s = stats(r.stdout);
    console.log(`[leaks] Ring: ${DROPPED} unclosed Rings: fds ${s.fds0} -> ${s.fdsLive} while alive -> ${s.fds1} after gc()`);
    record({ kind: 'ring-gc', ...s });
    expect(s.fdsLive).toBeGreaterThanOrEqual((s.fds0 as number) + DROPPED);
    expect(s.fds1).toBe(s.fds0);
  }, 90_000);
});
