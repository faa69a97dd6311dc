// `iomux bench dispatch`: libevent's bench.c workload. Asserted here: every
// run consumes exactly the w writes (a + w reads), on every available backend
// and runner; the JSON has every field; select stops at FD_SETSIZE; runners
// plug in by name. No timing decides anything.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { backends } from '../lib/poller';
import { native } from '../lib/native';
import * as sys from '../lib/sys';
import '../lib/bench/dispatch-loop'; // the EventLoop runner, as the CLI registers it
import { benchDispatch, dispatchRunners, nativeRunner, pollerRunner, registerDispatchRunner, type RunSample } from '../lib/bench/dispatch';

const root = path.join(__dirname, '..');
const cli = (args: string[]) => spawnSync(process.execPath, ['bin/iomux.js', ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
const json = (args: string[]) => JSON.parse(execFileSync(process.execPath, ['bin/iomux.js', ...args], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 }));

const status = backends();
const available = status.filter((b) => b.available).map((b) => b.name);
for (const b of status) if (!b.available) console.log(`dispatch: ${b.name} not available here: ${b.reason}`);

function positive(v: unknown): void {
  expect(typeof v).toBe('number');
  expect(Number.isFinite(v as number)).toBe(true);
  expect(v as number).toBeGreaterThan(0);
}

function checkSamples(samples: RunSample[], a: number, w: number, runs: number): void {
  expect(samples).toHaveLength(runs);
  for (const s of samples) {
    expect(s.reads).toBe(a + w);
    expect(s.writes).toBe(w);
    expect(s.passes).toBeGreaterThanOrEqual(1);
    positive(s.setupUs);
    positive(s.dispatchUs);
    positive(s.setupCpuUs);
    positive(s.dispatchCpuUs);
  }
}

describe('iomux bench dispatch --json', () => {
  const a = 2;
  const w = 30;
  const report = json(['bench', 'dispatch', '--json', '--sizes', '4,8', '--active', String(a), '--writes', String(w), '--runs', '3']);

  it('records the parameters and the machine', () => {
    expect(report.kind).toBe('dispatch');
    expect(report.params).toMatchObject({ sizes: [4, 8], a, w, runs: 3, transport: 'socketpair', fdSetSize: native.FD_SETSIZE });
    positive(report.params.selectMaxN);
    expect(typeof report.machine.cpu).toBe('string');
    expect(report.machine.loadavg).toHaveLength(3);
  });

  it('runs every available backend with every runner and size, each run consuming exactly w writes', () => {
    const runnerNames = dispatchRunners().map((r) => r.name);
    expect(runnerNames).toEqual(expect.arrayContaining(['native', 'poller', 'lean']));
    expect(report.rows).toHaveLength(available.length * runnerNames.length * 2);
    for (const backend of available) {
      for (const runner of runnerNames) {
        for (const n of [4, 8]) {
          const row = report.rows.find((r: { backend: string; runner: string; n: number }) => r.backend === backend && r.runner === runner && r.n === n);
          expect(row, `${backend} ${runner} ${n}`).toBeDefined();
          expect(row).toMatchObject({ a, w, runs: 3, events: a + w, lang: runner === 'native' ? 'c' : 'ts' });
          positive(row.setupUs);
          positive(row.runUs);
          positive(row.perEventUs);
          expect(row.perEventUs).toBeCloseTo(row.runUs / (a + w), 2);
          positive(row.setupCpuUs);
          positive(row.runCpuUs);
          positive(row.perEventCpuUs);
          expect(row.perEventCpuUs).toBeCloseTo(row.runCpuUs / (a + w), 2);
          expect(row.passes).toBeGreaterThanOrEqual(1);
          checkSamples(row.samples, a, w, 3);
        }
      }
    }
  });

  it('gives the TypeScript / native ratio for each TypeScript row, and lists unavailable backends', () => {
    const tsRows = report.rows.filter((r: { lang: string }) => r.lang === 'ts');
    expect(report.ratios).toHaveLength(tsRows.length);
    for (const r of report.ratios) {
      positive(r.perEventVsNative);
      positive(r.perEventCpuVsNative);
      positive(r.setupVsNative);
    }
    for (const b of status.filter((s) => !s.available)) {
      expect(report.skipped).toContainEqual({ backend: b.name, n: 0, reason: b.reason });
    }
  });
});

describe('iomux bench dispatch', () => {
  it('prints a table, with progress lines on stderr', () => {
    const r = cli(['bench', 'dispatch', '--sizes', '4', '--active', '1', '--writes', '10', '--runs', '2', '--backend', available[0]]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^libevent bench\.c workload: socketpairs, a = 1 active, w = 10 writes, 11 events per run/);
    expect(r.stdout).toMatch(/backend\s+n\s+runner\s+setup µs\s+run µs\s+µs\/event\s+vs native\s+cpu µs\/event\s+vs native\s+passes/);
    expect(r.stdout).toMatch(new RegExp(`^${available[0]}\\s+4\\s+poller\\s.*x\\s.*x\\s+\\d+$`, 'm'));
    expect(r.stderr).toMatch(/^dispatch: \S+ n=4 native: 2 runs/m);
  });

  it('runs over pipes with --pipes', () => {
    const report = json(['bench', 'dispatch', '--json', '--pipes', '--sizes', '5', '--active', '5', '--writes', '20', '--runs', '2', '--backend', available[0]]);
    expect(report.params.transport).toBe('pipe');
    for (const row of report.rows) checkSamples(row.samples, 5, 20, 2);
  });

  it.skipIf(!available.includes('select'))('stops select at the largest n below FD_SETSIZE, and runs that n on the others too', () => {
    const big = native.FD_SETSIZE; // n pairs = 2n fds: never fits
    const report = json(['bench', 'dispatch', '--json', '--sizes', String(big), '--active', '2', '--writes', '10', '--runs', '1', '--backend', 'select,poll', '--runner', 'native']);
    const cap = report.params.selectMaxN;
    expect(cap).toBeLessThan(native.FD_SETSIZE / 2);
    expect(cap).toBeGreaterThan(native.FD_SETSIZE / 4);
    expect(report.params.sizes).toEqual([cap, big]);
    expect(report.skipped).toContainEqual({ backend: 'select', n: big, reason: expect.stringMatching(/FD_SETSIZE/) });
    expect(report.rows.map((r: { backend: string; n: number }) => `${r.backend}:${r.n}`).sort()).toEqual([`poll:${big}`, `poll:${cap}`, `select:${cap}`].sort());
    for (const row of report.rows) checkSamples(row.samples, 2, 10, 1);
  });

  it('says plainly when n needs more fds than the limit allows (exit code 1)', () => {
    const r = spawnSync('sh', ['-c', `ulimit -n 256 && exec "${process.execPath}" bin/iomux.js bench dispatch --sizes 200 --active 2 --writes 5 --runs 1 --backend ${available[0]}`], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^iomux bench dispatch: socketpair EMFILE .*n = 200 needs 400 fds.*ulimit -n/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('rejects bad options with exit code 2', () => {
    for (const args of [['--sizes', '1', '--active', '2'], ['--sizes', '0'], ['--runs', '0'], ['--writes', '-1'], ['--runner', 'nope'], ['--backend', 'x']]) {
      const r = cli(['bench', 'dispatch', ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/--\w+/);
    }
  });
});

describe('dispatch runners', () => {
  it('a TypeScript runner plugs in with one call and is compared with native', () => {
    let calls = 0;
    let runs = 0;
    registerDispatchRunner('wrapped', (work) => {
      calls++;
      const inner = pollerRunner(work);
      return {
        run: () => {
          runs++;
          return inner.run();
        },
        close: () => inner.close(),
      };
    });
    const report = benchDispatch({ sizes: [6], active: 3, writes: 12, runs: 2, backends: [available[0]], runners: ['native', 'wrapped'] });
    expect(calls).toBe(1);
    expect(runs).toBe(3); // one warm-up run, then the two timed runs
    expect(report.rows.map((r) => r.runner).sort()).toEqual(['native', 'wrapped']);
    for (const row of report.rows) checkSamples(row.samples, 3, 12, 2);
    expect(report.ratios).toHaveLength(1);
    expect(report.ratios[0]).toMatchObject({ backend: available[0], n: 6, runner: 'wrapped' });
  });

  it('the native runner turns bad input into errors, not crashes', () => {
    const [r, w] = sys.socketpair();
    sys.close(r);
    sys.close(w);
    const session = nativeRunner({ backend: available[0], fds: Int32Array.of(r, w), n: 1, a: 1, w: 1, capacity: 1 });
    expect(() => session.run()).toThrow(/EBADF/);
    session.close();
    expect(() => session.run()).toThrow(/EBADF/);
    const Loop = native.bench.DispatchLoop as new (...args: unknown[]) => unknown;
    expect(() => new Loop(available[0], Int32Array.of(0, 1), 2, 1, 1)).toThrow(); // a > n
    expect(() => new Loop(available[0], Int32Array.of(0), 1, 1, 1)).toThrow(); // odd fd count
    expect(() => new Loop('nope', Int32Array.of(0, 1), 1, 1, 1)).toThrow();
    expect(() => new Loop(available[0], [0, 1], 1, 1, 1)).toThrow();
    expect(() => nativeRunner({ backend: available[0], fds: Int32Array.of(0, -1), n: 1, a: 1, w: 1, capacity: 1 })).toThrow(/EBADF/);
  });
});
