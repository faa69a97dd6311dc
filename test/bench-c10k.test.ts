// `bench c10k` at a tiny size, and the load generator's --active-ratio it
// relies on. Asserts behaviour only: every connection held, the active share
// as asked, finite figures, failures reported with their kind; no timing.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findArch, type RunningServer } from '../lib/arch';
import { benchC10k, c10kCharts, c10kMarkdown, c10kSection, c10kVariants, type C10kReport } from '../lib/bench/c10k';
import { runLoad } from '../lib/lab/load';
import { bin } from './lab-helpers';

const finite = (v: unknown) => typeof v === 'number' && Number.isFinite(v);

describe('load generator: activeRatio', () => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await findArch('c-epoll')!.start({ protocol: 'echo', host: '127.0.0.1', port: 0 });
  });
  afterAll(() => server.close());

  it('sends on ceil(ratio × conns) connections and holds the others open', async () => {
    for (const [conns, ratio, active] of [[10, 0.3, 3], [20, 0.01, 1], [7, 1, 7], [100, 0.05, 5]] as const) {
      const r = await runLoad({ port: server.port, conns, activeRatio: ratio, duration: 0.3 });
      expect(r.activeRatio).toBe(ratio);
      expect(r.activeConns, `${conns} × ${ratio}`).toBe(active);
      expect(r.connected).toBe(conns);
      expect(r.requests).toBeGreaterThan(0);
      expect(r.idleConns).toBe(0);
      expect(r.verifyErrors).toBe(0);
    }
  });

  it('open loop: only the active connections send', async () => {
    const r = await runLoad({ port: server.port, conns: 50, activeRatio: 0.1, rate: 500, duration: 0.4 });
    expect(r.activeConns).toBe(5);
    expect(r.requests).toBeGreaterThan(0);
    expect(r.unanswered).toBe(0);
  });

  it('defaults to every connection and rejects ratios outside (0, 1]', async () => {
    const r = await runLoad({ port: server.port, conns: 4, duration: 0.2 });
    expect(r.activeConns).toBe(4);
    await expect(runLoad({ port: server.port, activeRatio: 0 })).rejects.toThrow(RangeError);
    await expect(runLoad({ port: server.port, activeRatio: 1.5 })).rejects.toThrow(/activeRatio/);
    await expect(runLoad({ port: server.port, activeRatio: '0.5' as unknown as number })).rejects.toThrow(TypeError);
  });

  it('iomux load --active-ratio', () => {
    const ok = spawnSync(process.execPath, [bin, 'load', '--port', String(server.port), '--conns', '20', '--active-ratio', '0.1', '--duration', '0.3', '--json', '--quiet'], { encoding: 'utf8', timeout: 30_000 });
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).activeConns).toBe(2);
    const bad = spawnSync(process.execPath, [bin, 'load', '--port', String(server.port), '--active-ratio', '0'], { encoding: 'utf8', timeout: 30_000 });
    expect(bad.status).toBe(2);
  });
});

