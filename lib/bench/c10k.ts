// `iomux bench c10k`: each architecture is ramped up to 10,000 connections
// in steps; at each step every connection is opened and held while 1% of
// them (--active-ratio) keep sending, so the step measures what holding the
// connections costs (memory per connection, resident vs virtual; threads),
// how fast they were accepted, and the p99 latency of the few active ones.
// The ramp stops at the first step where the server died, or connections could
// not be made or were cut; what failed first, and how, is the result. Every step is
// bounded in time (connect timeout, run, drain, watchdog).
import * as os from 'node:os';
import { findArch } from '../arch';
import { raiseFileLimit } from '../lab/load';
import { readProcess } from '../lab/metrics';
import { native } from '../native';
import { barChart, type Point } from './charts';
import {
  countFds,
  describeExit,
  effectiveBackend,
  machineInfo,
  machineLine,
  mdTable,
  num,
  parseVariants,
  pinLoadGenerator,
  sampledRun,
  startServer,
  variantAvailability,
  waitForFds,
  type MachineInfo,
  type Pinning,
  type Variant,
} from './lab-run';
import { makeProgress, type Progress } from './progress';
import type { Chart, Section } from './section';

/** The archs of the c10k story, in this order, where registered (reactor once per available backend). */
export const C10K_ARCHS = ['threads', 'thread-pool', 'reactor:*', 'proactor', 'multi-reactor', 'node-net', 'c-epoll', 'c-uring'];

export interface C10kOptions {
  archs?: string[];
  variants?: Variant[];
  /** Connection counts of the ramp, ascending. */
  steps?: number[];
  /** Fraction of the connections that send (default 0.01). */
  activeRatio?: number;
  /** Seconds of traffic per step, once all are connected. */
  duration?: number;
  /** Seconds to wait for a step's connections. */
  connectTimeout?: number;
  quick?: boolean;
  pin?: boolean;
  progress?: Progress;
  onServer?: (info: { label: string; pid: number }) => void;
}

export type FailureKind =
  | 'server-start'
  | 'server-crash'
  | 'load-error'
  | 'step-timeout'
  | 'emfile'
  | 'connect-timeout'
  | 'connect-refused'
  | 'connect-error'
  | 'verify-errors'
  | 'resets'
  | 'server-closes'
  | 'never-answered'
  | 'fd-setsize'
  | 'not-accepted'
  | 'unanswered';

export interface Failure {
  kind: FailureKind;
  detail: string;
}

export interface C10kStep {
  conns: number;
  /** ok; problem (something went wrong but the server holds the connections); failed (the ramp stops here). */
  status: 'ok' | 'problem' | 'failed';
  failure: Failure | null;
  problems: Failure[];
  connected: number | null;
  activeConns: number | null;
  connectMs: number | null;
  /** Connections per second while opening them all (client side: a connect completes in the server's backlog). */
  connectRate: number | null;
  /** Connections the server held (its open fds − before the step). */
  accepted: number | null;
  /** From the start of the step until the server held every connection (null if it never did). */
  acceptMs: number | null;
  /** conns / acceptMs: how fast the server took them. */
  acceptRate: number | null;
  connectErrors: number | null;
  firstConnectError: string | null;
  resets: number | null;
  serverCloses: number | null;
  verifyErrors: number | null;
  idleConns: number | null;
  unanswered: number | null;
  requests: number | null;
  rps: number | null;
  latencyUs: { p50: number; p99: number; max: number } | null;
  cpuUsPerRequest: number | null;
  rssKb: number | null;
  pssKb: number | null;
  vmSizeKb: number | null;
  threads: number | null;
  /** (peak during the step − the idle server before the ramp) / connected. */
  rssKbPerConn: number | null;
  pssKbPerConn: number | null;
  vmSizeKbPerConn: number | null;
  ctxSwitches: { voluntary: number; involuntary: number } | null;
  loadgenCores: number | null;
  cpuBusy: { serverCpu: number | null; loadCpu: number | null };
}

