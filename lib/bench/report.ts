// `iomux report`: every section (backends, syscalls, dispatch, echo, c10k,
// verify) in one run, then the performance targets judged from that run.
// Writes DIR/results.json (everything), DIR/report.md (tables, the machine,
// the load it ran under) and DIR/*.svg (charts through lib/bench/charts.ts).
// A section that throws is recorded as failed with its error; the others
// still run.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backends, type BackendStatus } from '../poller';
import { benchSyscalls, type SyscallReport } from './syscalls';
import { benchDispatch, type DispatchReport } from './dispatch';
import './dispatch-loop'; // registers the EventLoop runner
import { benchEcho, echoCharts, echoMarkdown, type EchoReport } from './echo';
import { benchC10k, c10kCharts, c10kMarkdown, type C10kReport } from './c10k';
import { verify, verifyCharts, verifyCommand, verifyMarkdown, type VerifyReport } from './verify';
import { computeTargets, targetsMarkdown, type TargetRow } from './targets';
import { lineChart, type Point } from './charts';
import { mdTable, num } from './lab-run';
import { makeProgress, type Progress } from './progress';
import { syscallsText, dispatchText } from '../commands/bench';
import type { Chart, Section } from './section';

export const SECTION_NAMES = ['backends', 'syscalls', 'dispatch', 'echo', 'c10k', 'verify'] as const;

// ---- the machine ------------------------------------------------------------------

export interface MachineDescription {
  cpu: string;
  /** cpu family / model from /proc/cpuinfo, where present. */
  cpuFamily: string | null;
  cpuModel: string | null;
  cores: number;
  /** "hypervisor" flag in /proc/cpuinfo: a virtual machine. */
  virtualized: boolean;
  memTotalMiB: number;
  kernel: string;
  kernelVersion: string;
  node: string;
  /** /sys/devices/system/cpu/vulnerabilities: file name -> its line. */
  mitigations: Record<string, string>;
  loadavgStart: number[];
  loadavgEnd: number[];
  /** /proc/loadavg's runnable/total when the report started. */
  tasksStart: string | null;
  /** CPU time over the whole report: every CPU, this process and its children, and the rest (other users). */
  cpuSeconds: { wall: number; machineBusy: number | null; ours: number | null; others: number | null } | null;
}

function readText(p: string): string | null {
  try {
    return fs.readFileSync(p, 'latin1');
  } catch {
    return null;
  }
}

function cpuinfoField(text: string | null, name: string): string | null {
  if (!text) return null;
  const m = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text);
  return m ? m[1].trim() : null;
}

export function mitigations(): Record<string, string> {
  const dir = '/sys/devices/system/cpu/vulnerabilities';
  const out: Record<string, string> = {};
  try {
    for (const f of fs.readdirSync(dir).sort()) {
      const t = readText(path.join(dir, f));
      if (t !== null) out[f] = t.trim();
    }
  } catch {
    /* not Linux */
  }
  return out;
}

/** Busy jiffies of the whole machine, and this process + its waited-for children, in seconds. */
function cpuCounters(): { machineBusy: number | null; ours: number | null } {
  const hz = 100; // USER_HZ: what /proc reports in, on every Linux ABI in use
  let machineBusy: number | null = null;
  const stat = readText('/proc/stat');
  const m = stat ? /^cpu\s+(.*)$/m.exec(stat) : null;
  if (m) {
    const f = m[1].trim().split(/\s+/).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    machineBusy = (total - f[3] - (f[4] ?? 0)) / hz;
  }
  let ours: number | null = null;
  const self = readText('/proc/self/stat');
  if (self) {
    const rest = self.slice(self.lastIndexOf(')') + 2).split(' ');
    ours = (Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14])) / hz;
  }
  return { machineBusy, ours };
}

export function describeMachine(): MachineDescription {
  const info = readText('/proc/cpuinfo');
  const mem = readText('/proc/meminfo');
  const memKb = mem ? Number(/^MemTotal:\s+(\d+)/m.exec(mem)?.[1] ?? NaN) : NaN;
  const loadavg = readText('/proc/loadavg');
  return {
    cpu: cpuinfoField(info, 'model name') ?? os.cpus()[0]?.model ?? 'unknown',
    cpuFamily: cpuinfoField(info, 'cpu family'),
    cpuModel: cpuinfoField(info, 'model'),
    cores: typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length,
    virtualized: /\bhypervisor\b/.test(cpuinfoField(info, 'flags') ?? ''),
    memTotalMiB: Number.isFinite(memKb) ? Math.round(memKb / 1024) : Math.round(os.totalmem() / 1048576),
    kernel: `${os.type()} ${os.release()}`,
    kernelVersion: typeof os.version === 'function' ? os.version() : '',
    node: process.version,
    mitigations: mitigations(),
    loadavgStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    loadavgEnd: [],
    tasksStart: loadavg ? (loadavg.split(' ')[3] ?? null) : null,
    cpuSeconds: null,
  };
}

