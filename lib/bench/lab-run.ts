// Shared by `bench echo` and `bench c10k`: which architectures to run and how
// to name them, lab servers as child processes (`iomux serve`) pinned to one
// core, the load generator pinned to another, per-core busy time from
// /proc/stat, and the machine description each report carries. Every wait
// here is bounded: a server that never listens, never stops or crashes is
// reported, never waited for.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { ARCHS, findArch, type Arch } from '../arch';
import { backends } from '../poller';
import { runLoad, type LoadOptions, type LoadResult } from '../lab/load';
import { raisePeak, readProcess, type ProcSnapshot, type SamplerReport } from '../lab/metrics';

import { spawnServe, type ServerProcess } from '../lab/serve-process';

export { BIN, ServerStartError, describeExit, type ExitStatus, type ServerProcess } from '../lab/serve-process';

// ---- architectures ----------------------------------------------------------

/** One server configuration: an arch, optionally with a backend, and extra serve flags. */
export interface Variant {
  /** What tables and JSON call it: 'c-epoll', 'reactor:poll'. */
  label: string;
  arch: string;
  /** --backend, for archs that take it. */
  backend?: string;
  /** Extra `iomux serve` arguments. */
  args?: string[];
}

/** A variant that cannot run here, with the reason. */
export interface Unavailable {
  label: string;
  reason: string;
}

function takesBackend(a: Arch): boolean {
  return a.options.includes('backend');
}

/** The available backends, in registry order. */
export function availableBackends(): string[] {
  return backends()
    .filter((b) => b.available)
    .map((b) => b.name);
}

/**
 * Parses one `--archs` entry: NAME, or NAME:BACKEND for archs that take
 * --backend, or NAME:* for every available backend. Throws RangeError for an
 * unknown name or a backend the arch does not take.
 */
export function parseVariant(spec: string): Variant[] {
  const [name, backend, ...extra] = spec.trim().split(':');
  const arch = findArch(name);
  if (!arch || extra.length > 0) {
    throw new RangeError(`unknown architecture '${spec}' (one of: ${ARCHS.map((a) => a.name).join(', ')}; NAME:BACKEND for archs that take --backend)`);
  }
  if (backend === undefined) return [{ label: name, arch: name }];
  if (!takesBackend(arch)) throw new RangeError(`'${spec}': ${name} does not take a backend`);
  if (backend === '*') return availableBackends().map((b) => ({ label: `${name}:${b}`, arch: name, backend: b }));
  return [{ label: `${name}:${backend}`, arch: name, backend }];
}

export function parseVariants(specs: readonly string[]): Variant[] {
  const out: Variant[] = [];
  for (const s of specs) for (const v of parseVariant(s)) if (!out.some((o) => o.label === v.label)) out.push(v);
  return out;
}

/** Whether a variant can run here (its arch is available, its backend too). */
export function variantAvailability(v: Variant): { available: boolean; reason?: string } {
  const arch = findArch(v.arch);
  if (!arch) return { available: false, reason: `no arch '${v.arch}' in this build` };
  const av = arch.availability();
  if (!av.available) return { available: false, reason: av.reason ?? 'unavailable' };
  if (v.backend !== undefined) {
    const b = backends().find((x) => x.name === v.backend);
    if (!b) return { available: false, reason: `unknown backend '${v.backend}'` };
    if (!b.available) return { available: false, reason: `backend ${v.backend}: ${b.reason ?? 'unavailable'}` };
  }
  return { available: true };
}

/** The backend a variant's server will use ('epoll' for a reactor without --backend on Linux). */
export function effectiveBackend(v: Variant): string | undefined {
  if (v.backend !== undefined) return v.backend;
  const arch = findArch(v.arch);
  if (!arch || !takesBackend(arch)) return undefined;
  const b = backends().find((x) => x.available && x.name === 'epoll') ?? backends().find((x) => x.available);
  return b?.name;
}

