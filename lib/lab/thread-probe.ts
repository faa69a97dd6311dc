// What a thread costs: park N idle native threads in THIS process and read
// the process's virtual size, resident size and the kernel's thread stacks
// before and after. Run it in a child process (`iomux probe threads`) so the
// caller's own memory does not blur the figures.
import * as fs from 'node:fs';
import { native } from '../native';
import { ErrnoError } from '../errors';
import { intArg } from '../validate';

export interface ThreadProbeResult {
  requested: number;
  started: number;
  /** Bytes of stack each thread was given (the default is RLIMIT_STACK). */
  stackBytes: number;
  defaultStackBytes: number;
  /** Per thread, in KiB: address space reserved (VmSize), resident (RSS), kernel stack (system-wide KernelStack delta). */
  vmKiBPerThread: number;
  rssKiBPerThread: number;
  kernelStackKiBPerThread: number;
  before: ProcMemory;
  after: ProcMemory;
}

export interface ProcMemory {
  vmSizeKiB: number;
  rssKiB: number;
  threads: number;
  kernelStackKiB: number;
}

function field(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

export function procMemory(): ProcMemory {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const meminfo = fs.readFileSync('/proc/meminfo', 'utf8');
  return {
    vmSizeKiB: field(status, 'VmSize'),
    rssKiB: field(status, 'VmRSS'),
    threads: field(status, 'Threads'),
    kernelStackKiB: field(meminfo, 'KernelStack'),
  };
}

/** Parks `n` threads with `stackBytes` stacks (0 = default), measures, releases them. */
export function probeThreads(n: number, stackBytes = 0): ThreadProbeResult {
  intArg(n, 'n', 1, 100_000);
  intArg(stackBytes, 'stackBytes', 0, 2 ** 40);
  const defaultStackBytes = native.probeThreads.defaultStackSize();
  const before = procMemory();
  const started = native.probeThreads.parkThreads(n, stackBytes);
  if (started < 0) throw new ErrnoError(-started, 'pthread_create');
  let after: ProcMemory;
  try {
    after = procMemory();
  } finally {
    native.probeThreads.releaseThreads();
  }
  const per = (a: number, b: number) => (started > 0 ? (a - b) / started : 0);
  return {
    requested: n,
    started,
    stackBytes: stackBytes || defaultStackBytes,
    defaultStackBytes,
    vmKiBPerThread: per(after.vmSizeKiB, before.vmSizeKiB),
    rssKiBPerThread: per(after.rssKiB, before.rssKiB),
    kernelStackKiBPerThread: per(after.kernelStackKiB, before.kernelStackKiB),
    before,
    after,
  };
}
