// API fuzzing: every public function, constructor, method and getter of
// lib/poller.ts and lib/sys.ts called with wrong types, out-of-range numbers,
// NaN, Infinity, negative, huge, closed and foreign fds, detached, zero-length,
// shared, resizable and oversized buffers, and missing or extra arguments
// (test/children/fuzz-api.ts). It runs in a child process, so that a crash is
// seen here as the signal that killed it, with the call that was running.
//   IOMUX_FUZZ_CALLS (default 20000)   IOMUX_FUZZ_SEED (default: random, printed)
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describeExit, runChild } from './helpers/child';

const CALLS = Number(process.env.IOMUX_FUZZ_CALLS ?? 20000);
const SEED = Number(process.env.IOMUX_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

describe('API fuzzing (in a child process)', () => {
  it('the harness sees a crash as a signal', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iomux-crash-'));
    const script = path.join(dir, 'crash.ts');
    fs.writeFileSync(script, 'const n: number = 1;\nif (n) process.abort();\n');
    const r = await runChild(script, [], { timeoutMs: 30_000 });
    fs.rmSync(dir, { recursive: true, force: true });
    expect(r.signal, describeExit(r)).toBe('SIGABRT');
  });

  it(`${CALLS} calls: each returns or throws TypeError / RangeError / ErrnoError; no crash, hang, leak or overwrite`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iomux-fuzzlog-'));
    const log = path.join(dir, 'calls.log');
    const r = await runChild('fuzz-api.ts', [String(CALLS), String(SEED), log], { timeoutMs: 120_000 });
    const lastCalls = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').slice(-5).join('\n  ') : '(no log)';
    fs.rmSync(dir, { recursive: true, force: true });
    const context = `seed ${SEED} (replay: IOMUX_FUZZ_SEED=${SEED} IOMUX_FUZZ_CALLS=${CALLS}); last calls:\n  ${lastCalls}\n${describeExit(r)}`;
    expect(r.timedOut, `the fuzzer hung: ${context}`).toBe(false);
    expect(r.signal, `the fuzzer crashed: ${context}`).toBeNull();
    expect(r.code, context).toBe(0);
    const stats = JSON.parse(r.stdout.trim().split('\n').pop()!);
    console.log(`[fuzz-api] seed ${SEED}: ${stats.calls} calls in ${stats.ms} ms: ${stats.ok} returned, ${stats.typeError} TypeError, ${stats.rangeError} RangeError, ErrnoError ${JSON.stringify(stats.errno)}, ${Object.keys(stats.perFunction).length} functions`);
    const out = process.env.IOMUX_RELIAB_STATS;
    if (out) fs.appendFileSync(out, JSON.stringify({ fuzz: { seed: SEED, ...stats } }) + '\n');
    expect(stats.calls).toBeGreaterThanOrEqual(CALLS * 0.9);
    // Every entry of the table was called (the child checks the table covers every export).
    for (const [name, n] of Object.entries(stats.perFunction as Record<string, number>)) expect(n, name).toBeGreaterThan(0);
    expect(Object.keys(stats.perFunction).length).toBeGreaterThanOrEqual(36);
  }, 180_000);
});
