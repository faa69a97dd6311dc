// `iomux report` at tiny sizes: it writes results.json, report.md and the SVG
// charts; a section that fails is recorded with its error and the sections
// after it still run; the targets are computed from the figures given. Never
// a timing.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeMachine, mitigationSummary, reportSections, runReport, type ReportResults } from '../lib/bench/report';
import { computeTargets } from '../lib/bench/targets';
import type { Section } from '../lib/bench/section';
import type { SyscallReport } from '../lib/bench/syscalls';
import type { EchoReport } from '../lib/bench/echo';
import { bin } from './lab-helpers';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iomux-report-test-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const failing: Section = {
  name: 'broken',
  title: 'A section that throws',
  command: () => 'iomux nothing',
  run: async () => {
    throw new Error('this section is broken on purpose');
  },
  markdown: () => 'never rendered',
};

describe('runReport with a failing section', () => {
  let r: ReportResults;
  const dir = path.join(tmp, 'lib');

  beforeAll(async () => {
    const all = reportSections({ quick: false, tiny: true });
    const pick = (n: string) => all.find((s) => s.name === n)!;
    r = await runReport({ outDir: dir, tiny: true, sections: [pick('backends'), failing, pick('syscalls'), pick('dispatch')] });
  }, 120_000);

  it('records the failure with its error and runs the sections after it', () => {
    expect(r.sections.map((s) => [s.name, s.status])).toEqual([
      ['backends', 'ok'],
      ['broken', 'failed'],
      ['syscalls', 'ok'],
      ['dispatch', 'ok'],
    ]);
    const broken = r.sections[1];
    expect(broken.error).toMatch(/this section is broken on purpose/);
    expect(broken.result).toBeNull();
  });

  it('writes results.json (the same object), report.md and the charts', () => {
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8'));
    expect(json).toEqual(JSON.parse(JSON.stringify(r)));
    const md = fs.readFileSync(path.join(dir, 'report.md'), 'utf8');
    expect(md).toMatch(/^# iomux report/);
    expect(md).toContain('## The machine');
    expect(md).toContain('## Failed sections');
    expect(md).toContain('this section is broken on purpose');
    expect(md).toContain('## Performance targets');
    const charts = r.sections.flatMap((s) => s.charts);
    expect(charts.map((c) => c.file)).toEqual(expect.arrayContaining(['dispatch-cost-vs-n.svg', 'wait-cost-vs-idle-fds.svg']));
    for (const c of charts) {
      const svg = fs.readFileSync(path.join(dir, c.file), 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(md).toContain(`](${c.file})`);
    }
  });

  it('describes the machine and the load it ran under', () => {
    const m = r.machine;
    expect(typeof m.cpu).toBe('string');
    expect(m.cores).toBeGreaterThan(0);
    expect(m.loadavgStart).toHaveLength(3);
    expect(m.loadavgEnd).toHaveLength(3);
    expect(typeof m.kernel).toBe('string');
    expect(typeof m.mitigations).toBe('object');
    if (process.platform === 'linux') {
      expect(Object.keys(m.mitigations).length).toBeGreaterThan(0);
      expect(m.cpuSeconds).not.toBeNull();
    }
  });

  it('judges every target as met, missed or not measured', () => {
    expect(r.targets.length).toBeGreaterThan(0);
    for (const t of r.targets) expect(['met', 'missed', 'not measured']).toContain(t.verdict);
    // No echo or verify section ran: their targets say so.
    expect(r.targets.find((t) => t.id === 'memory-reactor-10k')!.verdict).toBe('not measured');
    expect(r.targets.find((t) => t.id === 'binding-tax')!.verdict).not.toBe('not measured');
  });
});

describe('iomux report (CLI)', () => {
  it('--tiny --sections ... --json prints one JSON object and writes the files', () => {
    const dir = path.join(tmp, 'cli');
    const res = spawnSync(process.execPath, [bin, 'report', '--tiny', '--out', dir, '--sections', 'backends,dispatch', '--json'], { encoding: 'utf8', timeout: 120_000 });
    expect(res.status, res.stderr).toBe(0);
    const lines = res.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const r = JSON.parse(lines[0]) as ReportResults;
    expect(r.sections.map((s) => s.name)).toEqual(['backends', 'dispatch']);
    expect(r.command).toBe(`iomux report --out ${dir} --tiny --sections backends,dispatch`);
    for (const f of ['results.json', 'report.md', 'dispatch-cost-vs-n.svg']) expect(fs.existsSync(path.join(dir, f)), f).toBe(true);
    // Not a TTY: plain progress lines.
    expect(res.stderr).toMatch(/^\[\s*\d+\.\ds\] \[1\/2\] backends/m);
  }, 130_000);

  it('rejects an unknown section', () => {
    const res = spawnSync(process.execPath, [bin, 'report', '--sections', 'nope', '--out', path.join(tmp, 'x')], { encoding: 'utf8', timeout: 30_000 });
    expect(res.status).toBe(2);
    expect(res.stderr).toMatch(/unknown section 'nope'/);
    expect(fs.existsSync(path.join(tmp, 'x'))).toBe(false);
  });
});

describe('targets', () => {
  const syscalls = (taxCpu: number) =>
    ({
      rows: [{ op: 'wait-idle', backend: 'epoll', fds: 1, tax: 2, taxCpu, jsCpuNs: 100 * taxCpu, cCpuNs: 100 }],
    }) as unknown as SyscallReport;

  it('judges the binding tax from the figure given, against 1.3', () => {
    const met = computeTargets({ syscalls: { result: syscalls(1.2), command: 'x' } }).find((t) => t.id === 'binding-tax')!;
    const missed = computeTargets({ syscalls: { result: syscalls(1.4), command: 'x' } }).find((t) => t.id === 'binding-tax')!;
    expect([met.verdict, met.measured]).toEqual(['met', 1.2]);
    expect([missed.verdict, missed.measured]).toEqual(['missed', 1.4]);
    expect(missed.limit).toBe(1.3);
  });

  it('judges the echo targets from the CPU per request of the cells at 1000 connections', () => {
    const cell = (arch: string, archName: string, backend: string | null, cpu: number) => ({ arch, archName, backend, conns: 1000, size: 64, status: 'ok', cpuUsPerRequest: cpu });
    const echo = {
      cells: [cell('c-epoll', 'c-epoll', null, 10), cell('node-net', 'node-net', null, 30), cell('reactor', 'reactor', 'epoll', 11), cell('proactor', 'proactor', 'io_uring', 12)],
    } as unknown as EchoReport;
    const t = computeTargets({ echo: { result: echo, command: 'x' } });
    const v = (id: string) => t.find((x) => x.id === id)!;
    expect(v('echo-reactor-vs-c-epoll').verdict).toBe('met'); // 1.1 <= 1.15
    expect(v('echo-proactor-vs-c-epoll').verdict).toBe('missed'); // 1.2 > 1.0
    expect(v('echo-reactor-vs-node-net').verdict).toBe('met'); // 11/30 <= 1/1.3
    expect(v('echo-proactor-vs-node-net').measured).toBeCloseTo(0.4);
  });

  it('summarises mitigations', () => {
    expect(mitigationSummary({ a: 'Not affected', b: 'Mitigation: X' })).toBe('b: Mitigation: X; 1 others: Not affected');
    expect(typeof describeMachine().memTotalMiB).toBe('number');
  });
});
