// io_uring unavailable: backends() must say so, with the right reason, and
// every other backend must keep working.
// (a) kernel.io_uring_disabled=2, set by this test for the whole machine (as
//     root) and restored in a finally. The sysctl is global, so the window is
//     kept under a millisecond: other tests of this suite create io_uring
//     Pollers through helpers/backends.ts newPoller(), which rides it out.
// (b) a seccomp filter that denies io_uring_setup (native/test_hooks.cc), in a
//     child process: a filter cannot be removed once installed.
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { backends, Poller, type BackendName, type BackendStatus } from '../../lib/poller';
import { ErrnoError } from '../../lib/errors';
import * as sys from '../../lib/sys';
import { statuses } from '../helpers/backends';
import { describeExit, runChild } from '../helpers/child';

const SYSCTL = '/proc/sys/kernel/io_uring_disabled';
const uringBuilt = !/compiled out/.test(statuses.find((b) => b.name === 'io_uring')?.reason ?? '');
const others = statuses.filter((b) => b.name !== 'io_uring' && b.available).map((b) => b.name);

function sysctlWritable(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (!fs.existsSync(SYSCTL)) return `${SYSCTL} does not exist (kernel older than 6.6)`;
  try {
    fs.writeFileSync(SYSCTL, fs.readFileSync(SYSCTL, 'utf8').trim()); // rewrites the current value: no change
    return null;
  } catch (err) {
    return `${SYSCTL} cannot be written (${(err as Error).message}): needs root outside a read-only /proc/sys`;
  }
}
const sysctlWhy = sysctlWritable();
if (sysctlWhy) console.log(`[uring-unavailable] sysctl test skipped: ${sysctlWhy}`);
if (!uringBuilt) console.log('[uring-unavailable] skipped: io_uring is compiled out of this build');

/** Registers a pipe, checks no event, writes, checks one READABLE event. */
function works(name: BackendName): boolean {
  const p = new Poller(name);
  const [r, w] = sys.pipe();
  try {
    p.add(r, 1);
    if (p.wait(0) !== 0) return false;
    sys.write(w, Buffer.from('x'));
    return p.wait(1000) === 1 && p.events[0] === r && p.events[1] === 1;
  } finally {
    p.close();
    sys.close(r);
    sys.close(w);
  }
}

describe('io_uring unavailable', () => {
  it.skipIf(!!sysctlWhy || !uringBuilt)('kernel.io_uring_disabled=2: reported with the sysctl reason; the others keep working', () => {
    // Warm up first (code paths, lazy loading), so that the window below is short.
    for (const name of others) works(name);
    backends();
    const old = fs.readFileSync(SYSCTL, 'utf8').trim();
    let during: BackendStatus[] = [];
    let createErr: unknown = null;
    const othersWork: Record<string, boolean> = {};
    const t0 = process.hrtime.bigint();
    try {
      fs.writeFileSync(SYSCTL, '2');
      during = backends();
      try {
        new Poller('io_uring').close();
      } catch (err) {
        createErr = err;
      }
      for (const name of others) othersWork[name] = works(name);
    } finally {
      fs.writeFileSync(SYSCTL, old);
    }
    const windowUs = Number(process.hrtime.bigint() - t0) / 1000;
    console.log(`[uring-unavailable] io_uring_disabled=2 was set for ${windowUs.toFixed(0)} µs`);
    expect(fs.readFileSync(SYSCTL, 'utf8').trim()).toBe(old);

    const uring = during.find((b) => b.name === 'io_uring')!;
    expect(uring.available).toBe(false);
    expect(uring.reason).toMatch(/EPERM.*kernel\.io_uring_disabled=2/);
    expect(createErr).toBeInstanceOf(ErrnoError);
    expect((createErr as ErrnoError).code).toBe('EPERM');
    expect((createErr as ErrnoError).syscall).toBe('io_uring_setup');
    expect((createErr as ErrnoError).message).toMatch(/io_uring_disabled=2/);
    for (const name of others) {
      expect(during.find((b) => b.name === name)!.available, name).toBe(true);
      expect(othersWork[name], name).toBe(true);
    }
    // And io_uring is back once the sysctl is restored.
    if (old === '0') expect(backends().find((b) => b.name === 'io_uring')!.available).toBe(true);
  });

  for (const [errno, reason] of [['EPERM', /EPERM.*seccomp/], ['ENOSYS', /ENOSYS.*seccomp/]] as const) {
  it.skipIf(!uringBuilt || process.platform !== 'linux')(`a seccomp filter failing io_uring_setup with ${errno}: reported with the reason; the others keep working`, async (ctx) => {
    const r = await runChild('seccomp-uring.ts', [errno], { timeoutMs: 60_000 });
    expect(r.code, describeExit(r)).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    if (!out.installed) {
      console.log(`[uring-unavailable] seccomp test skipped: the filter could not be installed (${out.rc})`);
      ctx.skip();
    }
    expect(out.uring.available).toBe(false);
    expect(out.uring.reason).toMatch(reason);
    expect(out.created.code).toBe(errno);
    expect(out.created.syscall).toBe('io_uring_setup');
    expect(Object.keys(out.others).sort()).toEqual([...others].sort());
    for (const name of others) expect(out.others[name], name).toBe(true);
  });
  }
});