export interface C10kArch {
  arch: string;
  archName: string;
  backend: string | null;
  status: 'ok' | 'failed' | 'unavailable';
  /** Why the arch did not run at all (unavailable, server did not start). */
  error: string | null;
  serverPid: number | null;
  /** The idle server before the first step. */
  baseline: { rssKb: number; pssKb: number | null; vmSizeKb: number; threads: number } | null;
  steps: C10kStep[];
  /** The most connections the server held open at once (connected, not cut, accepted). */
  maxHeld: number;
  /** The first step where anything went wrong, and what. */
  firstFailure: (Failure & { conns: number }) | null;
  serverExit: string | null;
  serverStderr: string | null;
}

export interface C10kReport {
  section: 'c10k';
  params: { archs: string[]; steps: number[]; activeRatio: number; durationS: number; connectTimeoutS: number; quick: boolean };
  command: string;
  machine: MachineInfo;
  pinning: Pinning;
  archs: C10kArch[];
  elapsedS: number;
}

export function c10kDefaults(quick: boolean) {
  // Quick: one step, past select's FD_SETSIZE (1024).
  return quick ? { steps: [1500], duration: 1, connectTimeout: 10 } : { steps: [1000, 2000, 5000, 10000], duration: 3, connectTimeout: 30 };
}

export function c10kCommand(quick: boolean): string {
  return quick ? 'iomux bench c10k --quick' : 'iomux bench c10k';
}

/** The default variants: C10K_ARCHS where registered. */
export function c10kVariants(specs: readonly string[] = C10K_ARCHS): Variant[] {
  return parseVariants(specs.filter((s) => findArch(s.split(':')[0]) !== undefined));
}

function classifyConnectError(first: string | null): FailureKind {
  const f = first ?? '';
  if (/EMFILE|ENFILE/.test(f)) return 'emfile';
  if (/not connected before|ETIMEDOUT/.test(f)) return 'connect-timeout';
  if (/ECONNREFUSED/.test(f)) return 'connect-refused';
  return 'connect-error';
}

function emptyStep(conns: number): C10kStep {
  return {
    conns,
    status: 'ok',
    failure: null,
    problems: [],
    connected: null,
    activeConns: null,
    connectMs: null,
    connectRate: null,
    accepted: null,
    acceptMs: null,
    acceptRate: null,
    connectErrors: null,
    firstConnectError: null,
    resets: null,
    serverCloses: null,
    verifyErrors: null,
    idleConns: null,
    unanswered: null,
    requests: null,
    rps: null,
    latencyUs: null,
    cpuUsPerRequest: null,
    rssKb: null,
    pssKb: null,
    vmSizeKb: null,
    threads: null,
    rssKbPerConn: null,
    pssKbPerConn: null,
    vmSizeKbPerConn: null,
    ctxSwitches: null,
    loadgenCores: null,
    cpuBusy: { serverCpu: null, loadCpu: null },
  };
}

