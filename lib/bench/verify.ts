// `iomux verify`: the quantitative claims of the thread-per-connection vs
// event-driven story, each measured on this machine and judged by a threshold
// written next to the verdict. A claim is one row: what is claimed, what was
// measured, the rule that turns the measurement into a verdict, the verdict,
// and the command that measures it alone. Claims that share an experiment
// (the three CPU-work rows, the two 10k rows) share one run of it. A claim
// whose experiment fails is "not measured here", with the error as the reason;
// the other claims still run.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { findArch } from '../arch';
import { native } from '../native';
import { Interest, Poller, backends } from '../poller';
import * as sys from '../sys';
import { raiseFileLimit, runLoad, type LoadResult } from '../lab/load';
import { readProcess, type ProcSnapshot } from '../lab/metrics';
import { benchSyscalls, type SyscallReport } from './syscalls';
import { barChart, type Point } from './charts';
import {
  BIN,
  describeExit,
  machineInfo,
  machineLine,
  mdTable,
  num,
  sampledRun,
  startServer,
  variantAvailability,
  type MachineInfo,
  type Pinning,
  type ServerProcess,
  type Variant,
} from './lab-run';
import { makeProgress, type Progress } from './progress';
import type { Chart, Section } from './section';

export const VERDICTS = ['holds', 'does not hold', 'holds only for virtual memory', 'not measured here'] as const;
export type Verdict = (typeof VERDICTS)[number];

export interface ClaimRow {
  /** Stable name: `iomux verify --only ID`. */
  id: string;
  /** What the story claims, with its numbers. */
  claim: string;
  /** What was measured here, in words and figures. */
  measured: string;
  /** The figures themselves (JSON); empty when nothing was measured. */
  values: Record<string, unknown>;
  /** The rule that turns the figures into the verdict. */
  threshold: string;
  verdict: Verdict;
  /** Why not measured (an error, a missing tool); null otherwise. */
  reason: string | null;
  /** The command that measures it alone. */
  command: string;
}

export interface VerifyOptions {
  quick?: boolean;
  /** Tiny sizes everywhere (tests): the rows say which sizes they used. */
  tiny?: boolean;
  /** Claim ids to run (default: all). */
  only?: string[];
  progress?: Progress;
  /** A syscalls run to take the figures from (the report passes its own). */
  syscalls?: SyscallReport;
  /** The command that produced `syscalls`, for the rows that use it. */
  syscallsCommand?: string;
}

export interface VerifyReport {
  section: 'verify';
  params: { quick: boolean; tiny: boolean; only: string[] | null };
  command: string;
  machine: MachineInfo;
  rows: ClaimRow[];
  elapsedS: number;
}

// ---- thresholds: every verdict is computed from these --------------------------

export const THRESHOLDS = {
  /** The classic figure: the default stack of a new thread. */
  defaultStackKiB: 8192,
  /** "costs its stack" in resident memory: at least this fraction of it resident per thread. */
  residentFraction: 0.5,
  /** "reserves its stack": at least this fraction of it in virtual size per thread. */
  virtualFraction: 0.9,
  /** A context switch "costs microseconds": at least this many ns one way. */
  contextSwitchMinNs: 1000,
  /** select and poll "grow with n": at least this many ns per idle fd. */
  scanSlopeMinNs: 10,
  /** epoll "does not grow": at most this many ns per idle fd (1000 fds add at most 1 µs). */
  flatSlopeMaxNs: 1,
  /** Under CPU work of U µs per work request, p99 "collapses" at >= this fraction of U. */
  collapseFractionOfWork: 0.5,
  /** SO_REUSEPORT "spreads": every reactor gets between these multiples of the fair share. */
  spreadMin: 0.5,
  spreadMax: 1.5,
  /** io_uring "cuts syscalls per request": the proactor makes at most this fraction of the reactor's. */
  uringSyscallRatioMax: 0.5,
  /** "An order of magnitude more memory per connection". */
  memoryRatioMin: 10,
} as const;

// ---- sizes ----------------------------------------------------------------------

interface Sizes {
  threadCounts: [number, number];
  syscalls: { fdCounts: number[]; targetMs: number; reps: number };
  /** reps: (no work, with work) pairs per architecture; the medians of their p99s are judged. */
  cpuWork: { conns: number; rate: number; workUs: number; workRatio: number; warmupS: number; baseS: number; workS: number; reps: number };
  reuseport: { workers: number; conns: number };
  uring: { conns: number; durationS: number; archs: string[] };
  c10k: { conns: number; maxWaitS: number };
}

function sizes(quick: boolean, tiny: boolean): Sizes {
  if (tiny) {
    return {
      threadCounts: [20, 50],
      syscalls: { fdCounts: [1, 10], targetMs: 1, reps: 1 },
      cpuWork: { conns: 4, rate: 200, workUs: 2000, workRatio: 0.01, warmupS: 0.1, baseS: 0.2, workS: 0.3, reps: 1 },
      reuseport: { workers: 2, conns: 20 },
      uring: { conns: 4, durationS: 0.2, archs: ['reactor:epoll', 'proactor'] },
      c10k: { conns: 20, maxWaitS: 5 },
    };
  }
  return {
    threadCounts: [1000, 10000],
    syscalls: quick ? { fdCounts: [1, 100, 1000], targetMs: 10, reps: 3 } : { fdCounts: [1, 10, 100, 1000], targetMs: 50, reps: 5 },
    // 0.1% of the requests burn 100 ms: the loop is stalled 10% of the time,
    // while the stalls' own requests stay below the 1% a p99 can see.
    cpuWork: quick
      ? { conns: 100, rate: 1000, workUs: 100_000, workRatio: 0.001, warmupS: 0.5, baseS: 2, workS: 3, reps: 1 }
      : { conns: 100, rate: 1000, workUs: 100_000, workRatio: 0.001, warmupS: 1, baseS: 3, workS: 5, reps: 3 },
    reuseport: { workers: 4, conns: quick ? 1000 : 4000 },
    uring: quick ? { conns: 100, durationS: 2, archs: ['reactor:epoll', 'proactor'] } : { conns: 100, durationS: 3, archs: ['reactor:epoll', 'proactor', 'c-epoll', 'c-uring'] },
    c10k: { conns: 10000, maxWaitS: quick ? 30 : 60 },
  };
}

// ---- the context shared by the claims ---------------------------------------------

interface Ctx {
  quick: boolean;
  tiny: boolean;
  sz: Sizes;
  progress: Progress;
  /** Runs an experiment once; the claims that share it get the same promise. */
  once<T>(key: string, run: () => Promise<T>): Promise<T>;
  syscalls(): Promise<SyscallReport>;
  syscallsCommand: string;
}

interface Outcome {
  measured: string;
  values: Record<string, unknown>;
  threshold: string;
  verdict: Verdict;
  reason?: string;
}

interface Claim {
  id: string;
  claim(ctx: Ctx): string;
  command(ctx: Ctx): string;
  threshold(ctx: Ctx): string;
  measure(ctx: Ctx): Promise<Outcome>;
}

