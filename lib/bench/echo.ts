// `iomux bench echo`: every architecture × connection count × message size,
// each cell a fresh `iomux serve` child pinned to one CPU and the native load
// generator pinned to the other; a warm-up run, then the measured run while
// the server process is sampled. Reports req/s, latency, the server's CPU µs
// per request, memory per connection, threads, context switches, and ratios
// against c-epoll and node-net measured in the same run (on a shared 2-core
// machine the ratios and CPU per request are what carry over, not req/s).
import * as os from 'node:os';
import { ARCHS } from '../arch';
import { raiseFileLimit } from '../lab/load';
import { readProcess, type ProcSnapshot } from '../lab/metrics';
import { barChart, type Point } from './charts';
import {
  describeExit,
  effectiveBackend,
  finiteOrNull,
  machineInfo,
  machineLine,
  mdTable,
  num,
  parseVariants,
  pinLoadGenerator,
  sampledRun,
  startServer,
  variantAvailability,
  type MachineInfo,
  type Pinning,
  type Variant,
} from './lab-run';
import { makeProgress, type Progress } from './progress';
import type { Chart, Section } from './section';

export const BASELINES = ['c-epoll', 'node-net'] as const;

export interface EchoOptions {
  /** Arch specs (NAME or NAME:BACKEND or NAME:*); default every registered arch. c-epoll and node-net are always added. */
  archs?: string[];
  /** Or ready-made variants (tests use this for a server that cannot start). */
  variants?: Variant[];
  conns?: number[];
  /** Message size in bytes. */
  size?: number;
  /** Seconds of the measured run. */
  duration?: number;
  /** Seconds of warm-up on the same connections before the measured run; 0 = none. */
  warmup?: number;
  quick?: boolean;
  /** Pin server and load generator to different CPUs (default true). */
  pin?: boolean;
  progress?: Progress;
  /** Called once a cell's server listens (tests use it to make a server crash). */
  onServer?: (info: { label: string; conns: number; pid: number }) => void;
}

export interface EchoCell {
  arch: string;
  archName: string;
  backend: string | null;
  conns: number;
  size: number;
  status: 'ok' | 'failed';
  /** Why it failed (server did not start, crashed, nothing connected, load generator error). */
  error: string | null;
  /** Anything wrong short of failing: verification errors, resets, connect errors… */
  problems: string[];
  serverPid: number | null;
  rps: number | null;
  requests: number | null;
  /** Requests answered (and verified) during the warm-up. */
  warmupRequests: number | null;
  /** Connections the server held at the end (its open fds − before the load). */
  accepted: number | null;
  latencyUs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number } | null;
  cpuUsPerRequest: number | null;
  /** Server CPU over the run in cores (1 = its CPU fully busy). */
  serverCores: number | null;
  /** This process's CPU (the load generator) in cores: near 1 means the generator was the limit. */
  loadgenCores: number | null;
  /** How busy each CPU was over the run, whoever used it (other users of a shared machine included). */
  cpuBusy: { serverCpu: number | null; loadCpu: number | null };
  rssKb: { baseline: number; peak: number } | null;
  pssKb: { baseline: number | null; peak: number | null } | null;
  vmSizeKb: { baseline: number; peak: number } | null;
  rssKbPerConn: number | null;
  pssKbPerConn: number | null;
  vmSizeKbPerConn: number | null;
  threads: { baseline: number; peak: number } | null;
  ctxSwitches: { voluntary: number; involuntary: number } | null;
  ctxSwitchesPerRequest: number | null;
  connected: number | null;
  connectMs: number | null;
  connectErrors: number | null;
  resets: number | null;
  serverCloses: number | null;
  verifyErrors: number | null;
  unanswered: number | null;
  idleConns: number | null;
  serverExit: string | null;
}

export interface EchoRatio {
  arch: string;
  conns: number;
  size: number;
  vs: (typeof BASELINES)[number];
  /** arch / baseline; null when either cell failed. */
  rps: number | null;
  cpuUsPerRequest: number | null;
  p99: number | null;
  rssKbPerConn: number | null;
}

export interface EchoTarget {
  claim: string;
  measured: number | null;
  limit: number;
  met: boolean | null;
}