async function rampArch(
  v: Variant,
  o: { steps: number[]; activeRatio: number; duration: number; connectTimeout: number; pinning: Pinning; progress: Progress; onServer?: C10kOptions['onServer'] },
): Promise<C10kArch> {
  const out: C10kArch = {
    arch: v.label,
    archName: v.arch,
    backend: effectiveBackend(v) ?? null,
    status: 'ok',
    error: null,
    serverPid: null,
    baseline: null,
    steps: [],
    maxHeld: 0,
    firstFailure: null,
    serverExit: null,
    serverStderr: null,
  };
  o.progress.step(`c10k ${v.label}: starting the server`);
  let server;
  try {
    server = await startServer(v, { cpu: o.pinning.serverCpu });
  } catch (err) {
    out.status = 'failed';
    out.error = `server did not start: ${(err as Error).message}`;
    out.firstFailure = { conns: 0, kind: 'server-start', detail: out.error };
    return out;
  }
  out.serverPid = server.pid;
  o.onServer?.({ label: v.label, pid: server.pid });
  try {
    const idleFds = countFds(server.pid);
    try {
      const b = readProcess(server.pid, { threads: false });
      out.baseline = { rssKb: b.rssKb, pssKb: b.pssKb, vmSizeKb: b.vmSizeKb, threads: b.threads };
    } catch {
      out.baseline = null;
    }
    for (const conns of o.steps) {
      o.progress.step(`c10k ${v.label}: ${conns} connections, ${Math.round(o.activeRatio * 100 * 100) / 100}% active, ${o.duration} s`);
      const step = emptyStep(conns);
      out.steps.push(step);
      // The previous step's connections must be gone, or they would count as this step's.
      if (idleFds !== null) await waitForFds(server.pid, idleFds);
      const r = await sampledRun(
        server,
        {
          port: server.port,
          conns,
          size: 64,
          activeRatio: o.activeRatio,
          duration: o.duration,
          connectTimeout: o.connectTimeout,
          drain: 2,
          progressInterval: 500,
        },
        o.pinning,
        { waitAccepted: true },
      );
      step.loadgenCores = r.loadgenCores;
      step.accepted = r.fds.baseline !== null && r.fds.max !== null ? Math.max(0, r.fds.max - r.fds.baseline) : null;
      step.acceptMs = r.fds.allAcceptedMs;
      step.acceptRate = r.fds.allAcceptedMs !== null && r.fds.allAcceptedMs > 0 ? conns / (r.fds.allAcceptedMs / 1000) : null;
      step.cpuBusy = r.cpuBusy;
      const res = r.result;
      const problem = (kind: FailureKind, detail: string) => step.problems.push({ kind, detail });
      if (res) {
        step.connected = res.connected;
        step.activeConns = res.activeConns;
        step.connectMs = res.connectMs;
        step.connectRate = res.connectMs > 0 ? res.connected / (res.connectMs / 1000) : null;
        step.connectErrors = res.connectErrors;
        step.firstConnectError = res.firstConnectError;
        step.resets = res.resets;
        step.serverCloses = res.serverCloses;
        step.verifyErrors = res.verifyErrors;
        step.idleConns = res.idleConns;
        step.unanswered = res.unanswered;
        step.requests = res.requests;
        step.rps = res.rps;
        step.latencyUs = res.latencyUs.count > 0 ? { p50: res.latencyUs.p50, p99: res.latencyUs.p99, max: res.latencyUs.max } : null;
        if (res.connectErrors > 0) problem(classifyConnectError(res.firstConnectError), `${res.connectErrors} of ${conns} connections failed: ${res.firstConnectError ?? ''}`);
        if (res.verifyErrors > 0) problem('verify-errors', `${res.verifyErrors} verification errors: ${res.firstError ?? ''}`);
        if (res.resets > 0) problem('resets', `${res.resets} connections reset: ${res.firstError ?? ''}`);
        if (res.serverCloses > 0) problem('server-closes', `${res.serverCloses} of ${conns} connections closed by the server`);
        if (step.accepted !== null && step.accepted < res.connected) {
          problem('not-accepted', `the server had accepted only ${step.accepted} of ${res.connected} connections by the end of the step`);
        }
        if (res.idleConns > 0) problem('never-answered', `${res.idleConns} of ${res.activeConns} active connections never got an answer`);
        else if (res.unanswered > 0) problem('unanswered', `${res.unanswered} requests never answered`);
      }
      // select's limit, named where it is the cause: connections past FD_SETSIZE were cut or never held.
      const fdSetSize = native.FD_SETSIZE as number;
      if (res && out.backend === 'select' && conns >= fdSetSize - 16 && (res.serverCloses > 0 || res.resets > 0 || (step.accepted ?? conns) < conns)) {
        step.problems.unshift({
          kind: 'fd-setsize',
          detail:
            `select cannot watch an fd >= FD_SETSIZE (${fdSetSize}): the server held ${step.accepted ?? '?'} of ${conns} connections; ` +
            `${res.serverCloses} were closed by it and ${res.resets} reset`,
        });
      }
      if (r.timedOut) problem('step-timeout', r.error ?? 'the step outlasted its budget');
      else if (r.error) problem('load-error', r.error);
      const rep = r.report;
      if (rep) {
        step.rssKb = rep.peak.rssKb;
        step.pssKb = rep.peak.pssKb;
        step.vmSizeKb = rep.peak.vmSizeKb;
        step.threads = rep.peak.threads;
        step.ctxSwitches = rep.ctxSwitches;
        const n = step.accepted !== null && step.accepted > 0 ? Math.min(step.accepted, res?.connected ?? 0) : res?.connected ?? 0;
        const base = out.baseline;
        if (n > 0 && base) {
          step.rssKbPerConn = (rep.peak.rssKb - base.rssKb) / n;
          step.pssKbPerConn = base.pssKb !== null && rep.peak.pssKb !== null ? (rep.peak.pssKb - base.pssKb) / n : null;
          step.vmSizeKbPerConn = (rep.peak.vmSizeKb - base.vmSizeKb) / n;
        }
        if (res && res.requests > 0) step.cpuUsPerRequest = (rep.cpu.totalS * 1e6) / res.requests;
      }
      // A server that died during the step is the failure, whatever else was seen.
      if (server.exit) {
        const err = server.stderr();
        step.problems.unshift({ kind: 'server-crash', detail: `server ${describeExit(server.exit)} at ${conns} connections${err ? ': ' + err : ''}` });
      }
      // The server cannot hold this many: stop the ramp (a pool that leaves
      // connections unanswered still holds them, so its ramp goes on).
      const hard = server.exit !== null || r.error !== null || !res || res.connected < conns || res.serverCloses > 0 || res.resets > 0;
      step.failure = step.problems[0] ?? null;
      step.status = hard ? 'failed' : step.problems.length ? 'problem' : 'ok';
      if (step.failure && !out.firstFailure) out.firstFailure = { conns, ...step.failure };
      if (res && !server.exit) {
        const held = res.connected - res.serverCloses - res.resets;
        out.maxHeld = Math.max(out.maxHeld, step.accepted !== null ? Math.min(held, step.accepted) : held);
      }
      o.progress.note(
        `c10k ${v.label} ${conns}: ${num(step.connected, 0)} connected, ${num(step.accepted, 0)} accepted at ${num(step.acceptRate, 0)}/s, RSS ${num(step.rssKbPerConn, 2)} KiB/conn, VmSize ${num(step.vmSizeKbPerConn, 0)} KiB/conn, ${num(step.threads, 0)} threads, p99 ${num(step.latencyUs?.p99)} µs` +
          (step.failure ? ` — ${step.status === 'failed' ? 'FAILED' : 'problem'}: ${step.failure.kind}: ${step.failure.detail.slice(0, 200)}` : ''),
      );
      if (hard) break;
    }
  } finally {
    const st = await server.stop();
    out.serverExit = st.killed ? 'did not stop on SIGTERM: killed' : describeExit(st);
    out.serverStderr = server.stderr() || null;
  }
  return out;
}