// ---- pinning ----------------------------------------------------------------

export interface Pinning {
  /** The CPU the servers run on, or null when not pinned. */
  serverCpu: number | null;
  /** The CPU this process (the load generator) runs on, or null. */
  loadCpu: number | null;
  /** How: 'taskset', or why not. */
  note: string;
}

function allowedCpus(): number[] {
  try {
    const m = /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync('/proc/self/status', 'latin1'));
    if (!m) return [];
    const out: number[] = [];
    for (const part of m[1].split(',')) {
      const [a, b] = part.split('-').map(Number);
      for (let c = a; c <= (b ?? a); c++) out.push(c);
    }
    return out;
  } catch {
    return [];
  }
}

function haveTaskset(): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * Pins this process (every thread, so the load generator's native threads
 * too: they inherit it) to the second allowed CPU and reserves the first for
 * the servers. Returns a restore function with the plan. Falls back, with the
 * reason in `note`, when there is one CPU or no taskset.
 */
export function pinLoadGenerator(enabled = true): { pinning: Pinning; restore: () => void } {
  const none = (note: string) => ({ pinning: { serverCpu: null, loadCpu: null, note }, restore: () => {} });
  if (!enabled) return none('not pinned (--no-pin)');
  if (process.platform !== 'linux') return none(`not pinned: CPU affinity is only set on Linux (this is ${process.platform})`);
  const cpus = allowedCpus();
  if (cpus.length < 2) return none(`not pinned: this process may run on ${cpus.length || 'an unknown number of'} CPU(s), pinning needs 2`);
  if (!haveTaskset()) return none('not pinned: taskset (util-linux) is not installed');
  const [serverCpu, loadCpu] = cpus;
  const original = cpus.join(',');
  try {
    execFileSync('taskset', ['-a', '-p', '-c', String(loadCpu), String(process.pid)], { stdio: 'ignore', timeout: 5000 });
  } catch (err) {
    return none(`not pinned: taskset -a -p failed (${(err as Error).message.split('\n')[0]})`);
  }
  return {
    pinning: { serverCpu, loadCpu, note: `taskset: servers on CPU ${serverCpu}, load generator on CPU ${loadCpu}` },
    restore() {
      try {
        execFileSync('taskset', ['-a', '-p', '-c', original, String(process.pid)], { stdio: 'ignore', timeout: 5000 });
      } catch {
        // nothing more to do: the process keeps the narrower affinity
      }
    },
  };
}

// ---- a server as a child process ----------------------------------------------

/** The `iomux serve` command line for a variant (without the taskset prefix). */
export function serveArgs(v: Variant, protocol: 'echo' | 'http' = 'echo', graceMs = 1000): string[] {
  const args = ['serve', '--arch', v.arch, '--protocol', protocol, '--port', '0', '--grace-ms', String(graceMs)];
  if (v.backend !== undefined) args.push('--backend', v.backend);
  return args.concat(v.args ?? []);
}

/** Starts `iomux serve` for a variant (pinned to `cpu` when given) and waits for its listening line. */
export function startServer(v: Variant, o: { cpu: number | null; protocol?: 'echo' | 'http'; timeoutMs?: number }): Promise<ServerProcess> {
  return spawnServe(serveArgs(v, o.protocol ?? 'echo'), { cpu: o.cpu, timeoutMs: o.timeoutMs });
}

// ---- one bounded, sampled load run ------------------------------------------------

/** Busy and total jiffies of each CPU, from /proc/stat. */
export function cpuTimes(): Map<number, { busy: number; total: number }> {
  const out = new Map<number, { busy: number; total: number }>();
  try {
    for (const line of fs.readFileSync('/proc/stat', 'latin1').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const f = m[2].trim().split(/\s+/).map(Number);
      const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
      const idle = f[3] + (f[4] ?? 0);
      out.set(Number(m[1]), { busy: total - idle, total });
    }
  } catch {
    // not Linux: no per-CPU figures
  }
  return out;
}

