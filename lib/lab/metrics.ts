// What a server process costs while it is loaded, read from /proc (Linux):
// RSS and PSS (smaps_rollup), VmSize, threads, voluntary and involuntary
// context switches summed over every thread, and CPU user/system time.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { native } from '../native';
import { ErrnoError, InvalidStateError } from '../errors';
import { intArg } from '../validate';

export interface ProcSnapshot {
  /** performance.now() when taken, ms. */
  t: number;
  pid: number;
  rssKb: number;
  /** null when smaps_rollup is unreadable (kernel < 4.14, or no permission). */
  pssKb: number | null;
  vmSizeKb: number;
  threads: number;
  /** Summed over the threads alive now (0 when read with `threads: false`). */
  voluntaryCtxSwitches: number;
  involuntaryCtxSwitches: number;
  /** Process-wide, including threads that have exited. */
  userS: number;
  sysS: number;
  /** Per thread id: [voluntary, involuntary]; null when read with `threads: false`. */
  perThread: Map<number, [number, number]> | null;
}

export interface ReadOptions {
  /** Also read /proc/PID/task/* /status for context switches (default true;
   * costs one file per thread, which matters with 10,000 threads). */
  threads?: boolean;
}

let ticks = 0;
function clockTicks(): number {
  if (!ticks) ticks = native.clockTicks() > 0 ? native.clockTicks() : 100;
  return ticks;
}

function readText(path: string, syscall = 'open'): string {
  try {
    return fs.readFileSync(path, 'latin1');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (typeof e.errno === 'number') throw new ErrnoError(-e.errno, syscall, path);
    throw err;
  }
}

function field(text: string, name: string): number {
  const i = text.indexOf(`\n${name}:`);
  const at = i >= 0 ? i + name.length + 2 : text.startsWith(`${name}:`) ? name.length + 1 : -1;
  if (at < 0) return 0;
  return parseInt(text.slice(at, text.indexOf('\n', at)).trim(), 10) || 0;
}

/** One reading of /proc/PID. Throws ErrnoError (ENOENT) when the process is gone. */
export function readProcess(pid: number, options: ReadOptions = {}): ProcSnapshot {
  intArg(pid, 'pid', 1, 0x7fffffff);
  const t = performance.now();
  const status = readText(`/proc/${pid}/status`);
  const stat = readText(`/proc/${pid}/stat`);
  // Fields after the command name (which may contain spaces and parentheses).
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  let pssKb: number | null = null;
  try {
    pssKb = field(readText(`/proc/${pid}/smaps_rollup`), 'Pss');
  } catch {
    pssKb = null;
  }
  const perThread = options.threads === false ? null : new Map<number, [number, number]>();
  let vol = 0;
  let invol = 0;
  let tids: string[] = [];
  try {
    if (perThread) tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    tids = [];
  }
  for (const tid of tids) {
    let s: string;
    try {
      s = fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'latin1');
    } catch {
      continue;  // the thread exited while we looked
    }
    const v = field(s, 'voluntary_ctxt_switches');
    const iv = field(s, 'nonvoluntary_ctxt_switches');
    perThread!.set(Number(tid), [v, iv]);
    vol += v;
    invol += iv;
  }
  return {
    t,
    pid,
    rssKb: field(status, 'VmRSS'),
    pssKb,
    vmSizeKb: field(status, 'VmSize'),
    threads: field(status, 'Threads'),
    voluntaryCtxSwitches: vol,
    involuntaryCtxSwitches: invol,
    userS: utime / clockTicks(),
    sysS: stime / clockTicks(),
    perThread,
  };
}

export interface SamplerReport {
  pid: number;
  samples: number;
  first: ProcSnapshot;
  last: ProcSnapshot;
  peak: { rssKb: number; pssKb: number | null; vmSizeKb: number; threads: number };
  /** Over the sampled interval. */
  cpu: { userS: number; sysS: number; totalS: number };
  /** Over the sampled interval, summed over every thread seen, including threads that exited between samples' reach. */
  ctxSwitches: { voluntary: number; involuntary: number };
  /** Wall time between the first and last sample, seconds. */
  wallS: number;
}

/** Raises each peak (RSS, PSS, VmSize, threads) to the snapshot's value where it is higher. */
export function raisePeak(peak: SamplerReport['peak'], s: ProcSnapshot): void {
  peak.rssKb = Math.max(peak.rssKb, s.rssKb);
  if (s.pssKb !== null) peak.pssKb = Math.max(peak.pssKb ?? 0, s.pssKb);
  peak.vmSizeKb = Math.max(peak.vmSizeKb, s.vmSizeKb);
  peak.threads = Math.max(peak.threads, s.threads);
}