class NotMeasured extends Error {
  constructor(message: string, readonly values: Record<string, unknown> = {}) {
    super(message);
    this.name = 'NotMeasured';
  }
}

const kib = (v: number) => `${num(v, 1)} KiB`;
const NOT_PINNED: Pinning = { serverCpu: null, loadCpu: null, note: 'not pinned' };

function fmtCount(n: number): string {
  return n.toLocaleString('en-US');
}

// ---- experiments --------------------------------------------------------------------

interface ThreadProbe {
  started: number;
  requested: number;
  stackBytes: number;
  defaultStackBytes: number;
  vmKiBPerThread: number;
  rssKiBPerThread: number;
  kernelStackKiBPerThread: number;
}

/** `iomux probe threads --n N --json` in a child process (its own memory is what is measured). */
function probeThreadsChild(n: number): Promise<ThreadProbe> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, 'probe', 'threads', '--n', String(n), '--json'], { timeout: 120_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`iomux probe threads --n ${n}: ${(stderr || err.message).trim().split('\n').slice(-2).join(' ')}`));
      try {
        resolve(JSON.parse(stdout) as ThreadProbe);
      } catch {
        reject(new Error(`iomux probe threads --n ${n}: no JSON on stdout`));
      }
    });
  });
}

function variantOf(spec: string): Variant {
  const [arch, backend] = spec.split(':');
  return backend ? { label: spec, arch, backend } : { label: spec, arch };
}

function serveCommandOf(v: Variant, protocol: 'echo' | 'http', extra: string[] = []): string {
  return ['iomux serve --arch', v.arch, v.backend ? `--backend ${v.backend}` : '', protocol === 'http' ? '--protocol http' : '', ...extra, '--port 8080 &'].filter(Boolean).join(' ');
}

function requireArch(spec: string): Variant {
  const v = variantOf(spec);
  const av = variantAvailability(v);
  if (!av.available) throw new NotMeasured(`${spec} is not available here: ${av.reason ?? 'unknown reason'}`);
  return v;
}

/** The server's last stderr line (`iomux serve` prints its counters when it stops), as numbers. */
export function parseServeStats(stderr: string): Record<string, number> | null {
  const lines = stderr.split('\n').filter((l) => l.includes('stopped after'));
  const line = lines[lines.length - 1];
  if (!line) return null;
  const out: Record<string, number> = {};
  const m = /: (\d+) connections accepted, (\d+) (?:reads echoed|requests answered)/.exec(line);
  if (m) {
    out.accepted = Number(m[1]);
    out.requests = Number(m[2]);
  }
  for (const kv of line.matchAll(/\b([A-Za-z_][\w]*)=(-?\d+(?:\.\d+)?)\b/g)) out[kv[1]] = Number(kv[2]);
  return out;
}

async function withServer<T>(v: Variant, protocol: 'echo' | 'http', extra: string[], body: (s: ServerProcess) => Promise<T>): Promise<{ value: T; stats: Record<string, number> | null }> {
  const s = await startServer({ ...v, args: extra }, { cpu: null, protocol });
  let value: T;
  try {
    value = await body(s);
  } catch (err) {
    await s.stop();
    throw err;
  }
  const st = await s.stop();
  if (st.killed) throw new Error(`${v.label} did not stop on SIGTERM`);
  return { value, stats: parseServeStats(s.stderr()) };
}

function loadOk(r: { result: LoadResult | null; error: string | null }, what: string): LoadResult {
  if (!r.result) throw new Error(`${what}: ${r.error ?? 'the load generator returned nothing'}`);
  if (r.result.verifyErrors > 0) throw new Error(`${what}: ${r.result.verifyErrors} verification errors (${r.result.firstError ?? ''})`);
  if (r.result.requests === 0) throw new Error(`${what}: no request was answered (${r.result.firstError ?? r.result.firstConnectError ?? 'no error reported'})`);
  return r.result;
}

// CPU work: open loop with and without /work requests, per architecture.
interface CpuWorkRun {
  arch: string;
  p50: number;
  p99: number;
  max: number;
  requests: number;
  workRequests: number;
}
interface CpuWorkArch {
  arch: string;
  /** Medians over the repetitions (max: the largest; counts: summed). */
  base: CpuWorkRun;
  work: CpuWorkRun;
  reps: Array<{ base: CpuWorkRun; work: CpuWorkRun }>;
}

function medianRun(runs: CpuWorkRun[]): CpuWorkRun {
  const med = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  return {
    arch: runs[0].arch,
    p50: med(runs.map((r) => r.p50)),
    p99: med(runs.map((r) => r.p99)),
    max: Math.max(...runs.map((r) => r.max)),
    requests: runs.reduce((a, r) => a + r.requests, 0),
    workRequests: runs.reduce((a, r) => a + r.workRequests, 0),
  };
}

function cpuWorkArchs(): { threads: string; reactor: string; pool: string } {
  const reactor = findArch('reactor') ? 'reactor:epoll' : 'c-epoll';
  return { threads: 'threads', reactor, pool: 'reactor-pool' };
}

function cpuWorkLoadCommand(ctx: Ctx, withWork: boolean): string {
  const c = ctx.sz.cpuWork;
  return `iomux load --port 8080 --protocol http --conns ${c.conns} --rate ${c.rate} --duration ${withWork ? c.workS : c.baseS}` + (withWork ? ` --work-us ${c.workUs} --work-ratio ${c.workRatio}` : '');
}

async function cpuWorkArch(ctx: Ctx, spec: string): Promise<CpuWorkArch> {
  const v = requireArch(spec);
  const c = ctx.sz.cpuWork;
  const { value } = await withServer(v, 'http', [], async (s) => {
    const run = async (duration: number, withWork: boolean, rate: number): Promise<CpuWorkRun> => {
      const r = await sampledRun(
        s,
        {
          port: s.port,
          protocol: 'http',
          conns: c.conns,
          rate,
          duration,
          workUs: withWork ? c.workUs : 0,
          workRatio: withWork ? c.workRatio : 0,
          drain: 3 + c.workUs / 1e6,
          connectTimeout: 10,
        },
        NOT_PINNED,
      );
      if (s.exit) throw new Error(`${spec} ${describeExit(s.exit)}: ${s.stderr()}`);
      const res = loadOk(r, `${spec}${withWork ? ' with CPU work' : ''}`);
      return { arch: spec, p50: res.latencyUs.p50, p99: res.latencyUs.p99, max: res.latencyUs.max, requests: res.requests, workRequests: res.workRequests };
    };
    ctx.progress.step(`verify: CPU work: ${spec}: warm-up`);
    await run(c.warmupS, false, 0);
    const reps: CpuWorkArch['reps'] = [];
    for (let i = 1; i <= c.reps; i++) {
      const of = c.reps > 1 ? ` (${i} of ${c.reps})` : '';
      ctx.progress.step(`verify: CPU work: ${spec}: ${c.rate} req/s, no work, ${c.baseS} s${of}`);
      const base = await run(c.baseS, false, c.rate);
      ctx.progress.step(`verify: CPU work: ${spec}: ${c.rate} req/s, ${c.workRatio * 100}% burn ${c.workUs} µs, ${c.workS} s${of}`);
      const work = await run(c.workS, true, c.rate);
      reps.push({ base, work });
    }
    return { arch: spec, base: medianRun(reps.map((r) => r.base)), work: medianRun(reps.map((r) => r.work)), reps };
  });
  ctx.progress.note(`verify: CPU work: ${spec}: p99 ${num(value.base.p99 / 1000, 2)} ms without work, ${num(value.work.p99 / 1000, 2)} ms with work`);
  return value;
}