/** Fraction of the time CPU `cpu` was busy between two readings (null when unknown). */
export function busyFraction(a: ReturnType<typeof cpuTimes>, b: ReturnType<typeof cpuTimes>, cpu: number | null): number | null {
  if (cpu === null) return null;
  const x = a.get(cpu);
  const y = b.get(cpu);
  if (!x || !y || y.total <= x.total) return null;
  return (y.busy - x.busy) / (y.total - x.total);
}

export interface SampledRun {
  /** null when the load generator could not start (error says why). */
  result: LoadResult | null;
  error: string | null;
  /** The server sampled over the measured window (after the warm-up) and the drain. */
  report: SamplerReport | null;
  /** CPU the load generator's process used over the measured run, in cores. */
  loadgenCores: number;
  /** How busy the two CPUs were over the measured run (everything on them, other users included). */
  cpuBusy: { serverCpu: number | null; loadCpu: number | null };
  /** The server's open fds: before the load, the most seen, and when it first held every connection. */
  fds: { baseline: number | null; max: number | null; allAcceptedMs: number | null };
  /**
   * Context switches of the server's threads from the start of the measured
   * window to shortly before its end (every connection still open), and the
   * requests answered in that time. Read from at most THREAD_SAMPLE threads
   * and scaled to all of them (`sampledThreads` of `threads`). null when not read.
   */
  ctx: { voluntary: number; involuntary: number; requests: number; sampledThreads: number; threads: number } | null;
  /** The watchdog had to cancel the run. */
  timedOut: boolean;
}