describe('bench c10k', () => {
  let report: C10kReport;
  let json: C10kReport;

  beforeAll(async () => {
    report = await benchC10k({
      variants: [
        { label: 'c-epoll', arch: 'c-epoll' },
        { label: 'node-net', arch: 'node-net' },
        // Two workers for 10 connections, 5 of them active: at least 3 active ones wait forever.
        { label: 'thread-pool-2', arch: 'thread-pool', args: ['--threads', '2'] },
        { label: 'broken', arch: 'c-epoll', args: ['--threads', '0'] },
      ],
      steps: [1, 10],
      activeRatio: 0.5,
      duration: 1,
      connectTimeout: 5,
    });
    json = JSON.parse(JSON.stringify(report));
  }, 180_000);

  it('is well-formed JSON with every field', () => {
    expect(json).toEqual(report);
    expect(json.section).toBe('c10k');
    expect(json.params).toMatchObject({ steps: [1, 10], activeRatio: 0.5, durationS: 1 });
    expect(json.archs.map((a) => a.arch)).toEqual(['c-epoll', 'node-net', 'thread-pool-2', 'broken']);
    for (const a of json.archs) {
      for (const k of ['arch', 'archName', 'backend', 'status', 'error', 'serverPid', 'baseline', 'steps', 'maxHeld', 'firstFailure', 'serverExit', 'serverStderr']) {
        expect(a, `${a.arch}: ${k}`).toHaveProperty(k);
      }
    }
  });

  it('ramps the working archs through every step, every connection held', () => {
    for (const label of ['c-epoll', 'node-net']) {
      const a = json.archs.find((x) => x.arch === label)!;
      expect(a.status).toBe('ok');
      expect(a.firstFailure, JSON.stringify(a.firstFailure)).toBeNull();
      expect(a.maxHeld).toBe(10);
      expect(a.serverExit).toBe('exit code 0');
      expect(a.steps.map((s) => s.conns)).toEqual([1, 10]);
      for (const s of a.steps) {
        expect(s.status).toBe('ok');
        expect(s.connected).toBe(s.conns);
        expect(s.activeConns).toBe(Math.ceil(s.conns * 0.5));
        expect(s.verifyErrors).toBe(0);
        expect(s.connectErrors).toBe(0);
        for (const k of ['connectMs', 'connectRate', 'rssKb', 'vmSizeKb', 'threads', 'rssKbPerConn', 'vmSizeKbPerConn', 'cpuUsPerRequest', 'rps'] as const) {
          expect(finite(s[k]), `${label}/${s.conns}: ${k} = ${s[k]}`).toBe(true);
        }
        expect(finite(s.latencyUs!.p99)).toBe(true);
        expect(s.connectRate!).toBeGreaterThan(0);
      }
    }
  });

  it('names what fails first: active connections a small pool never answers', () => {
    const a = json.archs.find((x) => x.arch === 'thread-pool-2')!;
    const s10 = a.steps.find((s) => s.conns === 10)!;
    expect(s10.status).toBe('problem');
    expect(s10.failure!.kind).toBe('never-answered');
    expect(s10.idleConns).toBeGreaterThanOrEqual(3);
    expect(a.firstFailure).toMatchObject({ conns: 10, kind: 'never-answered' });
    // The pool still holds every connection: that is not the end of its ramp.
    expect(s10.connected).toBe(10);
  });

  it('reports an arch that cannot start, not throws', () => {
    const a = json.archs.find((x) => x.arch === 'broken')!;
    expect(a.status).toBe('failed');
    expect(a.steps).toEqual([]);
    expect(a.firstFailure!.kind).toBe('server-start');
    expect(a.error).toMatch(/--threads must be in/);
  });

  it('renders Markdown and the memory chart', async () => {
    const md = c10kMarkdown(report);
    expect(md).toContain('| arch | held |');
    expect(md).toContain('never-answered');
    const charts = await c10kCharts(report);
    const mem = charts.find((c) => c.file === 'c10k-memory-per-connection.svg');
    expect(mem).toBeDefined();
    expect(mem!.svg).toContain('memory per connection at 10');
  });

  it('is a report Section, with the c10k archs that are registered', () => {
    expect(c10kSection.name).toBe('c10k');
    expect(c10kSection.command(true)).toContain('--quick');
    const labels = c10kVariants().map((v) => v.label);
    expect(labels).toEqual(expect.arrayContaining(['threads', 'thread-pool', 'node-net']));
    if (findArch('reactor')) expect(labels).toEqual(expect.arrayContaining(['reactor:poll', 'reactor:epoll']));
  });
});

describe('bench c10k: a server that dies', () => {
  it('stops the ramp and says the server crashed', async () => {
    const r = await benchC10k({
      variants: [{ label: 'node-net', arch: 'node-net' }],
      steps: [5, 10],
      duration: 0.5,
      connectTimeout: 3,
      onServer: ({ pid }) => process.kill(pid, 'SIGKILL'),
    });
    const a = r.archs[0];
    expect(a.steps).toHaveLength(1);
    expect(a.steps[0].status).toBe('failed');
    expect(a.firstFailure!.kind).toBe('server-crash');
    expect(a.firstFailure!.detail).toMatch(/SIGKILL/);
  }, 60_000);
});

describe('bench-lab c10k CLI', () => {
  it('rejects bad usage with exit code 2', () => {
    for (const args of [['--steps', '10,-1'], ['--active-ratio', '0'], ['--active-ratio', '2'], ['--archs', 'threads:epoll']]) {
      const r = spawnSync(process.execPath, [bin, 'bench-lab', 'c10k', ...args], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, args.join(' ')).toBe(2);
    }
  }, 60_000);
});
