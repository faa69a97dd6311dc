// `iomux bench syscalls`: the command runs at tiny sizes and reports every
// figure it promises, well-formed. Figures are checked for shape (positive,
// finite, consistent ratios), never against a timing threshold.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { backends } from '../lib/poller';
import { native } from '../lib/native';

const root = path.join(__dirname, '..');
const cli = (args: string[]) => spawnSync(process.execPath, ['bin/iomux.js', ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
const json = (args: string[]) => JSON.parse(execFileSync(process.execPath, ['bin/iomux.js', ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 }));

const status = backends();
const available = status.filter((b) => b.available).map((b) => b.name);
const uring = status.find((b) => b.name === 'io_uring')!;
const TINY = ['--fds', '1,3', '--target-ms', '1', '--reps', '1'];

function positive(v: unknown): void {
  expect(typeof v).toBe('number');
  expect(Number.isFinite(v as number)).toBe(true);
  expect(v as number).toBeGreaterThan(0);
}

/** Ratios are computed before the ns figures are rounded to 0.1 ns: equal within 1%. */
const closeRatio = (a: number, b: number) => Math.abs(a - b) <= 0.01 * Math.max(a, b);

describe('iomux bench syscalls --json', () => {
  const report = json(['bench', 'syscalls', '--json', ...TINY]);

  it('describes the machine and the parameters', () => {
    expect(report.kind).toBe('syscalls');
    expect(typeof report.machine.cpu).toBe('string');
    positive(report.machine.cores);
    expect(typeof report.machine.kernel).toBe('string');
    expect(report.machine.loadavg).toHaveLength(3);
    expect(report.params).toEqual({ fdCounts: [1, 3], targetMs: 1, reps: 1, fdSetSize: native.FD_SETSIZE });
  });

  it('has gettid, ping-pong and io_uring NOP rows with both sides measured', () => {
    for (const op of ['gettid', 'pingpong']) {
      const row = report.rows.find((r: { op: string }) => r.op === op);
      expect(row, op).toBeDefined();
      positive(row.cNs);
      positive(row.jsNs);
      positive(row.tax);
      expect(closeRatio(row.tax, row.jsNs / row.cNs)).toBe(true);
      if (op === 'gettid') {
        positive(row.cCpuNs);
        positive(row.jsCpuNs);
        positive(row.taxCpu);
      } else {
        expect(row.cCpuNs).toBeNull(); // a ping-pong's cost is waiting, not CPU
      }
    }
    const nop = report.rows.find((r: { op: string }) => r.op === 'uring-nop');
    expect(nop).toBeDefined();
    if (uring.available) {
      positive(nop.cNs);
      positive(nop.jsNs);
      positive(nop.tax);
    } else {
      console.log(`io_uring NOP not measured here: ${uring.reason}`);
      expect(nop.skipped).toBe(uring.reason);
    }
  });

  it('has the N-API call row, measured from JS only', () => {
    const row = report.rows.find((r: { op: string }) => r.op === 'napi-call');
    positive(row.jsNs);
    positive(row.jsCpuNs);
    expect(row.cNs).toBeNull();
    expect(row.tax).toBeNull();
  });

  it('has a wait row per available backend and fd count, and says why the others are missing', () => {
    for (const b of status) {
      const rows = report.rows.filter((r: { op: string; backend?: string }) => r.op === 'wait-idle' && r.backend === b.name);
      if (!b.available) {
        expect(rows).toHaveLength(1);
        expect(rows[0].skipped).toBe(b.reason);
        continue;
      }
      expect(rows.map((r: { fds: number }) => r.fds)).toEqual([1, 3]);
      for (const r of rows) {
        positive(r.jsNs);
        positive(r.cBackendNs);
        positive(r.napiTax);
        positive(r.jsCpuNs);
        positive(r.cBackendCpuNs);
        positive(r.napiTaxCpu);
        positive(r.jsLeanNs);
        positive(r.jsLeanCpuNs);
        positive(r.leanTax);
        positive(r.leanTaxCpu);
        expect(closeRatio(r.leanTax, r.jsLeanNs / r.cBackendNs)).toBe(true);
        if (b.name === 'io_uring') {
          expect(r.cNs).toBeNull();
          expect(r.note).toMatch(/no syscall/);
        } else {
          positive(r.cNs);
          positive(r.tax);
          expect(closeRatio(r.tax, r.jsNs / r.cNs)).toBe(true);
          positive(r.cCpuNs);
          positive(r.taxCpu);
        }
      }
    }
  });

  it('fits a cost slope per idle fd for each available backend, and fills the summary', () => {
    expect(report.slopes.map((s: { backend: string }) => s.backend)).toEqual(available);
    for (const s of report.slopes) {
      for (const k of ['cBackendNsPerFd', 'jsNsPerFd', 'cBackendCpuNsPerFd', 'jsCpuNsPerFd']) expect(Number.isFinite(s[k])).toBe(true);
    }
    positive(report.summary.napiCallNs);
    positive(report.summary.syscallFloorNs);
    positive(report.summary.gettidTax);
    positive(report.summary.gettidTaxCpu);
    positive(report.summary.contextSwitchNs);
    positive(report.summary.contextSwitchJsNs);
    if (available.includes('epoll')) {
      positive(report.summary.epollWaitIdleTax);
      positive(report.summary.epollWaitIdleTaxCpu);
      positive(report.summary.epollWaitIdleLeanTax);
      positive(report.summary.epollWaitIdleLeanTaxCpu);
    }
  });
});

describe('iomux bench syscalls', () => {
  it('prints a table with every operation, progress on stderr', () => {
    const r = cli(['bench', 'syscalls', ...TINY]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^ns per call by the wall clock/);
    expect(r.stdout).toMatch(/operation\s+fds\s+C raw ns\s+C backend ns\s+JS lean ns\s+JS ns\s+JS\/C raw\s+JS\/C backend\s+lean\/C backend/);
    expect(r.stdout).toMatch(/gettid \(bare syscall\)/);
    expect(r.stdout).toMatch(/pipe ping-pong/);
    expect(r.stdout).toMatch(/cost per idle fd/);
    expect(r.stderr).toMatch(/^syscalls: gettid/m);
    const cpu = cli(['bench', 'syscalls', '--clock', 'cpu', ...TINY]);
    expect(cpu.status).toBe(0);
    expect(cpu.stdout).toMatch(/^ns per call by the thread's CPU time/);
    expect(cpu.stdout).toMatch(/pipe ping-pong, per one-way trip \(wall\)/);
  });

  it.skipIf(!available.includes('select'))('stops select below FD_SETSIZE and reports the fds it used', () => {
    const want = native.FD_SETSIZE + 100;
    const report = json(['bench', 'syscalls', '--json', '--fds', String(want), '--backend', 'select', '--target-ms', '1', '--reps', '1']);
    const rows = report.rows.filter((r: { op: string }) => r.op === 'wait-idle');
    expect(rows).toHaveLength(1);
    expect(rows[0].requestedFds).toBe(want);
    expect(rows[0].fds).toBeLessThan(native.FD_SETSIZE);
    expect(rows[0].fds).toBeGreaterThan(native.FD_SETSIZE / 2);
    expect(rows[0].note).toMatch(/FD_SETSIZE/);
    positive(rows[0].cNs);
  });

  it('rejects bad options with exit code 2 and a message naming the option', () => {
    for (const [args, name] of [
      [['--fds', '0'], '--fds'],
      [['--fds', '1,x'], '--fds'],
      [['--reps', '1.5'], '--reps'],
      [['--target-ms', '-1'], '--target-ms'],
      [['--backend', 'nope'], '--backend'],
      [['--clock', 'sun'], '--clock'],
    ] as Array<[string[], string]>) {
      const r = cli(['bench', 'syscalls', ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(name);
    }
    const r = cli(['bench', 'nope']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown benchmark 'nope'/);
  });
});

describe('native bench loops on bad input', () => {
  const loop = native.bench.loop as (op: string, fds: Int32Array, targetNs: number, backend?: string) => Float64Array | number;

  it('return -errno instead of crashing', () => {
    expect(loop('select', Int32Array.of(native.FD_SETSIZE + 5), 1e5)).toBeLessThan(0);
    expect(loop('select', Int32Array.of(-1), 1e5)).toBeLessThan(0);
    expect(loop('no-such-op', new Int32Array(0), 1e5)).toBeLessThan(0);
    expect(loop('gettid', new Int32Array(0), 0)).toBeLessThan(0);
    expect(loop('backend', Int32Array.of(0), 1e5, 'nope')).toBeLessThan(0);
    expect(loop('gettid', [1] as unknown as Int32Array, 1e5)).toBeLessThan(0);
  });

  it('leanWait refuses bad arguments and is inert after close()', () => {
    const leanWait = native.bench.leanWait as (...args: unknown[]) => { wait(t: number): number; close(): void } | number;
    expect(leanWait('nope', new Int32Array(0), new Int32Array(4))).toBeLessThan(0);
    expect(leanWait(available[0], new Int32Array(0), new Int32Array(1))).toBeLessThan(0);
    expect(leanWait(available[0], new Int32Array(0), new Float64Array(4))).toBeLessThan(0);
    expect(leanWait(available[0], Int32Array.of(-1), new Int32Array(4))).toBeLessThan(0);
    const l = leanWait(available[0], new Int32Array(0), new Int32Array(8));
    if (typeof l === 'number') throw new Error(`leanWait failed: ${l}`);
    expect(l.wait(0)).toBe(0);
    l.close();
    expect(l.wait(0)).toBeLessThan(0);
    l.close();
  });

  it('give ns per op, iterations and elapsed ns', () => {
    const r = loop('gettid', new Int32Array(0), 1e6) as Float64Array;
    expect(r).toBeInstanceOf(Float64Array);
    positive(r[0]);
    expect(r[1]).toBeGreaterThanOrEqual(1);
    expect(r[2]).toBeGreaterThan(0);
    expect(r[0]).toBeCloseTo(r[2] / r[1], 3);
    positive(r[3]);
  });
});