/** Open fds of a process (null when unreadable). */
export function countFds(pid: number): number | null {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/**
 * Per-thread context switches cost one /proc file per thread, about a
 * millisecond each on a busy machine: 10,000 threads would take seconds and,
 * read synchronously, stall every timer of the run. So at most this many
 * threads are read, spread evenly, asynchronously, and the sum is scaled.
 */
export const THREAD_SAMPLE = 256;

function pickEvenly<T>(list: readonly T[], k: number): T[] {
  if (list.length <= k) return [...list];
  const out: T[] = [];
  for (let i = 0; i < k; i++) out.push(list[Math.floor((i * list.length) / k)]);
  return out;
}

function listTids(pid: number): string[] {
  try {
    return fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
}

/** [voluntary, involuntary] context switches of each thread that could still be read. */
async function readThreadCtx(pid: number, tids: readonly string[]): Promise<Map<string, [number, number]>> {
  const out = new Map<string, [number, number]>();
  const one = async (tid: string) => {
    try {
      const text = await fs.promises.readFile(`/proc/${pid}/task/${tid}/status`, 'latin1');
      const v = /\nvoluntary_ctxt_switches:\s*(\d+)/.exec(text);
      const iv = /\nnonvoluntary_ctxt_switches:\s*(\d+)/.exec(text);
      if (v && iv) out.set(tid, [Number(v[1]), Number(iv[1])]);
    } catch {
      // the thread exited
    }
  };
  for (let i = 0; i < tids.length; i += 32) await Promise.all(tids.slice(i, i + 32).map(one));
  return out;
}

/**
 * RSS/PSS/VmSize/threads and CPU of a process every 250 ms, without the
 * per-thread files (cheap even with 10,000 threads): first, last, peaks.
 */
class WindowSampler {
  readonly first: ProcSnapshot;
  last: ProcSnapshot;
  samples = 1;
  peak: { rssKb: number; pssKb: number | null; vmSizeKb: number; threads: number };
  private timer: NodeJS.Timeout | null = null;

  constructor(readonly pid: number) {
    this.first = this.last = readProcess(pid, { threads: false });
    this.peak = { rssKb: this.first.rssKb, pssKb: this.first.pssKb, vmSizeKb: this.first.vmSizeKb, threads: this.first.threads };
    const tick = () => {
      this.sampleNow();
      this.timer = setTimeout(tick, 250);
      this.timer.unref();
    };
    this.timer = setTimeout(tick, 250);
    this.timer.unref();
  }

  sampleNow(): void {
    let s: ProcSnapshot;
    try {
      s = readProcess(this.pid, { threads: false });
    } catch {
      return;  // gone
    }
    this.last = s;
    this.samples++;
    raisePeak(this.peak, s);
  }

  stop(ctx: { voluntary: number; involuntary: number }): SamplerReport {
    if (this.timer) clearTimeout(this.timer);
    this.sampleNow();
    const userS = this.last.userS - this.first.userS;
    const sysS = this.last.sysS - this.first.sysS;
    return {
      pid: this.pid,
      samples: this.samples,
      first: this.first,
      last: this.last,
      peak: { ...this.peak },
      cpu: { userS, sysS, totalS: userS + sysS },
      ctxSwitches: ctx,
      wallS: (this.last.t - this.first.t) / 1000,
    };
  }
}

/**
 * Waits (bounded) until a server's open fds are back to `target` or fewer,
 * i.e. it has closed the connections of a previous run. Resolves with the
 * count seen last (null when unreadable).
 */
export async function waitForFds(pid: number, target: number, timeoutMs = 10_000): Promise<number | null> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const n = countFds(pid);
    if (n === null || n <= target || performance.now() >= deadline) return n;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Runs the load generator against a server process while sampling it, with a
 * watchdog: a run that outlasts its own connect timeout + warm-up + duration
 * + drain by more than `slackS` is cancelled (and reported), so nothing
 * hangs. With `load.warmup`, the server is sampled from the end of the
 * warm-up (CPU, peaks, context switches); memory baselines are the caller's.
 * With `waitAccepted`, the warm-up also lasts until the server holds every
 * connection (bounded by the connect timeout), so a slow acceptor is measured
 * holding them all rather than while still accepting. The server's open fds
 * are counted every 50 ms until it holds every connection, which is when it
 * has accepted them all (a client's connect completes in the kernel's
 * backlog before that).
 */
export async function sampledRun(
  server: ServerProcess,
  load: LoadOptions,
  pinning: Pinning,
  options: { waitAccepted?: boolean; slackS?: number } = {},
): Promise<SampledRun> {
  const conns = load.conns ?? 10;
  const durationS = load.duration ?? 5;
  const slackS = options.slackS ?? 20;
  const fdBase = countFds(server.pid);
  const fds = { baseline: fdBase, max: fdBase, allAcceptedMs: null as number | null };
  const tLoad = performance.now();
  // With waitAccepted the warm-up lasts at least load.warmup and until the
  // server holds every connection (at most the connect timeout more).
  const warmupMin = load.warmup ?? 0;
  const warmupMax = options.waitAccepted ? warmupMin + (load.connectTimeout ?? 10) : warmupMin;
  const warmupEnd = new AbortController();
  let warmupDone = !options.waitAccepted;
  let runStartedAt: number | null = null;
  let fdTimer: NodeJS.Timeout | null = null;
  // A server that stops taking connections (select past FD_SETSIZE, out of
  // fds) is not waited for: 2 s without a new one once the run has started.
  // The fds are counted every 50 ms or more (see pollMs).
  let lastGrowth = performance.now();
  let pollMs = 50;
  const pollFds = () => {
    fdTimer = null;
    const now = performance.now();
    const n = countFds(server.pid);
    // Listing 10,000 fds takes tens of ms, on the load generator's CPU: poll at most a quarter of the time.
    pollMs = Math.max(50, 3 * (performance.now() - now));
    if (n !== null && n > (fds.max ?? 0)) lastGrowth = now;
    if (n !== null) fds.max = Math.max(fds.max ?? 0, n);
    const all = n === null || fdBase === null || n >= fdBase + conns;
    if (all && n !== null && fdBase !== null && fds.allAcceptedMs === null) fds.allAcceptedMs = now - tLoad;
    const stalled = runStartedAt !== null && now - Math.max(lastGrowth, runStartedAt) > 2000;
    if (!warmupDone && (all || stalled || server.exit) && runStartedAt !== null && now - runStartedAt >= warmupMin * 1000) {
      warmupDone = true;
      warmupEnd.abort();
    }
    if (!all || !warmupDone) fdTimer = setTimeout(pollFds, pollMs);
  };
  fdTimer = setTimeout(pollFds, 50);

  // The measured window: cheap samples throughout; per-thread context
  // switches (sampled threads, asynchronously) at its start and shortly
  // before its end, while every connection is still open (a connection
  // thread's counters go with it when the load generator closes it).
  let sampler: WindowSampler | null = null;
  let windowStart = 0;
  let r0 = 0;
  let lastRequests = 0;
  let ctxStart: Promise<{ all: Set<string>; pick: string[]; base: Map<string, [number, number]>; ms: number }> | null = null;
  let ctxEnd: Promise<SampledRun['ctx']> | null = null;
  let preEndTimer: NodeJS.Timeout | null = null;
  let cpu0 = cpuTimes();
  let u0 = process.cpuUsage();
  let t0 = performance.now();
  const readEnd = async (): Promise<SampledRun['ctx']> => {
    const start = await ctxStart!;
    const reqBefore = lastRequests;
    const all = listTids(server.pid);
    const fresh = all.filter((t) => !start.all.has(t));
    const pickFresh = pickEvenly(fresh, THREAD_SAMPLE);
    const now = await readThreadCtx(server.pid, [...start.pick, ...pickFresh]);
    const requests = Math.round((reqBefore + lastRequests) / 2) - r0;
    let v = 0;
    let iv = 0;
    let vf = 0;
    let ivf = 0;
    for (const tid of start.pick) {
      const a = start.base.get(tid);
      const b = now.get(tid);
      if (a && b) {
        v += b[0] - a[0];
        iv += b[1] - a[1];
      }
    }
    for (const tid of pickFresh) {
      const b = now.get(tid);
      if (b) {
        vf += b[0];
        ivf += b[1];
      }
    }
    const scale = start.pick.length > 0 ? start.all.size / start.pick.length : 0;
    const scaleFresh = pickFresh.length > 0 ? fresh.length / pickFresh.length : 0;
    return {
      voluntary: Math.round(v * scale + vf * scaleFresh),
      involuntary: Math.round(iv * scale + ivf * scaleFresh),
      requests,
      sampledThreads: start.pick.length + pickFresh.length,
      threads: all.length,
    };
  };
  const startSampling = () => {
    try {
      sampler = new WindowSampler(server.pid);
    } catch {
      sampler = null;
    }
    windowStart = performance.now();
    r0 = lastRequests;
    cpu0 = cpuTimes();
    u0 = process.cpuUsage();
    t0 = performance.now();
    ctxStart = (async () => {
      const ts = performance.now();
      const all = listTids(server.pid);
      const pick = pickEvenly(all, THREAD_SAMPLE);
      const base = await readThreadCtx(server.pid, pick);
      return { all: new Set(all), pick, base, ms: performance.now() - ts };
    })();
    void ctxStart.then((st) => {
      // Read again before the window ends, leaving twice the time a reading took.
      const lead = Math.max(300, 2 * st.ms + 100);
      const delay = windowStart + durationS * 1000 - lead - performance.now();
      if (delay > 0) preEndTimer = setTimeout(() => (ctxEnd = readEnd()), delay);
    });
  };
  let measuring = false;

  const ac = new AbortController();
  const budgetS = (load.connectTimeout ?? 10) + warmupMax + durationS + (load.drain ?? 2) + slackS;
  let timedOut = false;
  const watchdog = setTimeout(() => {
    timedOut = true;
    ac.abort();
  }, budgetS * 1000);
  let sampledAtEnd = false;
  let result: LoadResult | null = null;
  let error: string | null = null;
  try {
    const run = runLoad({
      ...load,
      warmup: warmupMax,
      endWarmup: warmupEnd.signal,
      signal: ac.signal,
      progressInterval: load.progressInterval ?? 100,
      onProgress: (p) => {
        lastRequests = p.requests;
        if (runStartedAt === null && (p.phase === 'warmup' || p.phase === 'run')) runStartedAt = performance.now();
        if (!measuring && p.phase === 'run') {
          measuring = true;
          warmupDone = true;
          startSampling();
        }
        // The run is over: the last sample with every connection open (if the load generator has not closed them yet).
        if (p.phase === 'drain' && !sampledAtEnd) {
          sampledAtEnd = true;
          (sampler as WindowSampler | null)?.sampleNow();
          const n = countFds(server.pid);
          if (n !== null) fds.max = Math.max(fds.max ?? 0, n);
        }
        load.onProgress?.(p);
      },
    });
    // A cancelled run resolves at once; should even that not happen, give up.
    const stuck = new Promise<never>((_, reject) => {
      const t = setTimeout(() => reject(new Error(`the load generator did not stop within ${budgetS + 15} s`)), (budgetS + 15) * 1000);
      t.unref();
      void run.finally(() => clearTimeout(t)).catch(() => {});
    });
    result = await Promise.race([run, stuck]);
  } catch (err) {
    error = (err as Error).message;
  } finally {
    clearTimeout(watchdog);
    if (fdTimer) clearTimeout(fdTimer);
    if (preEndTimer) clearTimeout(preEndTimer);
  }
  const wallS = (performance.now() - t0) / 1000;
  const u = process.cpuUsage(u0);
  const cpu1 = cpuTimes();
  let ctx: SampledRun['ctx'] = null;
  if (ctxEnd) {
    const late = new Promise<null>((r) => setTimeout(() => r(null), 10_000).unref());
    ctx = await Promise.race([ctxEnd as Promise<SampledRun['ctx']>, late]).catch(() => null);
  }
  const s = sampler as WindowSampler | null;
  const report = s ? s.stop(ctx ?? { voluntary: 0, involuntary: 0 }) : null;
  return {
    result,
    error: timedOut && !error ? `the run outlasted its ${budgetS} s budget and was cancelled` : error,
    report,
    loadgenCores: wallS > 0 ? (u.user + u.system) / 1e6 / wallS : 0,
    cpuBusy: { serverCpu: busyFraction(cpu0, cpu1, pinning.serverCpu), loadCpu: busyFraction(cpu0, cpu1, pinning.loadCpu) },
    fds,
    ctx,
    timedOut,
  };
}

// ---- the machine --------------------------------------------------------------

export interface MachineInfo {
  cpu: string;
  cores: number;
  kernel: string;
  node: string;
  /** 1, 5 and 15 minute load averages when the section started and ended. */
  loadavgStart: number[];
  loadavgEnd: number[];
  /** Soft RLIMIT_NOFILE after raising it to the hard limit. */
  fileLimit: number | null;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    loadavgStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    loadavgEnd: [],
    fileLimit: null,
  };
}

export function machineLine(m: MachineInfo): string {
  return (
    `${m.cpu}, ${m.cores} cores, ${m.kernel}, Node ${m.node}; load average ${m.loadavgStart.join(' ')} at the start` +
    (m.loadavgEnd.length ? `, ${m.loadavgEnd.join(' ')} at the end` : '')
  );
}

// ---- formatting -----------------------------------------------------------------

/** A Markdown table. */
export function mdTable(rows: string[][]): string {
  const [head, ...body] = rows;
  return [`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n') + '\n';
}

/** A number for a table: '-' for null/NaN, thousands separators for big ones. */
export function num(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(digits);
}

export function finiteOrNull(v: number | null | undefined): number | null {
  return v === null || v === undefined || !Number.isFinite(v) ? null : v;
}
