// Under npm run test:asan: proves the sanitizers are live, so that a clean run
// means something. Each probe commits a deliberate bug in the sanitized addon
// (native/test_hooks.cc, compiled only with IOMUX_SANITIZE=ON) in a child
// process, which must die reporting it. Skipped in an ordinary run.
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { native } from '../lib/native';
import { describeExit, runChild } from './helpers/child';

const sanitized = process.env.IOMUX_SANITIZED === '1';
if (!sanitized) console.log('[sanitizers] skipped: not a sanitizer run (npm run test:asan runs these)');

describe.skipIf(!sanitized)('sanitizers (npm run test:asan)', () => {
  it('this test process runs the sanitized addon with the ASan runtime loaded', () => {
    const maps = fs.readFileSync('/proc/self/maps', 'utf8');
    expect(maps).toMatch(/libasan\.so/);
    expect(maps).toContain(process.env.IOMUX_ADDON!);
    expect(typeof native.sys.sanitizerProbe).toBe('function');
  });

  it.each([
    ['heap-buffer-overflow', /AddressSanitizer: heap-buffer-overflow/],
    ['use-after-free', /AddressSanitizer: heap-use-after-free/],
    ['signed-integer-overflow', /runtime error: signed integer overflow/],
  ])('a %s in the addon kills the child with a report', async (kind, report) => {
    const r = await runChild('sanitizer-probe.ts', [kind], { timeoutMs: 60_000 });
    expect(r.signal, describeExit(r)).toBe('SIGABRT');
    expect(r.stderr).toMatch(report);
    expect(r.stderr).toContain('test_hooks.cc');
  });
});