/** Mitigations grouped: the ones in force listed, the "Not affected" ones counted. */
export function mitigationSummary(m: Record<string, string>): string {
  const entries = Object.entries(m);
  if (!entries.length) return 'unknown (no /sys/devices/system/cpu/vulnerabilities)';
  const affected = entries.filter(([, v]) => v !== 'Not affected');
  const not = entries.length - affected.length;
  return (affected.map(([k, v]) => `${k}: ${v}`).join('; ') || 'none') + (not ? `; ${not} others: Not affected` : '');
}

export function machineMarkdown(m: MachineDescription): string {
  const c = m.cpuSeconds;
  const rows = [
    ['', ''],
    ['CPU', `${m.cpu}${m.cpuFamily ? ` (family ${m.cpuFamily}, model ${m.cpuModel})` : ''}, ${m.cores} CPUs${m.virtualized ? ', virtual machine (hypervisor flag set)' : ''}`],
    ['Memory', `${(m.memTotalMiB / 1024).toFixed(1)} GiB`],
    ['Kernel', `${m.kernel} ${m.kernelVersion}`.trim()],
    ['Mitigations (/sys/devices/system/cpu/vulnerabilities)', mitigationSummary(m.mitigations)],
    ['Node', m.node],
    ['Load average (1, 5, 15 min)', `${m.loadavgStart.join(' ')} at the start, ${m.loadavgEnd.join(' ') || '-'} at the end; ${m.tasksStart ?? '?'} tasks runnable/total at the start`],
  ];
  if (c && c.machineBusy !== null && c.ours !== null && c.others !== null) {
    rows.push([
      'CPU used during the run',
      `${num(c.machineBusy, 0)} CPU-seconds in ${num(c.wall, 0)} s on ${m.cores} CPUs: ${num(c.ours, 0)} by the report and its children, ${num(c.others, 0)} by other processes (${num(c.others / c.wall, 2)} CPUs on average)`,
    ]);
  }
  return mdTable(rows.map((r) => r.map((x) => x.replace(/\|/g, '\\|'))));
}

// ---- sections -----------------------------------------------------------------------

export interface ReportConfig {
  quick: boolean;
  /** Tiny sizes everywhere (tests). */
  tiny: boolean;
}

/** What sections hand to later ones (verify takes the syscalls figures of the same run). */
interface Shared {
  syscalls?: { result: SyscallReport; command: string };
}

const code = (text: string) => '```\n' + text.trimEnd() + '\n```\n';

function backendsSection(): Section<BackendStatus[]> {
  return {
    name: 'backends',
    title: 'Backends available here',
    command: () => 'iomux backends --json',
    run: async () => backends(),
    markdown(list) {
      const rows = [['backend', 'available', 'level', 'edge', 'oneshot', 'exclusive', 'reason']];
      for (const b of list) rows.push([b.name, b.available ? 'yes' : 'no', b.modes.level, b.modes.edge, b.modes.oneshot, b.modes.exclusive, (b.reason ?? '').replace(/\|/g, '\\|')]);
      return mdTable(rows);
    },
  };
}

function syscallsParams(cfg: ReportConfig) {
  if (cfg.tiny) return { fdCounts: [1, 10], targetMs: 1, reps: 1 };
  return cfg.quick ? { fdCounts: [1, 100, 1000], targetMs: 10, reps: 3 } : { fdCounts: [1, 10, 100, 1000], targetMs: 50, reps: 5 };
}