export interface EchoReport {
  section: 'echo';
  params: { archs: string[]; conns: number[]; size: number; durationS: number; warmupS: number; quick: boolean };
  command: string;
  machine: MachineInfo;
  pinning: Pinning;
  unavailable: Array<{ arch: string; reason: string }>;
  cells: EchoCell[];
  ratios: EchoRatio[];
  targets: EchoTarget[];
  elapsedS: number;
}

export const ECHO_DEFAULT_CONNS = [1, 100, 1000, 10000];
export const ECHO_QUICK_CONNS = [100];

export function echoDefaults(quick: boolean) {
  return quick ? { conns: ECHO_QUICK_CONNS, duration: 1, warmup: 0.3 } : { conns: ECHO_DEFAULT_CONNS, duration: 5, warmup: 1 };
}

export function echoCommand(quick: boolean): string {
  return quick ? 'iomux bench echo --quick' : 'iomux bench echo';
}

function emptyCell(v: Variant, conns: number, size: number, error: string | null): EchoCell {
  return {
    arch: v.label,
    archName: v.arch,
    backend: effectiveBackend(v) ?? null,
    conns,
    size,
    status: error ? 'failed' : 'ok',
    error,
    problems: [],
    serverPid: null,
    rps: null,
    requests: null,
    warmupRequests: null,
    accepted: null,
    latencyUs: null,
    cpuUsPerRequest: null,
    serverCores: null,
    loadgenCores: null,
    cpuBusy: { serverCpu: null, loadCpu: null },
    rssKb: null,
    pssKb: null,
    vmSizeKb: null,
    rssKbPerConn: null,
    pssKbPerConn: null,
    vmSizeKbPerConn: null,
    threads: null,
    ctxSwitches: null,
    ctxSwitchesPerRequest: null,
    connected: null,
    connectMs: null,
    connectErrors: null,
    resets: null,
    serverCloses: null,
    verifyErrors: null,
    unanswered: null,
    idleConns: null,
    serverExit: null,
  };
}

