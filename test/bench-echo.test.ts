// `bench echo` at a tiny size: two archs, 1 and 10 connections, 1 s. Asserts
// the shape and sanity of the result (never a timing): every field there,
// finite figures, every byte verified, the ratio rows, failures reported.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findArch, type RunningServer } from '../lib/arch';
import { runLoad, type LoadProgress } from '../lib/lab/load';
import { benchEcho, echoCharts, echoMarkdown, echoSection, type EchoCell, type EchoReport } from '../lib/bench/echo';
import { parseVariant } from '../lib/bench/lab-run';
import { bin } from './lab-helpers';

const CELL_KEYS: Array<keyof EchoCell> = [
  'arch', 'archName', 'backend', 'conns', 'size', 'status', 'error', 'problems', 'serverPid', 'rps', 'requests', 'warmupRequests', 'accepted', 'latencyUs',
  'cpuUsPerRequest', 'serverCores', 'loadgenCores', 'cpuBusy', 'rssKb', 'pssKb', 'vmSizeKb', 'rssKbPerConn', 'pssKbPerConn',
  'vmSizeKbPerConn', 'threads', 'ctxSwitches', 'ctxSwitchesPerRequest', 'connected', 'connectMs', 'connectErrors', 'resets',
  'serverCloses', 'verifyErrors', 'unanswered', 'idleConns', 'serverExit',
];

const finite = (v: unknown) => typeof v === 'number' && Number.isFinite(v);

describe('bench echo', () => {
  let report: EchoReport;
  let json: EchoReport;

  beforeAll(async () => {
    report = await benchEcho({
      variants: [
        { label: 'c-epoll', arch: 'c-epoll' },
        { label: 'node-net', arch: 'node-net' },
        // Cannot start: `iomux serve --threads 0` is bad usage (exit 2).
        { label: 'broken', arch: 'c-epoll', args: ['--threads', '0'] },
      ],
      conns: [1, 10],
      duration: 1,
      warmup: 0.2,
    });
    json = JSON.parse(JSON.stringify(report));
  }, 180_000);

  it('is well-formed JSON with every field', () => {
    expect(json).toEqual(report);
    expect(json.section).toBe('echo');
    expect(json.params).toMatchObject({ conns: [1, 10], size: 64, durationS: 1, warmupS: 0.2 });
    expect(json.params.archs).toEqual(['c-epoll', 'node-net', 'broken']);
    expect(typeof json.command).toBe('string');
    expect(json.machine.cores).toBeGreaterThan(0);
    expect(json.machine.loadavgStart).toHaveLength(3);
    expect(json.machine.loadavgEnd).toHaveLength(3);
    expect(typeof json.pinning.note).toBe('string');
    expect(json.cells).toHaveLength(6);
    for (const c of json.cells) for (const k of CELL_KEYS) expect(c, `${c.arch}/${c.conns}: ${k}`).toHaveProperty(k);
    expect(finite(json.elapsedS)).toBe(true);
  });

  it('measures every cell of the working archs with finite figures and zero verification errors', () => {
    const ok = json.cells.filter((c) => c.arch !== 'broken');
    expect(ok.map((c) => `${c.arch}/${c.conns}`).sort()).toEqual(['c-epoll/1', 'c-epoll/10', 'node-net/1', 'node-net/10']);
    for (const c of ok) {
      expect(c.status, `${c.arch}/${c.conns}: ${c.error}`).toBe('ok');
      expect(c.verifyErrors).toBe(0);
      expect(c.connected).toBe(c.conns);
      expect(c.requests).toBeGreaterThan(0);
      for (const k of ['rps', 'cpuUsPerRequest', 'serverCores', 'loadgenCores', 'rssKbPerConn', 'vmSizeKbPerConn', 'ctxSwitchesPerRequest', 'connectMs'] as const) {
        expect(finite(c[k]), `${c.arch}/${c.conns}: ${k} = ${c[k]}`).toBe(true);
      }
      for (const v of Object.values(c.latencyUs!)) expect(finite(v)).toBe(true);
      expect(c.latencyUs!.p99).toBeGreaterThanOrEqual(c.latencyUs!.p50);
      expect(c.threads!.peak).toBeGreaterThan(0);
      expect(c.rssKb!.peak).toBeGreaterThan(0);
      expect(finite(c.ctxSwitches!.voluntary) && finite(c.ctxSwitches!.involuntary)).toBe(true);
      expect(c.serverExit).toBe('exit code 0');
    }
  });

  it('has the ratio rows against c-epoll and node-net', () => {
    for (const conns of [1, 10]) {
      const row = (arch: string, vs: string) => json.ratios.find((r) => r.arch === arch && r.vs === vs && r.conns === conns);
      const a = row('node-net', 'c-epoll');
      const b = row('c-epoll', 'node-net');
      for (const r of [a, b]) {
        expect(r).toBeDefined();
        expect(finite(r!.rps) && finite(r!.cpuUsPerRequest) && finite(r!.p99)).toBe(true);
      }
      // Each is the other's inverse: taken from the same two cells.
      expect(a!.cpuUsPerRequest! * b!.cpuUsPerRequest!).toBeCloseTo(1, 6);
      // The failed arch has its rows, with nothing to compare.
      expect(row('broken', 'c-epoll')).toMatchObject({ rps: null, cpuUsPerRequest: null });
      expect(row('broken', 'node-net')).toMatchObject({ rps: null, cpuUsPerRequest: null });
    }
  });

  it('reports an arch that cannot start as failed, with the reason', () => {
    const broken = json.cells.filter((c) => c.arch === 'broken');
    expect(broken).toHaveLength(2);
    for (const c of broken) {
      expect(c.status).toBe('failed');
      expect(c.error).toMatch(/server did not start: .*--threads must be in/);
      expect(c.rps).toBeNull();
    }
  });

  it('renders Markdown tables and the CPU chart', async () => {
    const md = echoMarkdown(report);
    expect(md).toContain('| arch | conns | req/s |');
    expect(md).toMatch(/\| node-net \| 10 \|/);
    expect(md).toContain('broken, 1 conns: server did not start');
    const charts = await echoCharts(report);
    // Memory per connection is only drawn from cells of 100+ connections (below, it is noise).
    expect(charts.map((c) => c.file)).toEqual(['echo-cpu-per-request.svg']);
    expect(charts[0].svg.startsWith('<svg')).toBe(true);
    expect(charts[0].svg).toContain('CPU µs per request per architecture');
  });

  it('is a report Section', () => {
    expect(echoSection.name).toBe('echo');
    expect(echoSection.command(true)).toContain('--quick');
    expect(typeof echoSection.run).toBe('function');
  });
});