function syscallsSection(cfg: ReportConfig, shared: Shared): Section<SyscallReport> {
  const p = syscallsParams(cfg);
  const command = () => (cfg.tiny ? `iomux bench syscalls --fds ${p.fdCounts.join(',')} --target-ms ${p.targetMs} --reps ${p.reps}` : cfg.quick ? 'iomux bench syscalls --quick' : 'iomux bench syscalls');
  return {
    name: 'syscalls',
    title: 'What a call costs, from C and from JS',
    command,
    async run({ progress }) {
      progress.step('syscalls: gettid, idle waits, io_uring NOP, ping-pong (C and JS)');
      const r = await benchSyscalls({ ...p, progress: false });
      shared.syscalls = { result: r, command: command() };
      return r;
    },
    markdown: (r) => `By the thread's CPU time (the steadier figure on a shared machine; the wall-clock figures are in results.json):\n\n${code(syscallsText(r, 'cpu'))}`,
    async charts(r) {
      const pts: Point[] = [];
      for (const row of r.rows) {
        if (row.op !== 'wait-idle' || row.skipped || !row.backend || row.fds === undefined) continue;
        const y = row.cCpuNs ?? row.cBackendCpuNs;
        if (y !== null && y > 0) pts.push({ series: row.backend, x: row.fds, y: y / 1000 });
      }
      if (!pts.length) return [];
      return [
        {
          file: 'wait-cost-vs-idle-fds.svg',
          caption: 'One wait with nothing ready vs idle fds watched, per backend (C loop, thread CPU time; log-log)',
          svg: await lineChart(pts, { title: 'wait with nothing ready vs idle fds', xTitle: 'idle fds watched', yTitle: 'µs per wait', logX: true, logY: true }),
        },
      ];
    },
  };
}

function dispatchParams(cfg: ReportConfig) {
  if (cfg.tiny) return { sizes: [100], runs: 1 };
  return cfg.quick ? { sizes: [100, 1000], runs: 5 } : { sizes: [100, 1000, 9000], runs: 25 };
}

function dispatchSection(cfg: ReportConfig): Section<DispatchReport> {
  const p = dispatchParams(cfg);
  return {
    name: 'dispatch',
    title: "Dispatch: libevent's bench.c on every backend",
    command: () => (cfg.tiny ? `iomux bench dispatch --sizes ${p.sizes.join(',')} --runs ${p.runs}` : cfg.quick ? 'iomux bench dispatch --quick' : 'iomux bench dispatch'),
    async run({ progress }) {
      progress.step(`dispatch: n = ${p.sizes.join(', ')}, ${p.runs} runs per runner and backend`);
      return benchDispatch({ ...p, progress: false });
    },
    markdown: (r) => code(dispatchText(r)),
    async charts(r) {
      const pts: Point[] = [];
      for (const row of r.rows) {
        if (row.runner !== 'native' && row.runner !== 'eventloop') continue;
        pts.push({ series: `${row.backend} (${row.runner === 'native' ? 'C loop' : 'EventLoop'})`, x: row.n, y: row.perEventCpuUs });
      }
      if (!pts.length) return [];
      return [
        {
          file: 'dispatch-cost-vs-n.svg',
          caption: 'Dispatch cost per event vs n (socketpairs), per backend: the C loop and the TypeScript EventLoop (thread CPU time; log x)',
          svg: await lineChart(pts, { title: 'dispatch: µs per event vs n', xTitle: 'n (socketpairs)', yTitle: 'CPU µs per event', logX: true }),
        },
      ];
    },
  };
}

function echoSectionFor(cfg: ReportConfig): Section<EchoReport> {
  // Quick: every arch at 1000 connections only (the connection count of the targets).
  const o = cfg.tiny
    ? { archs: ['c-epoll', 'node-net'], conns: [2], duration: 0.2, warmup: 0 }
    : cfg.quick
      ? { conns: [1000], duration: 1, warmup: 0.3 }
      : {};
  return {
    name: 'echo',
    title: 'Echo: architectures × connections',
    command: () => (cfg.tiny ? 'iomux bench echo --archs c-epoll,node-net --conns 2 --duration 0.2 --warmup 0' : cfg.quick ? 'iomux bench echo --conns 1000 --duration 1 --warmup 0.3' : 'iomux bench echo'),
    run: ({ progress }) => benchEcho({ ...o, progress }),
    markdown: echoMarkdown,
    charts: echoCharts,
  };
}

function c10kSectionFor(cfg: ReportConfig): Section<C10kReport> {
  const o = cfg.tiny ? { archs: ['c-epoll'], steps: [10], duration: 0.2, connectTimeout: 5 } : { quick: cfg.quick };
  return {
    name: 'c10k',
    title: 'C10K: holding 10,000 connections',
    command: () => (cfg.tiny ? 'iomux bench c10k --archs c-epoll --steps 10 --duration 0.2 --connect-timeout 5' : cfg.quick ? 'iomux bench c10k --quick' : 'iomux bench c10k'),
    run: ({ progress }) => benchC10k({ ...o, progress }),
    markdown: c10kMarkdown,
    charts: c10kCharts,
  };
}