async function runCell(v: Variant, conns: number, size: number, o: { duration: number; warmup: number; pinning: Pinning; progress: Progress; onServer?: EchoOptions['onServer'] }): Promise<EchoCell> {
  const cell = emptyCell(v, conns, size, null);
  const fail = (why: string) => {
    cell.status = 'failed';
    cell.error = why;
    return cell;
  };
  let server;
  try {
    server = await startServer(v, { cpu: o.pinning.serverCpu });
  } catch (err) {
    return fail(`server did not start: ${(err as Error).message}`);
  }
  cell.serverPid = server.pid;
  o.onServer?.({ label: v.label, conns, pid: server.pid });
  const connectTimeout = conns >= 5000 ? 30 : 10;
  try {
    // The idle server, before any connection: the memory baseline.
    let idle: ProcSnapshot | null = null;
    try {
      idle = readProcess(server.pid, { threads: false });
    } catch {
      idle = null;
    }
    o.progress.step(`echo ${v.label} ${conns} conns: connecting, ${o.warmup > 0 ? `${o.warmup} s warm-up + ` : ''}${o.duration} s`);
    let measuring = false;
    const r = await sampledRun(
      server,
      {
        port: server.port,
        conns,
        size,
        warmup: o.warmup,
        duration: o.duration,
        connectTimeout,
        drain: 2,
        onProgress: (p) => {
          if (p.phase === 'run' && !measuring) {
            measuring = true;
            o.progress.step(`echo ${v.label} ${conns} conns: ${o.duration} s measured`);
          }
        },
      },
      o.pinning,
      { waitAccepted: true },
    );
    cell.loadgenCores = r.loadgenCores;
    cell.cpuBusy = r.cpuBusy;
    if (r.error || !r.result) return fail(`load generator: ${r.error ?? 'no result'}`);
    const res = r.result;
    cell.rps = res.rps;
    cell.requests = res.requests;
    cell.warmupRequests = res.warmupRequests;
    cell.accepted = r.fds.baseline !== null && r.fds.max !== null ? Math.max(0, r.fds.max - r.fds.baseline) : null;
    const L = res.latencyUs;
    cell.latencyUs = { p50: L.p50, p90: L.p90, p99: L.p99, p999: L.p999, max: L.max, mean: L.mean };
    cell.connected = res.connected;
    cell.connectMs = res.connectMs;
    cell.connectErrors = res.connectErrors;
    cell.resets = res.resets;
    cell.serverCloses = res.serverCloses;
    cell.verifyErrors = res.verifyErrors;
    cell.unanswered = res.unanswered;
    cell.idleConns = res.idleConns;
    const rep = r.report;
    if (rep) {
      cell.cpuUsPerRequest = res.requests > 0 ? (rep.cpu.totalS * 1e6) / res.requests : null;
      cell.serverCores = rep.wallS > 0 ? rep.cpu.totalS / rep.wallS : null;
      const base = idle ?? rep.first;
      cell.rssKb = { baseline: base.rssKb, peak: rep.peak.rssKb };
      cell.pssKb = { baseline: base.pssKb, peak: rep.peak.pssKb };
      cell.vmSizeKb = { baseline: base.vmSizeKb, peak: rep.peak.vmSizeKb };
      // Per connection the server held: its own count when known (a slow acceptor may not have them all).
      const n = cell.accepted !== null && cell.accepted > 0 ? Math.min(cell.accepted, res.connected) : res.connected;
      cell.rssKbPerConn = n > 0 ? (rep.peak.rssKb - base.rssKb) / n : null;
      cell.pssKbPerConn = n > 0 && base.pssKb !== null && rep.peak.pssKb !== null ? (rep.peak.pssKb - base.pssKb) / n : null;
      cell.vmSizeKbPerConn = n > 0 ? (rep.peak.vmSizeKb - base.vmSizeKb) / n : null;
      cell.threads = { baseline: base.threads, peak: rep.peak.threads };
      cell.ctxSwitches = rep.ctxSwitches;
      cell.ctxSwitchesPerRequest = res.requests > 0 ? (rep.ctxSwitches.voluntary + rep.ctxSwitches.involuntary) / res.requests : null;
    }
    if (res.verifyErrors > 0) cell.problems.push(`${res.verifyErrors} verification errors (${res.firstError ?? ''})`);
    if (res.connectErrors > 0) cell.problems.push(`${res.connectErrors} connect errors (${res.firstConnectError ?? ''})`);
    if (res.resets > 0) cell.problems.push(`${res.resets} resets (${res.firstError ?? ''})`);
    if (res.serverCloses > 0) cell.problems.push(`${res.serverCloses} connections closed by the server`);
    if (res.idleConns > 0) cell.problems.push(`${res.idleConns} connections never answered`);
    if (cell.accepted !== null && cell.accepted < res.connected) cell.problems.push(`the server had accepted only ${cell.accepted} of ${res.connected} connections by the end`);
    if (r.loadgenCores > 0.9) cell.problems.push(`the load generator used ${r.loadgenCores.toFixed(2)} cores: it may have been the limit`);
    if (server.exit) return fail(`server ${describeExit(server.exit)} during the run${server.stderr() ? ': ' + server.stderr() : ''}`);
    if (res.connected === 0) return fail(`nothing connected: ${res.firstConnectError ?? 'unknown'}`);
    if (res.requests === 0) return fail('no request was answered');
    return cell;
  } finally {
    const st = await server.stop();
    if (cell.status === 'ok' && (st.killed || (st.code !== 0 && st.code !== null) || st.signal)) {
      cell.serverExit = st.killed ? 'did not stop on SIGTERM: killed' : describeExit(st);
      cell.problems.push(`server on SIGTERM: ${cell.serverExit}`);
    } else {
      cell.serverExit = describeExit(st);
    }
  }
}

function ratio(a: number | null, b: number | null): number | null {
  return a === null || b === null || b === 0 ? null : a / b;
}