export interface SamplerOptions {
  /** Sampling period in ms (default 250). Reading many threads takes time, so the
   * period stretches to at least 5x the time one reading took. */
  intervalMs?: number;
}

/**
 * Samples a process from start() to stop(). The first sample is the baseline
 * (take it before the load starts); peaks are tracked in between. Context
 * switches are summed per thread id so threads that come and go during the
 * run still count (up to their last sample).
 */
export class ProcessSampler {
  readonly pid: number;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | null = null;
  private first: ProcSnapshot | null = null;
  private last: ProcSnapshot | null = null;
  private samples = 0;
  private peak = { rssKb: 0, pssKb: null as number | null, vmSizeKb: 0, threads: 0 };
  private readonly baseline = new Map<number, [number, number]>();
  private readonly latest = new Map<number, [number, number]>();
  private gone = false;
  private nextThreadScan = 0;

  constructor(pid: number, options: SamplerOptions = {}) {
    this.pid = intArg(pid, 'pid', 1, 0x7fffffff);
    this.intervalMs = intArg(options.intervalMs ?? 250, 'intervalMs', 1, 3_600_000);
  }

  /** Takes the baseline sample now (throws if the process does not exist) and starts sampling. */
  start(): ProcSnapshot {
    if (this.first) throw new InvalidStateError('ProcessSampler already started');
    const s = this.sample();
    if (!s) throw new ErrnoError(os.constants.errno.ENOENT, 'open', `/proc/${this.pid}`);
    for (const [tid, v] of s.perThread!) this.baseline.set(tid, v);
    this.schedule(this.intervalMs);
    return s;
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.sample(performance.now() >= this.nextThreadScan);
      if (!this.gone) this.schedule(this.intervalMs);
    }, ms);
    this.timer.unref();
  }

  /**
   * Takes a sample now, e.g. at the end of a load run while every connection
   * is still open. The per-thread scan (context switches) runs at most every
   * 5x the time it last took, so 10,000 threads do not turn the sampler into load.
   */
  sampleNow(): ProcSnapshot | null {
    return this.sample(true);
  }

  private sample(threads = true): ProcSnapshot | null {
    let s: ProcSnapshot;
    const t0 = performance.now();
    try {
      s = readProcess(this.pid, { threads });
    } catch {
      this.gone = true;
      return null;
    }
    if (threads) this.nextThreadScan = performance.now() + 5 * (performance.now() - t0);
    if (!this.first) this.first = s;
    this.last = s;
    this.samples++;
    raisePeak(this.peak, s);
    if (s.perThread) for (const [tid, v] of s.perThread) this.latest.set(tid, v);
    return s;
  }

  /** Takes a last sample and stops. */
  stop(): SamplerReport {
    if (!this.first) throw new InvalidStateError('ProcessSampler was not started');
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.gone) this.sample();
    const first = this.first;
    const last = this.last ?? first;
    let vol = 0;
    let invol = 0;
    for (const [tid, [v, iv]] of this.latest) {
      const [bv, biv] = this.baseline.get(tid) ?? [0, 0];
      vol += v - bv;
      invol += iv - biv;
    }
    const userS = last.userS - first.userS;
    const sysS = last.sysS - first.sysS;
    return {
      pid: this.pid,
      samples: this.samples,
      first,
      last,
      peak: { ...this.peak },
      cpu: { userS, sysS, totalS: userS + sysS },
      ctxSwitches: { voluntary: vol, involuntary: invol },
      wallS: (last.t - first.t) / 1000,
    };
  }
}

export interface DerivedMetrics {
  /** CPU time (user + sys) the server spent per request answered. */
  cpuUsPerRequest: number | null;
  /** (peak RSS - baseline RSS) / connections. */
  rssKbPerConnection: number | null;
  pssKbPerConnection: number | null;
  /** Server CPU utilisation over the sampled interval (1 = one core busy). */
  cores: number;
}

/** CPU per request and memory per connection from a sampler report. */
export function deriveMetrics(report: SamplerReport, counts: { requests: number; connections: number }): DerivedMetrics {
  const { requests, connections } = counts;
  const pssBase = report.first.pssKb;
  return {
    cpuUsPerRequest: requests > 0 ? (report.cpu.totalS * 1e6) / requests : null,
    rssKbPerConnection: connections > 0 ? (report.peak.rssKb - report.first.rssKb) / connections : null,
    pssKbPerConnection:
      connections > 0 && pssBase !== null && report.peak.pssKb !== null ? (report.peak.pssKb - pssBase) / connections : null,
    cores: report.wallS > 0 ? report.cpu.totalS / report.wallS : 0,
  };
}