/** Runs the ramp for every variant. Never throws for a failing arch: it is reported. */
export async function benchC10k(options: C10kOptions = {}): Promise<C10kReport> {
  const quick = options.quick ?? false;
  const d = c10kDefaults(quick);
  const steps = [...(options.steps ?? d.steps)].sort((a, b) => a - b);
  const activeRatio = options.activeRatio ?? 0.01;
  const duration = options.duration ?? d.duration;
  const connectTimeout = options.connectTimeout ?? d.connectTimeout;
  const progress = options.progress ?? makeProgress(process.stderr, false);
  const variants = options.variants ?? (options.archs ? parseVariants(options.archs) : c10kVariants());
  const t0 = performance.now();
  const machine = machineInfo();
  try {
    machine.fileLimit = raiseFileLimit();
  } catch {
    machine.fileLimit = null;
  }
  const { pinning, restore } = pinLoadGenerator(options.pin ?? true);
  progress.note(`c10k: ${variants.length} archs, steps ${steps.join(',')}, ${activeRatio * 100}% active, ${duration} s per step; ${pinning.note}`);
  const archs: C10kArch[] = [];
  try {
    for (const v of variants) {
      const av = variantAvailability(v);
      if (!av.available) {
        archs.push({
          arch: v.label,
          archName: v.arch,
          backend: v.backend ?? null,
          status: 'unavailable',
          error: `not available here: ${av.reason ?? 'unknown'}`,
          serverPid: null,
          baseline: null,
          steps: [],
          maxHeld: 0,
          firstFailure: null,
          serverExit: null,
          serverStderr: null,
        });
        continue;
      }
      archs.push(await rampArch(v, { steps, activeRatio, duration, connectTimeout, pinning, progress, onServer: options.onServer }));
    }
  } finally {
    restore();
    progress.done();
  }
  machine.loadavgEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const labels = variants.map((v) => v.label);
  return {
    section: 'c10k',
    params: { archs: labels, steps, activeRatio, durationS: duration, connectTimeoutS: connectTimeout, quick },
    command: quick ? c10kCommand(true) : `iomux bench c10k --archs ${labels.join(',')} --steps ${steps.join(',')} --active-ratio ${activeRatio} --duration ${duration}`,
    machine,
    pinning,
    archs,
    elapsedS: (performance.now() - t0) / 1000,
  };
}