// Syscalls per request: perf's syscall tracepoints on the server process.
const SYSCALL_NAMES = ['epoll_wait', 'epoll_pwait', 'epoll_pwait2', 'io_uring_enter', 'read', 'write', 'readv', 'writev', 'recvfrom', 'sendto', 'recvmsg', 'sendmsg', 'accept4'];

function tracefsEvents(): string | null {
  for (const d of ['/sys/kernel/tracing/events', '/sys/kernel/debug/tracing/events']) {
    try {
      if (fs.existsSync(`${d}/raw_syscalls/sys_enter`)) return d;
    } catch {
      /* next */
    }
  }
  return null;
}

function havePerf(): string | null {
  for (const p of ['/usr/bin/perf', '/usr/local/bin/perf']) if (fs.existsSync(p)) return p;
  return null;
}

interface SyscallCount {
  total: number;
  byName: Record<string, number>;
}

/** Attaches `perf stat` to pid; stop() detaches and returns the counts. */
async function perfAttach(pid: number): Promise<{ stop(): Promise<SyscallCount> }> {
  const perf = havePerf();
  const events = tracefsEvents();
  if (!perf) throw new NotMeasured('perf is not installed (Debian: apt-get install linux-perf)');
  if (!events) throw new NotMeasured('no syscall tracepoints (tracefs is not mounted, or the kernel has no FTRACE_SYSCALLS)');
  const names = SYSCALL_NAMES.filter((n) => fs.existsSync(`${events}/syscalls/sys_enter_${n}`));
  const evs = ['raw_syscalls:sys_enter', ...names.map((n) => `syscalls:sys_enter_${n}`)];
  const { spawn } = await import('node:child_process');
  const child = spawn(perf, ['stat', '-x', ',', '-e', evs.join(','), '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // perf prints nothing when it has attached: give it a moment, and make sure it is still there.
  await new Promise((r) => setTimeout(r, 400));
  if (child.exitCode !== null) throw new NotMeasured(`perf stat exited at once: ${err.trim().split('\n').slice(-2).join(' ')}`);
  return {
    async stop() {
      child.kill('SIGINT');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
      const out: SyscallCount = { total: NaN, byName: {} };
      for (const line of err.split('\n')) {
        const f = line.split(',');
        if (f.length < 3) continue;
        const count = Number(f[0]);
        if (!Number.isFinite(count)) continue;
        if (f[2] === 'raw_syscalls:sys_enter') out.total = count;
        else if (f[2].startsWith('syscalls:sys_enter_')) out.byName[f[2].slice('syscalls:sys_enter_'.length)] = count;
      }
      if (!Number.isFinite(out.total)) throw new Error(`perf stat printed no count: ${err.trim().split('\n').slice(-3).join(' ')}`);
      return out;
    },
  };
}

interface UringRun {
  arch: string;
  requests: number;
  syscalls: SyscallCount;
  syscallsPerRequest: number;
  /** The server's own counters, from its stop line. */
  own: Record<string, number> | null;
  /** Own-counter syscalls per request: Ring enters (proactor), loop waits (reactor). */
  ownPerRequest: number | null;
}

async function uringRun(ctx: Ctx, spec: string): Promise<UringRun> {
  const v = requireArch(spec);
  const u = ctx.sz.uring;
  ctx.progress.step(`verify: syscalls per request: ${spec}, ${u.conns} connections, ${u.durationS} s`);
  let counts: SyscallCount | null = null;
  let requests = 0;
  const { stats } = await withServer(v, 'echo', [], async (s) => {
    const perf = await perfAttach(s.pid);
    let r;
    try {
      r = await sampledRun(s, { port: s.port, conns: u.conns, duration: u.durationS, drain: 2 }, NOT_PINNED);
    } finally {
      counts = await perf.stop();
    }
    // Every request the server answered while perf watched (the drain included).
    requests = loadOk(r, spec).requests;
  });
  const c = counts as unknown as SyscallCount;
  const own = stats;
  let ownPerRequest: number | null = null;
  if (own && own.requests > 0) {
    if (own.ringEnters !== undefined) ownPerRequest = own.ringEnters / own.requests;
    else if (own.loopIterations !== undefined) ownPerRequest = own.loopIterations / own.requests;
  }
  const out = { arch: spec, requests, syscalls: c, syscallsPerRequest: c.total / requests, own, ownPerRequest };
  ctx.progress.note(`verify: ${spec}: ${num(out.syscallsPerRequest, 3)} syscalls per request (${fmtCount(c.total)} for ${fmtCount(requests)} requests)`);
  return out;
}

// 10k connections held: memory per connection, threads vs an event loop.
interface HoldResult {
  arch: string;
  conns: number;
  connected: number;
  /** Every connection held by the server (threads: one thread each; others: memory stable) when sampled. */
  held: boolean;
  heldNote: string;
  connectMs: number;
  baseline: { rssKb: number; pssKb: number | null; vmSizeKb: number; threads: number };
  sample: { rssKb: number; pssKb: number | null; vmSizeKb: number; threads: number };
  rssKbPerConn: number;
  pssKbPerConn: number | null;
  vmSizeKbPerConn: number;
  /** Growth of the kernel's thread stacks (/proc/meminfo KernelStack, system-wide: other activity adds noise) per connection. */
  kernelStackKbPerConn: number | null;
  /** Connections the server cut, refused or never completed. */
  connectErrors: number;
  serverCloses: number;
  firstError: string | null;
}

function kernelStackKb(): number | null {
  try {
    const m = /^KernelStack:\s+(\d+)/m.exec(fs.readFileSync('/proc/meminfo', 'latin1'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function snap(p: ProcSnapshot) {
  return { rssKb: p.rssKb, pssKb: p.pssKb, vmSizeKb: p.vmSizeKb, threads: p.threads };
}

async function holdConnections(ctx: Ctx, spec: string): Promise<HoldResult> {
  const v = requireArch(spec);
  const n = ctx.sz.c10k.conns;
  const isThreads = v.arch === 'threads';
  const { value } = await withServer(v, 'echo', [], async (s) => {
    // Warm the server up (JIT, first allocations) so the baseline is the idle server, not a cold one.
    ctx.progress.step(`verify: ${spec}: warm-up`);
    await sampledRun(s, { port: s.port, conns: 10, duration: 0.3, drain: 1 }, NOT_PINNED);
    await new Promise((r) => setTimeout(r, 300));
    const baseline = snap(readProcess(s.pid, { threads: false }));
    const ks0 = kernelStackKb();
    let ks1: number | null = null;
    ctx.progress.step(`verify: ${spec}: opening ${fmtCount(n)} connections`);
    const ac = new AbortController();
    let last: ProcSnapshot | null = null;
    let prev: ProcSnapshot | null = null;
    let held = false;
    let runStart = 0;
    let connected = 0;
    const tick = (phase: string, c: number) => {
      // Once held, the sample is final: cancelling the run closes the connections.
      if (held || phase !== 'run') return;
      connected = c;
      if (!runStart) runStart = performance.now();
      prev = last;
      try {
        last = readProcess(s.pid, { threads: false });
        ks1 = kernelStackKb();
      } catch {
        return;
      }
      const p = prev as ProcSnapshot | null;
      if (isThreads) {
        held = last.threads - baseline.threads >= connected;
      } else {
        held = p !== null && performance.now() - runStart >= 1000 && Math.abs(last.rssKb - p.rssKb) <= 0.01 * last.rssKb;
      }
      ctx.progress.step(`verify: ${spec}: ${fmtCount(connected)} connected, ${fmtCount(last.threads)} threads, RSS ${num(last.rssKb / 1024)} MiB`);
      if (held) ac.abort();
    };
    const result = await runLoad({
      port: s.port,
      conns: n,
      activeRatio: Math.min(1, 1 / n),
      duration: ctx.sz.c10k.maxWaitS,
      connectTimeout: ctx.sz.c10k.maxWaitS,
      drain: 1,
      progressInterval: 250,
      onProgress: (p) => tick(p.phase, p.connected),
      signal: ac.signal,
    });
    if (s.exit) throw new Error(`${spec} ${describeExit(s.exit)} holding ${fmtCount(n)} connections: ${s.stderr()}`);
    const sample = last !== null ? snap(last) : snap(readProcess(s.pid, { threads: false }));
    const c = result.connected;
    if (c === 0) throw new Error(`${spec}: nothing connected (${result.firstConnectError ?? 'no error reported'})`);
    const out: HoldResult = {
      arch: spec,
      conns: n,
      connected: c,
      held: held && c === n,
      heldNote: held
        ? isThreads
          ? `${fmtCount(sample.threads - baseline.threads)} threads for ${fmtCount(c)} connections`
          : 'memory stable for 250 ms after every connection was made'
        : `not every connection was held after ${ctx.sz.c10k.maxWaitS} s (${fmtCount(sample.threads)} threads)`,
      connectMs: result.connectMs,
      baseline,
      sample,
      rssKbPerConn: (sample.rssKb - baseline.rssKb) / c,
      pssKbPerConn: sample.pssKb !== null && baseline.pssKb !== null ? (sample.pssKb - baseline.pssKb) / c : null,
      vmSizeKbPerConn: (sample.vmSizeKb - baseline.vmSizeKb) / c,
      kernelStackKbPerConn: ks0 !== null && ks1 !== null ? (ks1 - ks0) / c : null,
      connectErrors: result.connectErrors,
      serverCloses: result.serverCloses,
      firstError: result.firstConnectError ?? result.firstError,
    };
    return out;
  });
  ctx.progress.note(
    `verify: ${spec} holding ${fmtCount(value.connected)}: RSS ${num(value.rssKbPerConn, 2)} KiB/conn, VmSize ${num(value.vmSizeKbPerConn, 1)} KiB/conn, ${fmtCount(value.sample.threads)} threads${value.held ? '' : ' (' + value.heldNote + ')'}`,
  );
  return value;
}

// ---- the claims -----------------------------------------------------------------------

const T = THRESHOLDS;

function syscallRow(r: SyscallReport, op: string, backend?: string, fds?: number) {
  return r.rows.find((x) => x.op === op && !x.skipped && (backend === undefined || x.backend === backend) && (fds === undefined || x.fds === fds));
}

function threadMemoryClaim(which: 0 | 1): Claim {
  const id = which === 0 ? 'thread-memory-1k' : 'thread-memory-10k';
  return {
    id,
    claim: (ctx) => {
      const n = ctx.sz.threadCounts[which];
      return `${fmtCount(n)} threads cost ${fmtCount(n)} × their stack in memory (${num((n * T.defaultStackKiB) / 1024 / 1024, 1)} GiB at 8 MiB each)`;
    },
    command: (ctx) => `iomux probe threads --n ${ctx.sz.threadCounts[which]} --json`,
    threshold: () =>
      `holds if resident memory per thread >= ${T.residentFraction * 100}% of the stack size; holds only for virtual memory if the virtual size per thread >= ${T.virtualFraction * 100}% of it but resident memory is less`,
    async measure(ctx) {
      const n = ctx.sz.threadCounts[which];
      ctx.progress.step(`verify: parking ${fmtCount(n)} threads (iomux probe threads --n ${n})`);
      const p = await ctx.once(`probe-${n}`, () => probeThreadsChild(n));
      if (p.started < n) throw new NotMeasured(`only ${p.started} of ${n} threads could be started`, { ...p });
      const stackKiB = p.stackBytes / 1024;
      const verdict: Verdict =
        p.rssKiBPerThread >= T.residentFraction * stackKiB ? 'holds' : p.vmKiBPerThread >= T.virtualFraction * stackKiB ? 'holds only for virtual memory' : 'does not hold';
      return {
        measured: `per thread: virtual ${kib(p.vmKiBPerThread)} (${num((100 * p.vmKiBPerThread) / stackKiB, 0)}% of the ${num(stackKiB, 0)} KiB stack), resident ${kib(p.rssKiBPerThread)} (${num((100 * p.rssKiBPerThread) / stackKiB, 2)}%), kernel stack ${kib(p.kernelStackKiBPerThread)}; ${fmtCount(n)} threads: ${num((p.vmKiBPerThread * n) / 1024 / 1024, 1)} GiB virtual, ${num((p.rssKiBPerThread * n) / 1024, 1)} MiB resident`,
        values: { threads: p.started, stackKiB, vmKiBPerThread: p.vmKiBPerThread, rssKiBPerThread: p.rssKiBPerThread, kernelStackKiBPerThread: p.kernelStackKiBPerThread },
        threshold: this.threshold(ctx),
        verdict,
      };
    },
  };
}

const CLAIMS: Claim[] = [
  {
    id: 'thread-stack-default',
    claim: () => 'A new thread gets an 8 MiB stack by default',
    command: (ctx) => `iomux probe threads --n ${ctx.sz.threadCounts[0]} --json   # defaultStackBytes (RLIMIT_STACK)`,
    threshold: () => `holds if the default stack size (glibc takes RLIMIT_STACK) is ${T.defaultStackKiB} KiB`,
    async measure(ctx) {
      const n = ctx.sz.threadCounts[0];
      const p = await ctx.once(`probe-${n}`, () => probeThreadsChild(n));
      const kb = p.defaultStackBytes / 1024;
      return {
        measured: `${num(kb, 0)} KiB (${num(kb / 1024, 2)} MiB)`,
        values: { defaultStackKiB: kb },
        threshold: this.threshold(ctx),
        verdict: kb === T.defaultStackKiB ? 'holds' : 'does not hold',
      };
    },
  },
  threadMemoryClaim(0),
  threadMemoryClaim(1),
  {
    id: 'context-switch',
    claim: () => 'A context switch between threads costs microseconds, more than the wait a reactor makes instead',
    command: (ctx) => ctx.syscallsCommand,
    threshold: () => `holds if one one-way switch (pipe ping-pong between two threads, C) >= ${T.contextSwitchMinNs} ns and costs more than an epoll_wait with nothing ready (1 fd, C)`,
    async measure(ctx) {
      const r = await ctx.syscalls();
      const pp = syscallRow(r, 'pingpong');
      const ep = syscallRow(r, 'wait-idle', 'epoll', 1) ?? syscallRow(r, 'wait-idle', 'epoll');
      if (!pp || pp.cNs === null) throw new NotMeasured('the ping-pong row was not measured');
      const epNs = ep?.cNs ?? null;
      const verdict: Verdict = pp.cNs >= T.contextSwitchMinNs && (epNs === null || pp.cNs > epNs) ? 'holds' : 'does not hold';
      return {
        measured: `${num(pp.cNs / 1000, 2)} µs one way between C threads (${num((pp.jsNs ?? NaN) / 1000, 2)} µs between JS threads); epoll_wait with nothing ready: ${num(epNs, 0)} ns (${num(epNs ? pp.cNs / epNs : null, 1)}× less)`,
        values: { contextSwitchNs: pp.cNs, contextSwitchJsNs: pp.jsNs, epollWaitIdleNs: epNs },
        threshold: this.threshold(ctx),
        verdict,
      };
    },
  },
  {
    id: 'select-fd-setsize',
    claim: () => `select cannot watch a file descriptor >= FD_SETSIZE (1024)`,
    command: () => `node -e "const {Poller,sys}=require('iomux');const [r]=sys.pipe();new Poller('select').add(sys.fcntl(r,'F_DUPFD',1024))"   # RangeError`,
    threshold: () => 'holds if Poller(select).add() accepts an fd below FD_SETSIZE and throws RangeError for an fd >= FD_SETSIZE that poll and epoll accept',
    async measure(ctx) {
      const fdSetSize: number = native.FD_SETSIZE;
      const sel = backends().find((b) => b.name === 'select');
      if (!sel?.available) throw new NotMeasured(`select is not available: ${sel?.reason ?? 'not built'}`);
      raiseFileLimit();
      const [r, w] = sys.pipe();
      let high = -1;
      const opened: Poller[] = [];
      try {
        try {
          high = sys.fcntl(r, 'F_DUPFD', fdSetSize);
        } catch (err) {
          throw new NotMeasured(`cannot open an fd >= ${fdSetSize}: ${(err as Error).message}`);
        }
        const p = new Poller('select');
        opened.push(p);
        let lowAccepted = false;
        try {
          p.add(r, Interest.READABLE);
          lowAccepted = true;
        } catch {
          lowAccepted = false;
        }
        let thrown: Error | null = null;
        try {
          p.add(high, Interest.READABLE);
        } catch (err) {
          thrown = err as Error;
        }
        const others: Record<string, boolean> = {};
        for (const b of ['poll', 'epoll'] as const) {
          if (!backends().find((x) => x.name === b)?.available) continue;
          const q = new Poller(b);
          opened.push(q);
          try {
            q.add(high, Interest.READABLE);
            others[b] = true;
          } catch {
            others[b] = false;
          }
        }
        const isRange = thrown instanceof RangeError;
        const verdict: Verdict = lowAccepted && isRange && Object.values(others).every(Boolean) ? 'holds' : 'does not hold';
        return {
          measured:
            `FD_SETSIZE = ${fdSetSize}; add(fd ${r}) ${lowAccepted ? 'accepted' : 'refused'}; add(fd ${high}) ${thrown ? `threw ${thrown.name}: ${thrown.message}` : 'was accepted'}` +
            (Object.keys(others).length ? `; the same fd ${high} is accepted by ${Object.entries(others).filter(([, ok]) => ok).map(([b]) => b).join(' and ') || 'no other backend'}` : ''),
          values: { fdSetSize, lowFd: r, highFd: high, lowAccepted, error: thrown ? `${thrown.name}: ${thrown.message}` : null, otherBackendsAccept: others },
          threshold: this.threshold(ctx),
          verdict,
        };
      } finally {
        for (const p of opened) p.close();
        if (high >= 0) sys.close(high);
        sys.close(r);
        sys.close(w);
      }
    },
  },
  {
    id: 'select-poll-scaling',
    claim: () => "select and poll cost grows with the number of watched fds; epoll's does not",
    command: (ctx) => `${ctx.syscallsCommand}   # "cost per idle fd"`,
    threshold: () => `holds if select and poll each add >= ${T.scanSlopeMinNs} ns per idle fd and epoll adds <= ${T.flatSlopeMaxNs} ns per idle fd (least-squares slope, C loop, thread CPU time)`,
    async measure(ctx) {
      const r = await ctx.syscalls();
      const slope = (b: string) => r.slopes.find((s) => s.backend === b);
      const sel = slope('select');
      const pol = slope('poll');
      const ep = slope('epoll');
      const ur = slope('io_uring');
      const v = (s: typeof sel) => (s ? (s.cCpuNsPerFd ?? s.cNsPerFd) : null);
      const vs = v(sel);
      const vp = v(pol);
      const ve = v(ep);
      if (vs === null || vp === null || ve === null) throw new NotMeasured('select, poll and epoll slopes are all needed (one of them was not measured)', { select: vs, poll: vp, epoll: ve });
      const at = (b: string, fds: number) => syscallRow(r, 'wait-idle', b, fds)?.cCpuNs ?? null;
      const maxFds = Math.max(...r.params.fdCounts);
      const verdict: Verdict = vs >= T.scanSlopeMinNs && vp >= T.scanSlopeMinNs && ve <= T.flatSlopeMaxNs ? 'holds' : 'does not hold';
      return {
        measured:
          `ns added per idle fd: select ${num(vs, 2)}, poll ${num(vp, 2)}, epoll ${num(ve, 2)}` +
          (v(ur) !== null ? `, io_uring poll ${num(v(ur), 2)}` : '') +
          `; one wait at ${maxFds} idle fds: select ${num(at('select', maxFds), 0)} ns, poll ${num(at('poll', maxFds), 0)} ns, epoll ${num(at('epoll', maxFds), 0)} ns`,
        values: { selectNsPerFd: vs, pollNsPerFd: vp, epollNsPerFd: ve, ioUringNsPerFd: v(ur), fdCounts: r.params.fdCounts },
        threshold: this.threshold(ctx),
        verdict,
      };
    },
  },
  ...cpuWorkClaims(),
  {
    id: 'reuseport-spread',
    claim: (ctx) => `SO_REUSEPORT spreads connections evenly across reactors (${ctx.sz.reuseport.workers} reactors, ${fmtCount(ctx.sz.reuseport.conns)} connections)`,
    command: (ctx) => `iomux serve --arch multi-reactor --workers ${ctx.sz.reuseport.workers} --port 8080 & iomux load --port 8080 --conns ${ctx.sz.reuseport.conns} --duration 1; kill %1   # serve prints accepted_wN on exit`,
    threshold: () => `holds if every reactor accepted between ${T.spreadMin}× and ${T.spreadMax}× of the fair share (connections / reactors)`,
    async measure(ctx) {
      const rp = ctx.sz.reuseport;
      const v = requireArch('multi-reactor');
      ctx.progress.step(`verify: SO_REUSEPORT: ${fmtCount(rp.conns)} connections over ${rp.workers} reactors`);
      const { stats } = await withServer(v, 'echo', ['--workers', String(rp.workers)], async (s) => {
        const r = await sampledRun(s, { port: s.port, conns: rp.conns, duration: ctx.tiny ? 0.2 : 1, drain: 1, connectTimeout: 20 }, NOT_PINNED);
        loadOk(r, 'multi-reactor');
      });
      if (!stats) throw new NotMeasured('multi-reactor printed no counters when it stopped');
      const per = Array.from({ length: rp.workers }, (_, i) => stats[`accepted_w${i}`]);
      if (per.some((x) => x === undefined)) throw new NotMeasured('multi-reactor printed no per-worker accept counts', { stats });
      const total = per.reduce((a, b) => a + b, 0);
      const fair = total / rp.workers;
      const lo = Math.min(...per) / fair;
      const hi = Math.max(...per) / fair;
      return {
        measured: `accepted per reactor: ${per.join(', ')} (of ${fmtCount(total)}; fair share ${num(fair, 0)}: ${num(lo, 2)}× to ${num(hi, 2)}×)`,
        values: { workers: rp.workers, acceptedPerWorker: per, total, minOfFair: lo, maxOfFair: hi },
        threshold: this.threshold(ctx),
        verdict: lo >= T.spreadMin && hi <= T.spreadMax ? 'holds' : 'does not hold',
      };
    },
  },
  {
    id: 'uring-syscalls',
    claim: () => 'io_uring cuts the syscalls per request: one io_uring_enter submits and reaps a batch, where a reactor makes a read and a write per request plus its waits',
    command: (ctx) =>
      `iomux serve --arch proactor --port 8080 & perf stat -e raw_syscalls:sys_enter -p $! & iomux load --port 8080 --conns ${ctx.sz.uring.conns} --duration ${ctx.sz.uring.durationS}   # then the same with --arch reactor --backend epoll`,
    threshold: () => `holds if the proactor makes <= ${T.uringSyscallRatioMax}× the syscalls per request of reactor --backend epoll (every syscall of the server process, counted by perf's raw_syscalls tracepoint)`,
    async measure(ctx) {
      const runs: UringRun[] = [];
      for (const spec of ctx.sz.uring.archs) {
        try {
          runs.push(await ctx.once(`uring-${spec}`, () => uringRun(ctx, spec)));
        } catch (err) {
          if (spec === 'reactor:epoll' || spec === 'proactor') throw err;
          ctx.progress.note(`verify: ${spec}: not measured: ${(err as Error).message}`);
        }
      }
      const reactor = runs.find((r) => r.arch === 'reactor:epoll')!;
      const proactor = runs.find((r) => r.arch === 'proactor')!;
      const ratio = proactor.syscallsPerRequest / reactor.syscallsPerRequest;
      const perReq = (r: UringRun, n: string) => (r.syscalls.byName[n] ?? 0) / r.requests;
      const describe = (r: UringRun) => {
        const parts = Object.entries(r.syscalls.byName)
          .filter(([, c]) => c / r.requests >= 0.01)
          .map(([n]) => `${n} ${num(perReq(r, n), 3)}`);
        return `${r.arch} ${num(r.syscallsPerRequest, 3)}${parts.length ? ` (${parts.join(', ')})` : ''}`;
      };
      const own = (r: UringRun) =>
        r.own?.ringEnters !== undefined
          ? `${r.arch}: Ring enters ${num(r.ownPerRequest, 3)}/request`
          : r.own?.loopIterations !== undefined
            ? `${r.arch}: loop waits ${num(r.ownPerRequest, 3)}/request`
            : null;
      const owns = runs.map(own).filter(Boolean);
      return {
        measured:
          `syscalls per request: ${runs.map(describe).join('; ')}; proactor / reactor = ${num(ratio, 3)}` +
          (owns.length ? `. The servers' own counters: ${owns.join('; ')}` : ''),
        values: {
          ratio,
          runs: runs.map((r) => ({ arch: r.arch, requests: r.requests, syscalls: r.syscalls.total, syscallsPerRequest: r.syscallsPerRequest, byName: r.syscalls.byName, own: r.own, ownPerRequest: r.ownPerRequest })),
        },
        threshold: this.threshold(ctx),
        verdict: ratio <= T.uringSyscallRatioMax ? 'holds' : 'does not hold',
      };
    },
  },
  {
    id: 'c10k-memory',
    claim: (ctx) => `At ${fmtCount(ctx.sz.c10k.conns)} connections, thread-per-connection needs an order of magnitude more memory per connection than an event loop`,
    command: (ctx) => `iomux bench c10k --archs threads,reactor:epoll --steps ${ctx.sz.c10k.conns} --active-ratio ${Math.min(1, 1 / ctx.sz.c10k.conns)}   # (verify waits until every connection is held)`,
    threshold: () =>
      `holds if threads' resident memory (RSS) per connection >= ${T.memoryRatioMin}× reactor --backend epoll's; holds only for virtual memory if only the virtual size (VmSize) per connection is >= ${T.memoryRatioMin}×`,
    async measure(ctx) {
      const th = await ctx.once('hold-threads', () => holdConnections(ctx, 'threads'));
      const re = await ctx.once('hold-reactor', () => holdConnections(ctx, reactorSpec()));
      const rss = th.rssKbPerConn / re.rssKbPerConn;
      const vm = th.vmSizeKbPerConn / Math.max(re.vmSizeKbPerConn, 1 / 1024);
      const verdict: Verdict = rss >= T.memoryRatioMin ? 'holds' : vm >= T.memoryRatioMin ? 'holds only for virtual memory' : 'does not hold';
      const line = (h: HoldResult) =>
        `${h.arch}: RSS ${num(h.rssKbPerConn, 2)} KiB, PSS ${num(h.pssKbPerConn, 2)} KiB, VmSize ${num(h.vmSizeKbPerConn, 1)} KiB per connection (kernel stacks, not in RSS: ${num(h.kernelStackKbPerConn, 1)} KiB), ${fmtCount(h.sample.threads)} threads` +
        (h.held ? '' : ` (${h.heldNote})`);
      return {
        measured: `${line(th)}; ${line(re)}; threads / reactor: RSS ${num(rss, 1)}×, VmSize ${num(vm, 0)}×`,
        values: { rssRatio: rss, vmSizeRatio: vm, threads: th, reactor: re },
        threshold: this.threshold(ctx),
        verdict,
      };
    },
  },
  {
    id: 'c10k-threads-reach',
    claim: (ctx) => `Thread-per-connection cannot hold ${fmtCount(ctx.sz.c10k.conns)} connections (the C10K problem)`,
    command: (ctx) => `iomux bench c10k --archs threads --steps ${ctx.sz.c10k.conns}`,
    threshold: (ctx) => `holds if the threads server fails to hold all ${fmtCount(ctx.sz.c10k.conns)} connections (one thread each); does not hold if it holds them`,
    async measure(ctx) {
      const th = await ctx.once('hold-threads', () => holdConnections(ctx, 'threads'));
      return {
        measured: `${fmtCount(th.connected)} of ${fmtCount(th.conns)} connected in ${num(th.connectMs / 1000, 1)} s, ${th.heldNote}; ${fmtCount(th.sample.threads)} threads, VmSize ${num(th.sample.vmSizeKb / 1024 / 1024, 1)} GiB, RSS ${num(th.sample.rssKb / 1024, 0)} MiB` +
          (th.connectErrors || th.serverCloses ? `; ${th.connectErrors} connect errors, ${th.serverCloses} closed by the server (${th.firstError ?? ''})` : ''),
        values: { conns: th.conns, connected: th.connected, held: th.held, threads: th.sample.threads, connectMs: th.connectMs },
        threshold: this.threshold(ctx),
        verdict: th.held ? 'does not hold' : 'holds',
      };
    },
  },
];

function reactorSpec(): string {
  return findArch('reactor') ? 'reactor:epoll' : 'c-epoll';
}

const NOISE_RULE = ' (p99s: medians over the runs); not judged when the p99 without work is past that threshold already';

function cpuWorkClaims(): Claim[] {
  const limit = (ctx: Ctx) => T.collapseFractionOfWork * ctx.sz.cpuWork.workUs;
  const workText = (ctx: Ctx) => {
    const c = ctx.sz.cpuWork;
    return `${c.workRatio * 100}% of ${fmtCount(c.rate)} req/s burn ${fmtCount(c.workUs / 1000)} ms of CPU`;
  };
  const commandFor = (spec: string) => (ctx: Ctx) =>
    `${serveCommandOf(variantOf(spec), 'http')} ${cpuWorkLoadCommand(ctx, false)}; ${cpuWorkLoadCommand(ctx, true)}` +
    (ctx.sz.cpuWork.reps > 1 ? `   # the pair ${ctx.sz.cpuWork.reps} times; the medians are judged` : '');
  const run = (ctx: Ctx, spec: string) => ctx.once(`cpu-${spec}`, () => cpuWorkArch(ctx, spec));
  const describeRun = (a: CpuWorkArch) =>
    `${a.arch}: p99 ${num(a.work.p99 / 1000, 2)} ms with work (p50 ${num(a.work.p50 / 1000, 2)} ms), ${num(a.base.p99 / 1000, 2)} ms without` +
    (a.reps.length > 1 ? ` (medians of ${a.reps.length} runs each; p99s with work: ${a.reps.map((r) => num(r.work.p99 / 1000, 1)).join(', ')} ms; without: ${a.reps.map((r) => num(r.base.p99 / 1000, 1)).join(', ')} ms)` : '') +
    `; ${a.work.workRequests} work requests of ${fmtCount(a.work.requests)}`;
  const values = (a: CpuWorkArch, ctx: Ctx) => ({ arch: a.arch, base: a.base, work: a.work, reps: a.reps, workUs: ctx.sz.cpuWork.workUs, limitUs: limit(ctx) });
  // When the server's p99 without any work is already past the threshold, the
  // machine (other processes) stalls requests as long as the work would: the
  // run cannot tell the two apart, so it judges nothing.
  const judge = (a: CpuWorkArch, ctx: Ctx, ok: boolean): Pick<Outcome, 'verdict' | 'reason'> =>
    a.base.p99 >= limit(ctx)
      ? {
          verdict: 'not measured here',
          reason: `too noisy: the p99 without any work was already ${num(a.base.p99 / 1000, 1)} ms, past the ${fmtCount(limit(ctx) / 1000)} ms threshold (other processes held the CPUs); rerun on a quieter machine`,
        }
      : { verdict: ok ? 'holds' : 'does not hold' };
  const archs = cpuWorkArchs();
  return [
    {
      id: 'cpu-work-threads',
      claim: (ctx) => `Thread-per-connection keeps latency steady when some requests burn CPU (${workText(ctx)})`,
      command: commandFor(archs.threads),
      threshold: (ctx) => `holds if the p99 with work < ${T.collapseFractionOfWork} × the work (${fmtCount(limit(ctx) / 1000)} ms): the other requests do not wait for it${NOISE_RULE}`,
      async measure(ctx) {
        const a = await run(ctx, archs.threads);
        return { measured: describeRun(a), values: values(a, ctx), threshold: this.threshold(ctx), ...judge(a, ctx, a.work.p99 < limit(ctx)) };
      },
    },
    {
      id: 'cpu-work-reactor',
      claim: (ctx) => `A single reactor's p99 collapses when some requests burn CPU (${workText(ctx)}): every connection waits behind them`,
      command: commandFor(archs.reactor),
      threshold: (ctx) => `holds if the p99 with work >= ${T.collapseFractionOfWork} × the work (${fmtCount(limit(ctx) / 1000)} ms)${NOISE_RULE}`,
      async measure(ctx) {
        const a = await run(ctx, archs.reactor);
        return { measured: describeRun(a), values: values(a, ctx), threshold: this.threshold(ctx), ...judge(a, ctx, a.work.p99 >= limit(ctx)) };
      },
    },
    {
      id: 'cpu-work-pool',
      claim: (ctx) => `A reactor that hands the CPU work to a worker pool restores the p99 (${workText(ctx)})`,
      command: commandFor(archs.pool),
      threshold: (ctx) => `holds if the p99 with work < ${T.collapseFractionOfWork} × the work (${fmtCount(limit(ctx) / 1000)} ms)${NOISE_RULE}`,
      async measure(ctx) {
        const a = await run(ctx, archs.pool);
        return { measured: describeRun(a), values: values(a, ctx), threshold: this.threshold(ctx), ...judge(a, ctx, a.work.p99 < limit(ctx)) };
      },
    },
  ];
}

export const CLAIM_IDS: readonly string[] = CLAIMS.map((c) => c.id);

// ---- running ------------------------------------------------------------------------------

export function verifyCommand(o: { quick?: boolean; tiny?: boolean; only?: string[] | null }): string {
  return ['iomux verify', o.quick ? '--quick' : '', o.tiny ? '--tiny' : '', o.only?.length ? `--only ${o.only.join(',')}` : ''].filter(Boolean).join(' ');
}

export async function verify(options: VerifyOptions = {}): Promise<VerifyReport> {
  const quick = options.quick ?? false;
  const tiny = options.tiny ?? false;
  const only = options.only ?? null;
  if (only) for (const id of only) if (!CLAIM_IDS.includes(id)) throw new RangeError(`unknown claim '${id}' (one of: ${CLAIM_IDS.join(', ')})`);
  const progress = options.progress ?? makeProgress(process.stderr, false);
  const sz = sizes(quick, tiny);
  const t0 = performance.now();
  const machine = machineInfo();
  const memo = new Map<string, Promise<unknown>>();
  let syscalls: Promise<SyscallReport> | null = options.syscalls ? Promise.resolve(options.syscalls) : null;
  const ctx: Ctx = {
    quick,
    tiny,
    sz,
    progress,
    once<T>(key: string, run: () => Promise<T>): Promise<T> {
      let p = memo.get(key) as Promise<T> | undefined;
      if (!p) {
        p = run();
        memo.set(key, p);
      }
      return p;
    },
    syscalls() {
      if (!syscalls) {
        progress.step('verify: bench syscalls (ping-pong, wait with idle fds)');
        syscalls = benchSyscalls({ ...sz.syscalls, progress: false });
      }
      return syscalls;
    },
    syscallsCommand:
      options.syscallsCommand ??
      (tiny ? `iomux bench syscalls --fds ${sz.syscalls.fdCounts.join(',')} --target-ms ${sz.syscalls.targetMs} --reps ${sz.syscalls.reps}` : quick ? 'iomux bench syscalls --quick' : 'iomux bench syscalls'),
  };
  const rows: ClaimRow[] = [];
  for (const c of CLAIMS) {
    if (only && !only.includes(c.id)) continue;
    const base = { id: c.id, claim: c.claim(ctx), command: c.command(ctx) };
    try {
      const o = await c.measure(ctx);
      rows.push({ ...base, measured: o.measured, values: o.values, threshold: o.threshold, verdict: o.verdict, reason: o.reason ?? null });
    } catch (err) {
      const e = err as Error;
      const why = err instanceof NotMeasured ? e.message : `${e.name}: ${e.message}`;
      rows.push({
        ...base,
        measured: '-',
        values: err instanceof NotMeasured ? err.values : {},
        threshold: c.threshold(ctx),
        verdict: 'not measured here',
        reason: why,
      });
    }
    const row = rows[rows.length - 1];
    progress.note(`verify: ${row.id}: ${row.verdict}${row.reason ? ` (${row.reason.slice(0, 160)})` : ''}`);
  }
  progress.done();
  machine.loadavgEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  return { section: 'verify', params: { quick, tiny, only }, command: verifyCommand({ quick, tiny, only }), machine, rows, elapsedS: (performance.now() - t0) / 1000 };
}

// ---- presentation ----------------------------------------------------------------------------

const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function verifyMarkdown(r: VerifyReport): string {
  const out: string[] = [];
  out.push(`Each claim of the thread-per-connection vs event-driven story, measured on this machine; the verdict is computed from the measurement by the rule in the threshold column.`);
  out.push(`Machine: ${machineLine(r.machine)}.`);
  out.push(`Command: \`${r.command}\``);
  out.push('');
  const rows = [['claim', 'measured here', 'threshold', 'verdict']];
  for (const x of r.rows) rows.push([esc(x.claim), esc(x.reason ? `not measured: ${x.reason}` : x.measured), esc(x.threshold), `**${x.verdict}**`]);
  out.push(mdTable(rows));
  out.push('The command that measures each claim alone:');
  out.push('');
  for (const x of r.rows) out.push(`- \`${x.id}\`: \`${x.command}\``);
  out.push('');
  return out.join('\n');
}

/** Plain text for a terminal: one block per claim. */
export function verifyText(r: VerifyReport): string {
  const out: string[] = [`iomux verify: ${r.rows.length} claims, ${machineLine(r.machine)}`, ''];
  for (const x of r.rows) {
    out.push(`${x.verdict.toUpperCase()}: ${x.claim}`);
    out.push(`  measured:  ${x.reason ? `not measured: ${x.reason}` : x.measured}`);
    out.push(`  threshold: ${x.threshold}`);
    out.push(`  command:   ${x.command}`);
    out.push('');
  }
  const count = (v: Verdict) => r.rows.filter((x) => x.verdict === v).length;
  out.push(VERDICTS.map((v) => `${count(v)} ${v}`).join(', ') + ` (${num(r.elapsedS, 0)} s)`);
  return out.join('\n') + '\n';
}

export async function verifyCharts(r: VerifyReport): Promise<Chart[]> {
  const charts: Chart[] = [];
  const lat: Point[] = [];
  for (const id of ['cpu-work-threads', 'cpu-work-reactor', 'cpu-work-pool']) {
    const row = r.rows.find((x) => x.id === id);
    const v = row?.values as { arch?: string; base?: CpuWorkRun; work?: CpuWorkRun; workUs?: number } | undefined;
    if (!v?.arch || !v.base || !v.work) continue;
    lat.push({ series: 'p99, no work', x: v.arch, y: v.base.p99 / 1000 });
    lat.push({ series: 'p99, with CPU work', x: v.arch, y: v.work.p99 / 1000 });
    lat.push({ series: 'p50, with CPU work', x: v.arch, y: v.work.p50 / 1000 });
  }
  if (lat.length) {
    const work = (r.rows.find((x) => x.id === 'cpu-work-reactor')?.values as { workUs?: number } | undefined)?.workUs;
    charts.push({
      file: 'latency-under-cpu-work.svg',
      caption: `Latency under CPU work: open-loop HTTP, p99 and p50 without and with requests that burn ${work ? fmtCount(work / 1000) + ' ms' : ''} of CPU (log scale)`,
      svg: await barChart(lat, { title: 'latency under CPU work', xTitle: 'architecture', yTitle: 'latency, ms', logY: true }),
    });
  }
  const sc = r.rows.find((x) => x.id === 'uring-syscalls')?.values as { runs?: Array<{ arch: string; syscallsPerRequest: number }> } | undefined;
  if (sc?.runs?.length) {
    charts.push({
      file: 'syscalls-per-request.svg',
      caption: 'Syscalls per echo request made by the server process (perf, raw_syscalls:sys_enter)',
      svg: await barChart(
        sc.runs.map((x) => ({ series: 'syscalls per request', x: x.arch, y: x.syscallsPerRequest })),
        { title: 'syscalls per request', xTitle: 'architecture', yTitle: 'syscalls per request' },
      ),
    });
  }
  return charts;
}

export const verifySection: Section<VerifyReport> = {
  name: 'verify',
  title: 'The claims, verified',
  command: (quick) => verifyCommand({ quick }),
  run: ({ quick, progress }) => verify({ quick, progress }),
  markdown: verifyMarkdown,
  charts: verifyCharts,
};

