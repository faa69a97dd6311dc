// Shared by the bench subcommands: the JS twin of native/bench.cc's
// calibrated loop, small statistics, and the machine description every
// report carries.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { native } from '../native';

export interface Measurement {
  /** Wall clock (CLOCK_MONOTONIC) per op. */
  nsPerOp: number;
  iterations: number;
  elapsedNs: number;
  /** CPU time of the calling thread per op, same batch: leaves out time other processes held the CPU. */
  cpuNsPerOp: number;
}

const threadCpuNs: () => number = native.bench.threadCpuNs;

const MAX_ITERS = 2 ** 34;

/**
 * Times op(iters) in two steps: calibration batches grow from 1 iteration
 * until one lasts a tenth of targetNs (this also lets the JIT settle), then
 * the measured batch runs as many iterations as that rate predicts for
 * targetNs. A measured batch over 3x its prediction was disturbed (preempted
 * on a busy machine) and is run again, twice at most; the fastest is kept.
 * The same policy as Measure() in native/bench.cc.
 */
export function measure(op: (iters: number) => void, targetNs: number): Measurement {
  let iters = 1;
  let t = 0;
  for (;;) {
    const t0 = process.hrtime.bigint();
    op(iters);
    t = Number(process.hrtime.bigint() - t0);
    if (t * 10 >= targetNs || iters >= MAX_ITERS) break;
    const scale = t > 0 ? Math.min(100, Math.max(2, (1.2 * targetNs) / 10 / t)) : 100;
    iters = Math.min(MAX_ITERS, Math.floor(iters * scale));
  }
  const rate = t / iters;
  const finalIters = Math.min(MAX_ITERS, Math.max(1, rate > 0 ? Math.floor(targetNs / rate) : iters));
  const predicted = rate * finalIters;
  let best: Measurement | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const c0 = threadCpuNs();
    const t0 = process.hrtime.bigint();
    op(finalIters);
    const tf = Number(process.hrtime.bigint() - t0);
    const cf = threadCpuNs() - c0;
    if (!best || tf / finalIters < best.nsPerOp) best = { nsPerOp: tf / finalIters, iterations: finalIters, elapsedNs: tf, cpuNsPerOp: cf / finalIters };
    if (tf <= 3 * predicted) break;
  }
  return best!;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Least-squares slope and intercept of y over x (NaN for fewer than two distinct x). */
export function linearFit(xs: readonly number[], ys: readonly number[]): { slope: number; intercept: number } {
  const n = xs.length;
  if (n < 2 || n !== ys.length) return { slope: NaN, intercept: NaN };
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  if (sxx === 0) return { slope: NaN, intercept: NaN };
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx };
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  /** CPUs this process may run on (Cpus_allowed_list), e.g. "1" under taskset -c 1. */
  affinity: string | null;
  platform: string;
  kernel: string;
  node: string;
  /** 1, 5 and 15 minute load averages when the benchmark started: how busy the machine was. */
  loadavg: number[];
}

export function machineInfo(): MachineInfo {
  let affinity: string | null = null;
  try {
    const m = /^Cpus_allowed_list:\s*(.+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) affinity = m[1].trim();
  } catch {
    /* not Linux */
  }
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    affinity,
    platform: process.platform,
    kernel: os.release(),
    node: process.version,
    loadavg: os.loadavg().map((v) => Math.round(v * 100) / 100),
  };
}

/** A finite number rounded to `digits` decimals, or null. */
export function round(value: number | null | undefined, digits = 1): number | null {
  if (value === null || value === undefined || !Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** A positive ratio to 3 significant digits (never rounded to 0), or null. */
export function sig(value: number | null | undefined, digits = 3): number | null {
  if (value === null || value === undefined || !Number.isFinite(value)) return null;
  return Number(value.toPrecision(digits));
}

/** Fixed-decimal text for a table cell; '-' for null. */
export function fmt(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);
}

/** Progress on stderr: one plain line each. */
export function progress(enabled: boolean, line: string): void {
  if (enabled) process.stderr.write(`${line}\n`);
}
