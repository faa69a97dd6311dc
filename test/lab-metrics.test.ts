// The /proc sampler: real readings of real processes, and the derived figures.
import { describe, expect, it } from 'vitest';
import { ErrnoError } from '../lib/errors';
import { runLoad } from '../lib/lab/load';
import { ProcessSampler, deriveMetrics, readProcess, type SamplerReport } from '../lib/lab/metrics';
import { serve } from './lab-helpers';

const linux = process.platform === 'linux';
if (!linux) console.log('lab-metrics: skipped, /proc is Linux only');

describe.skipIf(!linux)('metrics', () => {
  it('reads this process', () => {
    const s = readProcess(process.pid);
    expect(s.pid).toBe(process.pid);
    expect(s.rssKb).toBeGreaterThan(1000);
    expect(s.vmSizeKb).toBeGreaterThan(s.rssKb);
    expect(s.threads).toBeGreaterThanOrEqual(1);
    expect(s.perThread!.size).toBe(s.threads);
    expect(s.perThread!.has(process.pid)).toBe(true);
    expect(s.voluntaryCtxSwitches).toBeGreaterThan(0);
    expect(s.userS + s.sysS).toBeGreaterThan(0);
    // PSS exists where smaps_rollup does (Linux 4.14+), and is at most RSS.
    if (s.pssKb !== null) expect(s.pssKb).toBeLessThanOrEqual(s.rssKb);
    // CPU time follows process.cpuUsage() (clock-tick resolution).
    const u = process.cpuUsage();
    expect(Math.abs(s.userS - u.user / 1e6)).toBeLessThan(0.5);
  });

  it('throws ErrnoError ENOENT for a process that does not exist', () => {
    let err: unknown;
    try {
      readProcess(0x7ffffff0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ErrnoError);
    expect((err as ErrnoError).code).toBe('ENOENT');
    expect(() => readProcess(-1)).toThrow(RangeError);
  });

  it('samples a threads server under load: threads per connection, CPU per request, memory per connection', async () => {
    const s = await serve(['--arch', 'threads', '--stack-kb', '64']);
    try {
      const sampler = new ProcessSampler(s.pid, { intervalMs: 50 });
      const base = sampler.start();
      // A sample at the end of the run, every connection still open (as iomux load does).
      const atEnd = (p: { phase: string }) => p.phase === 'drain' && sampler.sampleNow();
      const r = await runLoad({ port: s.port, conns: 40, size: 64, duration: 0.6, threads: 1, onProgress: atEnd });
      const rep = sampler.stop();
      expect(r.verifyErrors).toBe(0);
      expect(rep.samples).toBeGreaterThanOrEqual(2);
      expect(rep.first).toBe(base);
      // One thread per connection: at least 40 more threads at the peak.
      expect(rep.peak.threads).toBeGreaterThanOrEqual(base.threads + 40);
      expect(rep.cpu.totalS).toBeGreaterThan(0);
      // Blocking recv in 40 threads: each request is at least one voluntary switch.
      expect(rep.ctxSwitches.voluntary).toBeGreaterThan(40);
      const d = deriveMetrics(rep, { requests: r.requests, connections: r.connected });
      expect(d.cpuUsPerRequest).toBeGreaterThan(0);
      expect(d.rssKbPerConnection).not.toBeNull();
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });

  it('derives CPU per request and memory per connection', () => {
    const snap = (rssKb: number, pssKb: number | null, userS: number, sysS: number, t: number) => ({
      t, pid: 1, rssKb, pssKb, vmSizeKb: 0, threads: 1, voluntaryCtxSwitches: 0, involuntaryCtxSwitches: 0, userS, sysS, perThread: new Map(),
    });
    const rep: SamplerReport = {
      pid: 1,
      samples: 3,
      first: snap(10_000, 8_000, 1, 1, 0),
      last: snap(12_000, 9_000, 2, 1.5, 2000),
      peak: { rssKb: 20_000, pssKb: 18_000, vmSizeKb: 0, threads: 1 },
      cpu: { userS: 1, sysS: 0.5, totalS: 1.5 },
      ctxSwitches: { voluntary: 0, involuntary: 0 },
      wallS: 2,
    };
    expect(deriveMetrics(rep, { requests: 1000, connections: 100 })).toEqual({
      cpuUsPerRequest: 1500,
      rssKbPerConnection: 100,
      pssKbPerConnection: 100,
      cores: 0.75,
    });
    expect(deriveMetrics(rep, { requests: 0, connections: 0 })).toMatchObject({ cpuUsPerRequest: null, rssKbPerConnection: null });
  });

  it('the sampler sums context switches over threads that came and went', async () => {
    const s = await serve(['--arch', 'threads']);
    try {
      const sampler = new ProcessSampler(s.pid, { intervalMs: 20 });
      sampler.start();
      // Three short runs: connection threads start and exit between them.
      const atEnd = (p: { phase: string }) => p.phase === 'drain' && sampler.sampleNow();
      for (let i = 0; i < 3; i++) await runLoad({ port: s.port, conns: 5, duration: 0.15, onProgress: atEnd });
      await new Promise((r) => setTimeout(r, 100));
      const rep = sampler.stop();
      // The threads of the first runs have exited, yet their switches counted.
      expect(rep.last.threads).toBeLessThan(rep.peak.threads);
      expect(rep.ctxSwitches.voluntary).toBeGreaterThan(rep.last.voluntaryCtxSwitches - rep.first.voluntaryCtxSwitches);
    } finally {
      await s.stop();
    }
  });
});

describe.skipIf(!linux)('metrics: cheap readings', () => {
  it('threads: false skips the per-thread scan', () => {
    const s = readProcess(process.pid, { threads: false });
    expect(s.perThread).toBeNull();
    expect(s.voluntaryCtxSwitches).toBe(0);
    expect(s.threads).toBeGreaterThanOrEqual(1);
    expect(s.rssKb).toBeGreaterThan(0);
  });
});