function verifySectionFor(cfg: ReportConfig, shared: Shared): Section<VerifyReport> {
  return {
    name: 'verify',
    title: 'The claims, verified',
    command: () => verifyCommand({ quick: cfg.quick, tiny: cfg.tiny }),
    run: ({ progress }) => verify({ quick: cfg.quick, tiny: cfg.tiny, progress, syscalls: shared.syscalls?.result, syscallsCommand: shared.syscalls?.command }),
    markdown: verifyMarkdown,
    charts: verifyCharts,
  };
}

/** The report's sections, in order. */
export function reportSections(cfg: ReportConfig): Section[] {
  const shared: Shared = {};
  return [
    backendsSection(),
    syscallsSection(cfg, shared),
    dispatchSection(cfg),
    echoSectionFor(cfg),
    c10kSectionFor(cfg),
    verifySectionFor(cfg, shared),
  ] as Section[];
}

// ---- running ----------------------------------------------------------------------------

export interface SectionResult {
  name: string;
  title: string;
  command: string;
  status: 'ok' | 'failed';
  /** The error of a failed section (message, then the stack's first lines). */
  error: string | null;
  elapsedS: number;
  result: unknown;
  /** Chart files written for it (inside the report's directory). */
  charts: Array<{ file: string; caption: string }>;
  /** Charts that could not be rendered. */
  chartErrors: string[];
}

export interface ReportResults {
  tool: 'iomux report';
  version: string;
  command: string;
  startedAt: string;
  elapsedS: number;
  quick: boolean;
  tiny: boolean;
  outDir: string;
  machine: MachineDescription;
  sections: SectionResult[];
  targets: TargetRow[];
}

export interface ReportOptions {
  outDir: string;
  quick?: boolean;
  tiny?: boolean;
  /** Section names to run (default: all). */
  only?: string[];
  /** Replaces the built-in sections (tests). */
  sections?: Section[];
  progress?: Progress;
  /** The command line to record (default: built from the options). */
  command?: string;
}

function version(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require('../../package.json').version as string;
  } catch {
    return 'unknown';
  }
}

export function reportCommandLine(o: { outDir?: string; quick?: boolean; tiny?: boolean; only?: string[] }): string {
  return ['iomux report', o.outDir && o.outDir !== 'iomux-report' ? `--out ${o.outDir}` : '', o.quick ? '--quick' : '', o.tiny ? '--tiny' : '', o.only?.length ? `--sections ${o.only.join(',')}` : '']
    .filter(Boolean)
    .join(' ');
}