export function echoRatios(cells: EchoCell[]): EchoRatio[] {
  const out: EchoRatio[] = [];
  for (const c of cells) {
    for (const vs of BASELINES) {
      if (c.arch === vs) continue;
      const base = cells.find((b) => b.arch === vs && b.conns === c.conns && b.size === c.size);
      const ok = (x: EchoCell | undefined): x is EchoCell => x !== undefined && x.status === 'ok';
      const both = ok(c) && ok(base);
      out.push({
        arch: c.arch,
        conns: c.conns,
        size: c.size,
        vs,
        rps: both ? ratio(c.rps, base!.rps) : null,
        cpuUsPerRequest: both ? ratio(c.cpuUsPerRequest, base!.cpuUsPerRequest) : null,
        p99: both ? ratio(c.latencyUs?.p99 ?? null, base!.latencyUs?.p99 ?? null) : null,
        rssKbPerConn: both ? ratio(c.rssKbPerConn, base!.rssKbPerConn) : null,
      });
    }
  }
  return out;
}

/** The project's echo targets (64 B, 1000 connections, server CPU per request), where this run has the cells. */
export function echoTargets(cells: EchoCell[]): EchoTarget[] {
  const at = (pred: (c: EchoCell) => boolean) => cells.find((c) => c.conns === 1000 && c.size === 64 && c.status === 'ok' && pred(c));
  const cEpoll = at((c) => c.arch === 'c-epoll');
  const nodeNet = at((c) => c.arch === 'node-net');
  const reactor = at((c) => c.archName === 'reactor' && c.backend === 'epoll');
  const proactor = at((c) => c.archName === 'proactor');
  const out: EchoTarget[] = [];
  const add = (claim: string, a: EchoCell | undefined, b: EchoCell | undefined, limit: number, divide = 1) => {
    if (!a || !b || a.cpuUsPerRequest === null || b.cpuUsPerRequest === null) return;
    const measured = a.cpuUsPerRequest / b.cpuUsPerRequest;
    out.push({ claim, measured, limit: limit / divide, met: measured <= limit / divide });
  };
  add('reactor (epoll) CPU/request ÷ c-epoll ≤ 1.15', reactor, cEpoll, 1.15);
  add('proactor CPU/request ÷ c-epoll ≤ 1.0', proactor, cEpoll, 1.0);
  add('reactor (epoll) CPU/request ÷ node-net ≤ 1/1.3', reactor, nodeNet, 1, 1.3);
  add('proactor CPU/request ÷ node-net ≤ 1/1.3', proactor, nodeNet, 1, 1.3);
  return out;
}

/** Runs the echo benchmark. Never throws for a failing arch: its cells say failed, with the reason. */
export async function benchEcho(options: EchoOptions = {}): Promise<EchoReport> {
  const quick = options.quick ?? false;
  const d = echoDefaults(quick);
  const conns = options.conns ?? d.conns;
  const size = options.size ?? 64;
  const duration = options.duration ?? d.duration;
  const warmup = options.warmup ?? d.warmup;
  const progress = options.progress ?? makeProgress(process.stderr, false);
  let variants = options.variants ?? parseVariants(options.archs ?? ARCHS.map((a) => a.name));
  for (const b of BASELINES) if (!variants.some((v) => v.label === b)) variants = [...variants, { label: b, arch: b }];
  // The baselines first: a cell's ratios are then as close in time as they can be.
  variants = [...variants].sort((a, b) => Number(BASELINES.includes(b.label as never)) - Number(BASELINES.includes(a.label as never)));
  const t0 = performance.now();
  const machine = machineInfo();
  try {
    machine.fileLimit = raiseFileLimit();
  } catch {
    machine.fileLimit = null;
  }
  const unavailable: EchoReport['unavailable'] = [];
  const runnable: Variant[] = [];
  for (const v of variants) {
    const av = variantAvailability(v);
    if (av.available) runnable.push(v);
    else unavailable.push({ arch: v.label, reason: av.reason ?? 'unavailable' });
  }
  const { pinning, restore } = pinLoadGenerator(options.pin ?? true);
  progress.note(`echo: ${runnable.length} archs × conns ${conns.join(',')} × ${size} B, ${warmup} s warm-up + ${duration} s each; ${pinning.note}`);
  const cells: EchoCell[] = [];
  try {
    for (const n of conns) {
      for (const v of variants) {
        const un = unavailable.find((u) => u.arch === v.label);
        if (un) {
          cells.push(emptyCell(v, n, size, `not available here: ${un.reason}`));
          continue;
        }
        const cell = await runCell(v, n, size, { duration, warmup, pinning, progress, onServer: options.onServer });
        cells.push(cell);
        progress.note(
          cell.status === 'ok'
            ? `echo ${v.label} ${n} conns: ${num(cell.rps, 0)} req/s, p99 ${num(cell.latencyUs?.p99)} µs, ${num(cell.cpuUsPerRequest, 2)} CPU µs/req${cell.problems.length ? ' (' + cell.problems.join('; ') + ')' : ''}`
            : `echo ${v.label} ${n} conns: FAILED: ${cell.error}`,
        );
      }
    }
  } finally {
    restore();
    progress.done();
  }
  machine.loadavgEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const archs = variants.map((v) => v.label);
  return {
    section: 'echo',
    params: { archs, conns, size, durationS: duration, warmupS: warmup, quick },
    command: quick ? echoCommand(true) : `iomux bench echo --archs ${archs.join(',')} --conns ${conns.join(',')} --size ${size} --duration ${duration} --warmup ${warmup}`,
    machine,
    pinning,
    unavailable,
    cells,
    ratios: echoRatios(cells),
    targets: echoTargets(cells),
    elapsedS: (performance.now() - t0) / 1000,
  };
}