describe('bench echo: a server that dies', () => {
  it('is reported as failed, not thrown', async () => {
    const r = await benchEcho({
      variants: [{ label: 'c-epoll', arch: 'c-epoll' }, { label: 'node-net', arch: 'node-net' }],
      conns: [10],
      duration: 1,
      warmup: 0,
      onServer: ({ label, pid }) => {
        if (label === 'node-net') setTimeout(() => process.kill(pid, 'SIGKILL'), 200);
      },
    });
    const dead = r.cells.find((c) => c.arch === 'node-net')!;
    expect(dead.status).toBe('failed');
    expect(dead.error).toMatch(/SIGKILL/);
    expect(r.cells.find((c) => c.arch === 'c-epoll')!.status).toBe('ok');
    expect(r.ratios.find((x) => x.arch === 'c-epoll' && x.vs === 'node-net')!.rps).toBeNull();
  }, 120_000);
});

describe('bench echo: memory chart and arch specs', () => {
  it('draws RSS vs VmSize per connection from cells of 100+ connections', async () => {
    const base: EchoCell = {
      arch: 'threads', archName: 'threads', backend: null, conns: 1000, size: 64, status: 'ok', error: null, problems: [], serverPid: 1,
      rps: 1, requests: 1, warmupRequests: 1, accepted: 1000, latencyUs: { p50: 1, p90: 1, p99: 1, p999: 1, max: 1, mean: 1 }, cpuUsPerRequest: 10, serverCores: 1,
      loadgenCores: 1, cpuBusy: { serverCpu: 1, loadCpu: 1 }, rssKb: { baseline: 1, peak: 2 }, pssKb: { baseline: 1, peak: 2 },
      vmSizeKb: { baseline: 1, peak: 2 }, rssKbPerConn: 13, pssKbPerConn: 12, vmSizeKbPerConn: 8200, threads: { baseline: 8, peak: 1008 },
      ctxSwitches: { voluntary: 1, involuntary: 1 }, ctxSwitchesPerRequest: 1, connected: 1000, connectMs: 1, connectErrors: 0, resets: 0,
      serverCloses: 0, verifyErrors: 0, unanswered: 0, idleConns: 0, serverExit: 'exit code 0',
    };
    const charts = await echoCharts({ params: { size: 64, conns: [1000, 10000] }, cells: [base, { ...base, arch: 'c-epoll', rssKbPerConn: 0.1, vmSizeKbPerConn: 0 }] } as EchoReport);
    const mem = charts.find((c) => c.file === 'echo-memory-per-connection.svg')!;
    expect(mem.svg).toContain('memory per connection');
    expect(mem.svg).toContain('VmSize');
    expect(mem.svg).toContain('threads (1000)');
  });

  it('parses NAME, NAME:BACKEND and rejects unknown names', () => {
    expect(parseVariant('c-epoll')).toEqual([{ label: 'c-epoll', arch: 'c-epoll' }]);
    expect(() => parseVariant('no-such-arch')).toThrow(RangeError);
    expect(() => parseVariant('c-epoll:poll')).toThrow(/does not take a backend/);
  });
});