// ---- presentation -------------------------------------------------------------

/** The largest step the server came through holding every connection. */
function topStep(a: C10kArch): C10kStep | undefined {
  const held = a.steps.filter((s) => s.status !== 'failed' && s.connected === s.conns && s.rssKbPerConn !== null);
  return held[held.length - 1];
}

export function c10kMarkdown(r: C10kReport): string {
  const out: string[] = [];
  const pct = Math.round(r.params.activeRatio * 100 * 100) / 100;
  out.push(
    `Ramp to ${Math.max(...r.params.steps).toLocaleString('en-US')} connections in steps of ${r.params.steps.join(', ')}; at each step every connection is opened and, once the server has accepted them all (or the connect timeout of ${r.params.connectTimeoutS} s has passed), held while ${pct}% of them send 64-byte echo requests for ${r.params.durationS} s (closed loop). Accept rate is connections / the time until the server held them all (counted from its open fds; a client's connect completes in the kernel's backlog before the server accepts). Memory per connection is (peak during the step − the idle server before the ramp) / connections the server held. A negative figure means RSS shrank over the run (the heap and freed pages of a Node process move its RSS by about a MiB either way): the cost per connection is then below what this resolves. A ramp stops at the first step where the server died, or not every connection could be made or kept.`,
  );
  out.push(`Machine: ${machineLine(r.machine)}. Pinning: ${r.pinning.note}.`);
  out.push(`Command: \`${r.command}\``);
  out.push('');
  const summary = [['arch', 'held', 'accept rate /s', 'RSS KiB/conn', 'PSS KiB/conn', 'VmSize KiB/conn', 'threads', `p99 µs (${pct}% active)`, 'what failed first']];
  for (const a of r.archs) {
    if (a.status === 'unavailable' || (a.status === 'failed' && a.steps.length === 0)) {
      summary.push([a.arch, '-', '-', '-', '-', '-', '-', '-', a.error ?? '']);
      continue;
    }
    const s = topStep(a);
    const ff = a.firstFailure ? `at ${a.firstFailure.conns.toLocaleString('en-US')}: ${a.firstFailure.kind} (${a.firstFailure.detail.replace(/\s+/g, ' ').slice(0, 160)})` : 'nothing';
    summary.push([
      a.arch,
      a.maxHeld.toLocaleString('en-US'),
      num(s?.acceptRate ?? s?.connectRate, 0),
      num(s?.rssKbPerConn, 2),
      num(s?.pssKbPerConn, 2),
      num(s?.vmSizeKbPerConn, 1),
      num(s?.threads, 0),
      num(s?.latencyUs?.p99),
      ff,
    ]);
  }
  out.push('Summary (at the largest step where every connection was held):');
  out.push('');
  out.push(mdTable(summary));
  const rows = [['arch', 'conns', 'status', 'connected', 'accepted', 'connect ms', 'all accepted ms', 'accept rate /s', 'RSS MiB', 'RSS KiB/conn', 'PSS KiB/conn', 'VmSize KiB/conn', 'threads', 'p50 µs', 'p99 µs', 'CPU µs/req', 'CPU busy (srv/load)']];
  for (const a of r.archs) {
    for (const s of a.steps) {
      rows.push([
        a.arch,
        s.conns.toLocaleString('en-US'),
        s.status === 'ok' ? 'ok' : `${s.status}: ${s.failure?.kind ?? ''}`,
        num(s.connected, 0),
        num(s.accepted, 0),
        num(s.connectMs, 0),
        num(s.acceptMs, 0),
        num(s.acceptRate, 0),
        s.rssKb === null ? '-' : num(s.rssKb / 1024),
        num(s.rssKbPerConn, 2),
        num(s.pssKbPerConn, 2),
        num(s.vmSizeKbPerConn, 1),
        num(s.threads, 0),
        num(s.latencyUs?.p50),
        num(s.latencyUs?.p99),
        num(s.cpuUsPerRequest, 2),
        s.cpuBusy.serverCpu === null ? '-' : `${num(s.cpuBusy.serverCpu, 2)} / ${num(s.cpuBusy.loadCpu, 2)}`,
      ]);
    }
  }
  out.push('Every step:');
  out.push('');
  out.push(mdTable(rows));
  const failures = r.archs.filter((a) => a.firstFailure).map((a) => `- **${a.arch}** at ${a.firstFailure!.conns.toLocaleString('en-US')} connections: ${a.firstFailure!.kind}: ${a.firstFailure!.detail.replace(/\s+/g, ' ').slice(0, 600)}`);
  if (failures.length) out.push('What failed first, in full:\n\n' + failures.join('\n') + '\n');
  return out.join('\n');
}