// ---- presentation -------------------------------------------------------------

function ratioOf(r: EchoReport, c: EchoCell, vs: (typeof BASELINES)[number], key: 'rps' | 'cpuUsPerRequest'): string {
  const row = r.ratios.find((x) => x.arch === c.arch && x.conns === c.conns && x.size === c.size && x.vs === vs);
  return row ? num(row[key], 2) : c.arch === vs ? '1' : '-';
}

/** The tables (Markdown; also what the CLI prints). */
export function echoMarkdown(r: EchoReport): string {
  const out: string[] = [];
  out.push(`Echo, ${r.params.size} B messages, closed loop, depth 1; each cell a fresh server, its connections opened, a warm-up on them of ${r.params.warmupS} s or until the server has accepted every one (whichever is longer), then ${r.params.durationS} s measured.`);
  out.push(`Machine: ${machineLine(r.machine)}. Pinning: ${r.pinning.note}.`);
  out.push(`Command: \`${r.command}\``);
  out.push('');
  const perf = [['arch', 'conns', 'req/s', 'p50 µs', 'p99 µs', 'CPU µs/req', '÷ c-epoll', '÷ node-net', 'req/s ÷ c-epoll', 'server cores', 'CPU busy (srv/load)', 'ctx sw/req', 'threads']];
  const mem = [['arch', 'conns', 'RSS KiB/conn', 'PSS KiB/conn', 'VmSize KiB/conn', 'RSS MiB (base → peak)', 'VmSize MiB (peak)']];
  const failed: string[] = [];
  for (const c of r.cells) {
    if (c.status !== 'ok') {
      failed.push(`- ${c.arch}, ${c.conns} conns: ${c.error}`);
      continue;
    }
    const busy = c.cpuBusy.serverCpu === null ? '-' : `${num(c.cpuBusy.serverCpu, 2)} / ${num(c.cpuBusy.loadCpu, 2)}`;
    perf.push([
      c.arch,
      String(c.conns),
      num(c.rps, 0),
      num(c.latencyUs?.p50),
      num(c.latencyUs?.p99),
      num(c.cpuUsPerRequest, 2),
      ratioOf(r, c, 'c-epoll', 'cpuUsPerRequest'),
      ratioOf(r, c, 'node-net', 'cpuUsPerRequest'),
      ratioOf(r, c, 'c-epoll', 'rps'),
      num(c.serverCores, 2),
      busy,
      num(c.ctxSwitchesPerRequest, 2),
      c.threads ? String(c.threads.peak) : '-',
    ]);
    mem.push([
      c.arch,
      String(c.conns),
      num(c.rssKbPerConn, 2),
      num(c.pssKbPerConn, 2),
      num(c.vmSizeKbPerConn, 1),
      c.rssKb ? `${num(c.rssKb.baseline / 1024)} → ${num(c.rssKb.peak / 1024)}` : '-',
      c.vmSizeKb ? num(c.vmSizeKb.peak / 1024, 0) : '-',
    ]);
  }
  out.push('Throughput and cost (CPU µs/req is the server\'s user + system CPU over the run divided by the requests answered; "÷" columns are ratios to the baseline\'s cell at the same connection count, taken in this run):');
  out.push('');
  out.push(mdTable(perf));
  out.push('Memory per connection ((peak during the run − the idle server before the first connection) / connections the server held; for the JS archs this includes what the first requests cost once, JIT and heap growth, which only the larger counts amortise; at 1 connection these figures are noise. A negative figure means RSS shrank over the run (the heap and freed pages of a Node process move its RSS by about a MiB either way): the cost per connection is then below what this resolves.):');
  out.push('');
  out.push(mdTable(mem));
  if (r.targets.length) {
    out.push('Targets (64 B, 1000 connections, server CPU per request):');
    out.push('');
    out.push(mdTable([['target', 'measured', 'limit', 'met'], ...r.targets.map((t) => [t.claim, num(t.measured, 2), num(t.limit, 2), t.met === null ? '-' : t.met ? 'yes' : 'no'])]));
  }
  const problems = r.cells.filter((c) => c.status === 'ok' && c.problems.length).map((c) => `- ${c.arch}, ${c.conns} conns: ${c.problems.join('; ')}`);
  if (problems.length) out.push('Problems seen:\n\n' + problems.join('\n') + '\n');
  if (failed.length) out.push('Failed cells:\n\n' + failed.join('\n') + '\n');
  return out.join('\n');
}