describe('bench-lab echo CLI', () => {
  it('prints one JSON object', () => {
    const r = spawnSync(process.execPath, [bin, 'bench-lab', 'echo', '--archs', 'c-epoll,node-net', '--conns', '1', '--duration', '0.5', '--warmup', '0', '--json', '--quiet'], {
      encoding: 'utf8',
      timeout: 90_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as EchoReport;
    expect(out.cells.map((c) => c.arch)).toEqual(['c-epoll', 'node-net']);
    expect(out.cells.every((c) => c.status === 'ok' && c.verifyErrors === 0)).toBe(true);
  }, 120_000);

  it('rejects bad usage with exit code 2', () => {
    for (const args of [['--conns', '1,x'], ['--archs', 'nope'], ['--size', '0'], ['--duration', 'soon'], ['--bogus']]) {
      const r = spawnSync(process.execPath, [bin, 'bench-lab', 'echo', ...args], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/iomux bench-lab:/);
    }
    const r = spawnSync(process.execPath, [bin, 'bench-lab', 'nope'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
  }, 60_000);
});

describe('load generator: warmup', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await findArch('c-epoll')!.start({ protocol: 'echo', host: '127.0.0.1', port: 0 });
  });
  afterAll(() => server.close());

  it('runs on the same connections first, verified but not measured', async () => {
    const phases: string[] = [];
    const r = await runLoad({
      port: server.port,
      conns: 4,
      warmup: 0.3,
      duration: 0.3,
      progressInterval: 50,
      onProgress: (p: LoadProgress) => {
        if (phases[phases.length - 1] !== p.phase) phases.push(p.phase);
      },
    });
    expect(phases).toContain('warmup');
    expect(phases.indexOf('warmup')).toBeLessThan(phases.indexOf('run'));
    expect(phases.indexOf('run')).toBeLessThan(phases.indexOf('drain'));
    expect(r.warmupS).toBe(0.3);
    expect(r.warmupRequests).toBeGreaterThan(0);
    expect(r.requests).toBeGreaterThan(0);
    // Only the measured requests are in the histogram.
    expect(r.latencyUs.count).toBe(r.requests);
    expect(r.durationS).toBeLessThanOrEqual(0.3 + 1e-6);
    expect(r.connected).toBe(4);
    expect(r.verifyErrors).toBe(0);
  });

  it('ends the warm-up early when endWarmup is aborted', async () => {
    const end = new AbortController();
    const t0 = performance.now();
    const r = await runLoad({
      port: server.port,
      conns: 2,
      warmup: 60,
      duration: 0.3,
      endWarmup: end.signal,
      progressInterval: 50,
      onProgress: (p) => {
        if (p.phase === 'warmup' && p.requests > 0) end.abort();
      },
    });
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(r.warmupRequests).toBeGreaterThan(0);
    expect(r.requests).toBeGreaterThan(0);
    expect(r.durationS).toBeLessThanOrEqual(0.3 + 1e-6);
    expect(r.latencyUs.count).toBe(r.requests);
    await expect(runLoad({ port: server.port, endWarmup: 'now' as unknown as AbortSignal })).rejects.toThrow(TypeError);
  });

  it('defaults to none and rejects a negative warm-up', async () => {
    const r = await runLoad({ port: server.port, conns: 2, duration: 0.2 });
    expect(r.warmupS).toBe(0);
    expect(r.warmupRequests).toBe(0);
    await expect(runLoad({ port: server.port, warmup: -1 })).rejects.toThrow(RangeError);
  });
});