export async function runReport(options: ReportOptions): Promise<ReportResults> {
  const quick = options.quick ?? false;
  const tiny = options.tiny ?? false;
  const outDir = options.outDir;
  const progress = options.progress ?? makeProgress(process.stderr, false);
  fs.mkdirSync(outDir, { recursive: true });
  let sections = options.sections ?? reportSections({ quick, tiny });
  if (options.only) {
    const known = sections.map((s) => s.name);
    for (const n of options.only) if (!known.includes(n)) throw new RangeError(`unknown section '${n}' (one of: ${known.join(', ')})`);
    sections = sections.filter((s) => options.only!.includes(s.name));
  }
  const t0 = performance.now();
  const machine = describeMachine();
  const cpu0 = cpuCounters();
  const results: SectionResult[] = [];
  for (let i = 0; i < sections.length; i++) {
    const s = sections[i];
    const st = performance.now();
    progress.step(`[${i + 1}/${sections.length}] ${s.name}: ${s.command(quick)}`);
    const r: SectionResult = { name: s.name, title: s.title, command: s.command(quick), status: 'ok', error: null, elapsedS: 0, result: null, charts: [], chartErrors: [] };
    try {
      r.result = await s.run({ quick, progress, outDir });
    } catch (err) {
      const e = err as Error;
      r.status = 'failed';
      r.error = e && e.stack ? e.stack.split('\n').slice(0, 4).join('\n') : String(err);
    }
    if (r.status === 'ok' && s.charts) {
      try {
        for (const c of await s.charts(r.result)) {
          try {
            fs.writeFileSync(path.join(outDir, c.file), c.svg);
            r.charts.push({ file: c.file, caption: c.caption });
          } catch (err) {
            r.chartErrors.push(`${c.file}: ${(err as Error).message}`);
          }
        }
      } catch (err) {
        r.chartErrors.push((err as Error).message);
      }
    }
    r.elapsedS = (performance.now() - st) / 1000;
    results.push(r);
    progress.note(`[${i + 1}/${sections.length}] ${s.name}: ${r.status === 'ok' ? 'done' : 'FAILED: ' + (r.error ?? '').split('\n')[0]} (${r.elapsedS.toFixed(1)} s)`);
  }
  const get = <T>(name: string) => {
    const r = results.find((x) => x.name === name && x.status === 'ok');
    return r ? { result: r.result as T, command: r.command } : null;
  };
  const targets = computeTargets({
    syscalls: get<SyscallReport>('syscalls'),
    dispatch: get<DispatchReport>('dispatch'),
    echo: get<EchoReport>('echo'),
    verify: get<VerifyReport>('verify'),
  });
  const elapsedS = (performance.now() - t0) / 1000;
  machine.loadavgEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const cpu1 = cpuCounters();
  if (cpu0.machineBusy !== null && cpu1.machineBusy !== null && cpu0.ours !== null && cpu1.ours !== null) {
    const busy = cpu1.machineBusy - cpu0.machineBusy;
    const ours = cpu1.ours - cpu0.ours;
    machine.cpuSeconds = { wall: elapsedS, machineBusy: busy, ours, others: Math.max(0, busy - ours) };
  }
  const report: ReportResults = {
    tool: 'iomux report',
    version: version(),
    command: options.command ?? reportCommandLine({ outDir, quick, tiny, only: options.only }),
    startedAt: new Date(Date.now() - elapsedS * 1000).toISOString(),
    elapsedS,
    quick,
    tiny,
    outDir: path.resolve(outDir),
    machine,
    sections: results,
    targets,
  };
  fs.writeFileSync(path.join(outDir, 'results.json'), JSON.stringify(report, null, 2) + '\n');
  fs.writeFileSync(path.join(outDir, 'report.md'), reportMarkdown(report, sections));
  progress.done();
  return report;
}

// ---- report.md --------------------------------------------------------------------------

export function reportMarkdown(r: ReportResults, sections: Section[] = []): string {
  const out: string[] = [];
  out.push('# iomux report');
  out.push('');
  out.push(`Generated by \`${r.command}\` (iomux ${r.version}) on ${r.startedAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC')}, in ${num(r.elapsedS, 0)} s.`);
  out.push('');
  out.push('## The machine');
  out.push('');
  out.push(machineMarkdown(r.machine));
  const failed = r.sections.filter((s) => s.status === 'failed');
  if (failed.length) {
    out.push('## Failed sections');
    out.push('');
    for (const s of failed) out.push(`- **${s.name}** (\`${s.command}\`): ${(s.error ?? '').split('\n')[0]}`);
    out.push('');
  }
  if (r.targets.length) {
    out.push('## Performance targets');
    out.push('');
    out.push('Each target judged from the figures of this run (ratios by thread or server CPU time).');
    out.push('');
    out.push(targetsMarkdown(r.targets));
  }
  const verify = r.sections.find((s) => s.name === 'verify' && s.status === 'ok');
  if (verify) {
    const v = verify.result as VerifyReport;
    out.push('## Claims at a glance');
    out.push('');
    out.push(mdTable([['claim', 'verdict'], ...v.rows.map((x) => [x.claim.replace(/\|/g, '\\|'), `**${x.verdict}**`])]));
  }
  for (const s of r.sections) {
    out.push(`## ${s.title}`);
    out.push('');
    out.push(`Command: \`${s.command}\` (${num(s.elapsedS, 1)} s)`);
    out.push('');
    if (s.status === 'failed') {
      out.push('**Failed:**');
      out.push('');
      out.push(code(s.error ?? 'unknown error'));
      continue;
    }
    const sec = sections.find((x) => x.name === s.name);
    if (sec) {
      try {
        out.push(sec.markdown(s.result));
      } catch (err) {
        out.push(`(could not render this section's tables: ${(err as Error).message})`);
      }
      out.push('');
    }
    for (const c of s.charts) {
      out.push(`![${c.caption.replace(/[[\]]/g, '')}](${c.file})`);
      out.push('');
      out.push(`*${c.caption}*`);
      out.push('');
    }
    for (const e of s.chartErrors) out.push(`(chart not rendered: ${e})\n`);
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n') + '\n';
}