export async function echoCharts(r: EchoReport): Promise<Chart[]> {
  const ok = r.cells.filter((c) => c.status === 'ok');
  const cpu: Point[] = ok.filter((c) => c.cpuUsPerRequest !== null).map((c) => ({ series: `${c.conns} conns`, x: c.arch, y: c.cpuUsPerRequest! }));
  const charts: Chart[] = [];
  if (cpu.length) {
    charts.push({
      file: 'echo-cpu-per-request.svg',
      caption: `CPU µs per request per architecture (echo ${r.params.size} B; server user + system CPU / requests)`,
      svg: await barChart(cpu, { title: 'CPU µs per request per architecture', xTitle: 'architecture', yTitle: 'server CPU µs per request' }),
    });
  }
  // Memory at the largest connection count each arch reached: RSS vs VmSize (log scale: VmSize is often 1000× RSS).
  const largest = new Map<string, (typeof ok)[number]>();
  for (const c of ok) if (c.conns >= 100 && (!largest.has(c.arch) || largest.get(c.arch)!.conns < c.conns)) largest.set(c.arch, c);
  const mem: Point[] = [];
  const top = Math.max(...r.params.conns);
  for (const c of largest.values()) {
    const x = c.conns === top ? c.arch : `${c.arch} (${c.conns})`;
    if (c.rssKbPerConn !== null && c.rssKbPerConn > 0) mem.push({ series: 'RSS', x, y: c.rssKbPerConn });
    if (c.vmSizeKbPerConn !== null && c.vmSizeKbPerConn > 0) mem.push({ series: 'VmSize', x, y: c.vmSizeKbPerConn });
  }
  if (mem.length) {
    charts.push({
      file: 'echo-memory-per-connection.svg',
      caption: `Memory per connection, resident (RSS) vs virtual (VmSize), at ${top.toLocaleString('en-US')} connections (or the largest count an arch ran, in parentheses); log scale, a bar is missing where that growth was zero or negative`,
      svg: await barChart(mem, { title: 'memory per connection', xTitle: 'architecture (connections)', yTitle: 'KiB per connection', logY: true }),
    });
  }
  return charts;
}

export const echoSection: Section<EchoReport> = {
  name: 'echo',
  title: 'Echo: architectures × connections',
  command: echoCommand,
  run: ({ quick, progress }) => benchEcho({ quick, progress }),
  markdown: echoMarkdown,
  charts: echoCharts,
};