export async function c10kCharts(r: C10kReport): Promise<Chart[]> {
  const charts: Chart[] = [];
  const top = Math.max(...r.params.steps);
  const mem: Point[] = [];
  for (const a of r.archs) {
    const s = topStep(a);
    if (!s) continue;
    const x = s.conns === top ? a.arch : `${a.arch} (${s.conns})`;
    if (s.rssKbPerConn !== null && s.rssKbPerConn > 0) mem.push({ series: 'RSS', x, y: s.rssKbPerConn });
    if (s.pssKbPerConn !== null && s.pssKbPerConn > 0) mem.push({ series: 'PSS', x, y: s.pssKbPerConn });
    if (s.vmSizeKbPerConn !== null && s.vmSizeKbPerConn > 0) mem.push({ series: 'VmSize', x, y: s.vmSizeKbPerConn });
  }
  if (mem.length) {
    charts.push({
      file: 'c10k-memory-per-connection.svg',
      caption: `Memory per connection at ${top.toLocaleString('en-US')} connections (or the largest step an arch held, in parentheses): resident (RSS, PSS) vs virtual (VmSize), log scale; a bar is missing where that growth was zero or negative`,
      svg: await barChart(mem, { title: `memory per connection at ${top >= 1000 ? `${top / 1000}k` : top}`, xTitle: 'architecture', yTitle: 'KiB per connection', logY: true }),
    });
  }
  return charts;
}

export const c10kSection: Section<C10kReport> = {
  name: 'c10k',
  title: 'C10K: holding 10,000 connections',
  command: c10kCommand,
  run: ({ quick, progress }) => benchC10k({ quick, progress }),
  markdown: c10kMarkdown,
  charts: c10kCharts,
};
