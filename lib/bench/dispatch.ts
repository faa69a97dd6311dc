// `iomux bench dispatch`: the workload of libevent's test/bench.c (Niels
// Provos, with Davide Libenzi's chained writes), measured the same way.
//
// n connected pairs (socketpairs, or pipes with { pipes: true }) each have a
// persistent, level-triggered read watch. One run:
//   1. setup (timed apart): every read end is registered;
//   2. one untimed non-blocking pass drains anything left over;
//   3. one byte is written into `a` pairs spaced n/a apart (the active ones);
//   4. dispatch (timed): non-blocking passes (wait with timeout 0) until every
//      byte written has been read. Each readable fd gets one callback: read
//      one byte, and while the budget of `w` writes lasts, write one byte into
//      the next pair (wrapping from the last pair to the first);
//   5. (untimed) every read end is removed again.
// So every run reads a + w bytes (the "events") and writes exactly w more.
// 25 runs; the report gives the median setup time, the median dispatch time
// per run, and that divided by the a + w events.
//
// Runners: 'native' is the same algorithm in C (native/bench.cc) over the
// same Backend objects a Poller wraps; TypeScript runners are registered by
// name with registerDispatchRunner (today 'poller'; the EventLoop adds its
// own with one call). Each runner first does one untimed warm-up run (the
// JIT compiles the TypeScript loops); then the runs of all runners on one
// backend and n are interleaved (run 1 of each, then run 2 of each, ...), so
// a busy spell on a shared machine falls on all of them alike; step 5 keeps
// one runner's registrations from adding kernel work to another's run.
import * as fs from 'node:fs';
import { native } from '../native';
import { ErrnoError } from '../errors';
import { Poller, Interest, backends, type BackendName } from '../poller';
import * as sys from '../sys';
import { machineInfo, median, progress, round, sig, type MachineInfo } from './measure';

export interface DispatchWorkload {
  backend: BackendName;
  /** n pairs as [read0, write0, read1, write1, ...], all non-blocking. */
  fds: Int32Array;
  n: number;
  /** Active pairs that get the first byte. */
  a: number;
  /** Write budget per run. */
  w: number;
  /** Events one wait may return (the same for every runner). */
  capacity: number;
}

/**
 * One run: times in µs, plus the counts that prove the run did the work.
 * Each time is taken twice: by the wall clock (CLOCK_MONOTONIC), and as the
 * CPU time of the thread (CLOCK_THREAD_CPUTIME_ID), which leaves out the time
 * other processes held the CPU: on a shared machine, the steadier figure.
 */
export interface RunSample {
  setupUs: number;
  dispatchUs: number;
  setupCpuUs: number;
  dispatchCpuUs: number;
  /** Bytes read during the timed dispatch: a + w. */
  reads: number;
  /** Bytes written by the callbacks: w. */
  writes: number;
  /** Non-blocking wait passes the dispatch took. */
  passes: number;
}

/** A runner prepared for one workload: run() does one run (steps 1-5 above). */
export interface DispatchSession {
  run(): RunSample;
  close(): void;
}

export type DispatchRunner = (work: DispatchWorkload) => DispatchSession;

export interface RunnerInfo {
  name: string;
  lang: 'ts' | 'c';
  open: DispatchRunner;
  /** One line for --help. */
  description: string;
}

const runners = new Map<string, RunnerInfo>();

/** Adds a runner by name; `iomux bench dispatch` runs every registered one. */
export function registerDispatchRunner(name: string, open: DispatchRunner, lang: 'ts' | 'c' = 'ts', description = `the algorithm in ${lang === 'c' ? 'C' : 'TypeScript'}`): void {
  runners.set(name, { name, lang, open, description });
}

export function dispatchRunners(): RunnerInfo[] {
  return [...runners.values()];
}

interface NativeDispatchLoop {
  run(): Float64Array | number;
  close(): void;
}

/** The C reference loop in native/bench.cc. */
export const nativeRunner: DispatchRunner = (work) => {
  let loop: NativeDispatchLoop;
  try {
    loop = new native.bench.DispatchLoop(work.backend, work.fds, work.a, work.w, work.capacity);
  } catch (err) {
    const e = err as { errno?: number; message?: string };
    throw new ErrnoError(e.errno ?? 22, `bench dispatch (native, ${work.backend})`, e.message);
  }
  return {
    run() {
      const s = loop.run();
      if (typeof s === 'number') throw new ErrnoError(-s, `bench dispatch (native, ${work.backend})`);
      return { setupUs: s[0] / 1e3, dispatchUs: s[1] / 1e3, setupCpuUs: s[5] / 1e3, dispatchCpuUs: s[6] / 1e3, reads: s[2], writes: s[3], passes: s[4] };
    },
    close() {
      loop.close();
    },
  };
};

const now = () => process.hrtime.bigint();
const cpuNow: () => number = native.bench.threadCpuNs;

/** The same algorithm in TypeScript, straight over a Poller: the loop an EventLoop would run, without its bookkeeping. */
export const pollerRunner: DispatchRunner = ({ backend, fds, n, a, w, capacity }) => {
  const poller = new Poller(backend, { capacity });
  let maxFd = 0;
  for (let i = 0; i < fds.length; i++) maxFd = Math.max(maxFd, fds[i]);
  const index = new Int32Array(maxFd + 1).fill(-1);
  for (let i = 0; i < n; i++) index[fds[2 * i]] = i;
  const ev = poller.events;
  const ch = new Uint8Array(1);
  const e = Uint8Array.of(101);
  const maxPasses = 100 * (a + w) + 100000;
  const space = Math.floor(n / a);

  function dispatch(): RunSample {
    let k = poller.wait(0);
    for (let j = 0; j < k; j++) sys.read(ev[2 * j], ch);

    let fired = 0;
    let count = 0;
    let writes = w;
    let wrote = 0;
    let passes = 0;
    for (let i = 0; i < a; i++, fired++) sys.write(fds[2 * (i * space) + 1], e);

    const c2 = cpuNow();
    const t2 = now();
    do {
      k = poller.wait(0);
      for (let j = 0; j < k; j++) {
        const fd = ev[2 * j];
        const idx = fd <= maxFd ? index[fd] : -1;
        if (idx < 0) continue;
        if (sys.read(fd, ch) === 1) count++;
        if (writes > 0) {
          let next = idx + 1;
          if (next >= n) next -= n;
          sys.write(fds[2 * next + 1], e);
          writes--;
          wrote++;
          fired++;
        }
      }
      if (++passes > maxPasses) throw new Error(`dispatch on ${backend} did not converge after ${maxPasses} passes`);
    } while (count !== fired);
    const t3 = now();
    const c3 = cpuNow();
    return { setupUs: 0, dispatchUs: Number(t3 - t2) / 1e3, setupCpuUs: 0, dispatchCpuUs: (c3 - c2) / 1e3, reads: count, writes: wrote, passes };
  }

  return {
    run() {
      const c0 = cpuNow();
      const t0 = now();
      let added = 0;
      try {
        for (; added < n; added++) poller.add(fds[2 * added], Interest.READABLE);
        const t1 = now();
        const c1 = cpuNow();
        const sample = dispatch();
        sample.setupUs = Number(t1 - t0) / 1e3;
        sample.setupCpuUs = (c1 - c0) / 1e3;
        return sample;
      } finally {
        for (let i = 0; i < added; i++) poller.remove(fds[2 * i]);
      }
    },
    close() {
      poller.close();
    },
  };
};

interface LeanWaiter {
  wait(timeout: number): number;
  add(fd: number): number;
  remove(fd: number): number;
  close(): void;
}

/**
 * The TypeScript loop again, over the leanest binding N-API allows: a wait
 * with its events array bound once and no unwrap (bench.leanWait), and the
 * addon's read/write called without the TypeScript argument checks. Not an
 * API anyone should use: it shows how much of the TypeScript loop's extra
 * cost is N-API itself and how much the checks and wrappers above it.
 */
export const leanRunner: DispatchRunner = ({ backend, fds, n, a, w, capacity }) => {
  const ev = new Int32Array(2 * capacity);
  const lean = native.bench.leanWait(backend, new Int32Array(0), ev) as LeanWaiter | number;
  if (typeof lean === 'number') throw new ErrnoError(-lean, `bench dispatch (lean, ${backend})`);
  const { wait, add, remove } = lean;
  const read: (fd: number, buf: Uint8Array, off: number, len: number) => number = native.sys.read;
  const write: (fd: number, buf: Uint8Array, off: number, len: number) => number = native.sys.write;
  let maxFd = 0;
  for (let i = 0; i < fds.length; i++) maxFd = Math.max(maxFd, fds[i]);
  const index = new Int32Array(maxFd + 1).fill(-1);
  for (let i = 0; i < n; i++) index[fds[2 * i]] = i;
  const ch = new Uint8Array(1);
  const e = Uint8Array.of(101);
  const maxPasses = 100 * (a + w) + 100000;
  const space = Math.floor(n / a);
  const checked = (rc: number, what: string) => {
    if (rc < 0) throw new ErrnoError(-rc, `bench dispatch (lean, ${backend}): ${what}`);
    return rc;
  };
  return {
    run() {
      const c0 = cpuNow();
      const t0 = now();
      let added = 0;
      try {
        for (; added < n; added++) checked(add(fds[2 * added]), 'add');
        const t1 = now();
        const c1 = cpuNow();
        let k = checked(wait(0), 'wait');
        for (let j = 0; j < k; j++) read(ev[2 * j], ch, 0, 1);
        let fired = 0;
        let count = 0;
        let writes = w;
        let wrote = 0;
        let passes = 0;
        for (let i = 0; i < a; i++, fired++) write(fds[2 * (i * space) + 1], e, 0, 1);
        const c2 = cpuNow();
        const t2 = now();
        do {
          k = checked(wait(0), 'wait');
          for (let j = 0; j < k; j++) {
            const fd = ev[2 * j];
            const idx = fd <= maxFd ? index[fd] : -1;
            if (idx < 0) continue;
            if (read(fd, ch, 0, 1) === 1) count++;
            if (writes > 0) {
              let next = idx + 1;
              if (next >= n) next -= n;
              write(fds[2 * next + 1], e, 0, 1);
              writes--;
              wrote++;
              fired++;
            }
          }
          if (++passes > maxPasses) throw new Error(`dispatch on ${backend} did not converge after ${maxPasses} passes`);
        } while (count !== fired);
        const t3 = now();
        const c3 = cpuNow();
        return {
          setupUs: Number(t1 - t0) / 1e3,
          dispatchUs: Number(t3 - t2) / 1e3,
          setupCpuUs: (c1 - c0) / 1e3,
          dispatchCpuUs: (c3 - c2) / 1e3,
          reads: count,
          writes: wrote,
          passes,
        };
      } finally {
        for (let i = 0; i < added; i++) remove(fds[2 * i]);
      }
    },
    close() {
      lean.close();
    },
  };
};

registerDispatchRunner('native', nativeRunner, 'c', 'the algorithm in C (in the addon) over the same Backend objects');
registerDispatchRunner('poller', pollerRunner, 'ts', 'the algorithm in TypeScript over a Poller, with sys.read/sys.write');
registerDispatchRunner('lean', leanRunner, 'ts', 'the same TypeScript over the leanest N-API binding (no checks): the floor');

export interface DispatchOptions {
  /** Pair counts (default 100, 1000, 9000). */
  sizes?: number[];
  /** Active pairs (default 100). */
  active?: number;
  /** Writes per run (default 1000). */
  writes?: number;
  /** Runs per figure (default 25). */
  runs?: number;
  /** Pipes instead of socketpairs (libevent's USE_PIPES). */
  pipes?: boolean;
  /** Backends (default: every available one). */
  backends?: BackendName[];
  /** Runner names (default: every registered one). */
  runners?: string[];
  progress?: boolean;
}

export interface DispatchRow {
  backend: BackendName;
  runner: string;
  lang: 'ts' | 'c';
  n: number;
  a: number;
  w: number;
  runs: number;
  /** Events per run: a + w bytes read. */
  events: number;
  setupUs: number;
  /** Median dispatch time of one run, µs. */
  runUs: number;
  /** runUs / events. */
  perEventUs: number;
  /** The same three in thread CPU time. */
  setupCpuUs: number;
  runCpuUs: number;
  perEventCpuUs: number;
  /** Median non-blocking passes per run. */
  passes: number;
  /** Every run: the raw times and counts. */
  samples: RunSample[];
}

export interface DispatchSkip {
  backend: BackendName;
  n: number;
  reason: string;
}

export interface DispatchRatio {
  backend: BackendName;
  n: number;
  runner: string;
  /** runner per-event cost / native per-event cost, same backend, same n, same run of the command (wall clock). */
  perEventVsNative: number;
  /** The same in thread CPU time. */
  perEventCpuVsNative: number;
  setupVsNative: number;
}

export interface DispatchReport {
  kind: 'dispatch';
  machine: MachineInfo;
  params: { sizes: number[]; a: number; w: number; runs: number; transport: 'socketpair' | 'pipe'; selectMaxN: number; fdSetSize: number };
  rows: DispatchRow[];
  skipped: DispatchSkip[];
  ratios: DispatchRatio[];
}

function makePairs(n: number, pipes: boolean): { fds: Int32Array; close(): void } {
  const fds = new Int32Array(2 * n);
  let made = 0;
  const close = () => {
    for (let i = 0; i < 2 * made; i++) sys.close(fds[i]);
  };
  try {
    for (; made < n; made++) {
      const [r, w] = pipes ? sys.pipe() : sys.socketpair();
      fds[2 * made] = r;
      fds[2 * made + 1] = w;
    }
  } catch (err) {
    close();
    const e = err as ErrnoError;
    if (e.code === 'EMFILE' || e.code === 'ENFILE') {
      throw new ErrnoError(e.errno, e.syscall, `n = ${n} needs ${2 * n} fds and only ${2 * made} could be opened: raise the limit (ulimit -n) or use a smaller --sizes`);
    }
    throw err;
  }
  return { fds, close };
}

/** The largest n whose 2n new fds all fit below FD_SETSIZE, given the fds open now. */
function selectMaxN(fdSetSize: number): number {
  let open: number[] | null = null;
  for (const dir of ['/proc/self/fd', '/dev/fd']) {
    try {
      open = fs.readdirSync(dir).map(Number).filter((fd) => Number.isInteger(fd));
      break;
    } catch {
      /* try the next */
    }
  }
  let free: number;
  if (open) {
    // Free numbers below FD_SETSIZE, less the fd readdir itself held and one spare.
    free = fdSetSize - open.filter((fd) => fd < fdSetSize).length - 1;
  } else {
    const [r, w] = sys.pipe();
    free = fdSetSize - Math.min(r, w);
    sys.close(r);
    sys.close(w);
  }
  return Math.max(0, Math.floor(free / 2));
}

export function benchDispatch(options: DispatchOptions = {}): DispatchReport {
  const a = options.active ?? 100;
  const w = options.writes ?? 1000;
  const runs = options.runs ?? 25;
  const pipes = options.pipes ?? false;
  const log = (s: string) => progress(options.progress ?? false, s);
  const fdSetSize: number = native.FD_SETSIZE;
  const status = backends();
  const wanted = options.backends ?? status.map((b) => b.name);
  const live = status.filter((b) => b.available && wanted.includes(b.name)).map((b) => b.name);
  const use = dispatchRunners().filter((r) => !options.runners || options.runners.includes(r.name));
  const skipped: DispatchSkip[] = [];
  for (const b of status) if (wanted.includes(b.name) && !b.available) skipped.push({ backend: b.name, n: 0, reason: b.reason ?? 'unavailable' });

  const requested = [...(options.sizes ?? [100, 1000, 9000])];
  const cap = selectMaxN(fdSetSize);
  // select stops at the cap: when a requested size is past it, the cap itself
  // is run on every backend too, so select has a same-n row to compare with.
  const sizes = [...requested];
  if (live.includes('select') && requested.some((n) => n > cap) && cap >= a && !sizes.includes(cap)) sizes.push(cap);
  sizes.sort((x, y) => x - y);

  const rows: DispatchRow[] = [];
  for (const n of sizes) {
    const pairs = makePairs(n, pipes);
    try {
      let maxFd = 0;
      for (let i = 0; i < pairs.fds.length; i++) maxFd = Math.max(maxFd, pairs.fds[i]);
      for (const backend of live) {
        if (backend === 'select' && maxFd >= fdSetSize) {
          skipped.push({ backend, n, reason: `n = ${n} needs ${2 * n} fds; select cannot watch fd >= FD_SETSIZE (${fdSetSize}), so it stops at n = ${cap}` });
          log(`dispatch: select n=${n}: skipped (FD_SETSIZE)`);
          continue;
        }
        const work: DispatchWorkload = { backend, fds: pairs.fds, n, a, w, capacity: n };
        const sessions: Array<{ runner: RunnerInfo; session: DispatchSession; samples: RunSample[] }> = [];
        try {
          for (const runner of use) sessions.push({ runner, session: runner.open(work), samples: [] });
          // One untimed run each first (the JIT compiles the TypeScript
          // loops), then the timed runs interleaved, the order rotating.
          for (const s of sessions) s.session.run();
          for (let run = 0; run < runs; run++) {
            for (let j = 0; j < sessions.length; j++) {
              const s = sessions[(run + j) % sessions.length];
              s.samples.push(s.session.run());
            }
          }
        } finally {
          for (const s of sessions) s.session.close();
        }
        for (const { runner, samples } of sessions) {
          const row = summarise(backend, runner, n, a, w, samples);
          rows.push(row);
          log(`dispatch: ${backend} n=${n} ${runner.name}: ${runs} runs, median ${row.runUs.toFixed(1)} µs/run, ${row.perEventUs.toFixed(3)} µs/event, setup ${row.setupUs.toFixed(1)} µs`);
        }
      }
    } finally {
      pairs.close();
    }
  }

  const ratios: DispatchRatio[] = [];
  for (const row of rows) {
    if (row.lang === 'c') continue;
    const ref = rows.find((r) => r.runner === 'native' && r.backend === row.backend && r.n === row.n);
    if (!ref) continue;
    ratios.push({
      backend: row.backend,
      n: row.n,
      runner: row.runner,
      perEventVsNative: sig(row.perEventUs / ref.perEventUs)!,
      perEventCpuVsNative: sig(row.perEventCpuUs / ref.perEventCpuUs)!,
      setupVsNative: sig(row.setupUs / ref.setupUs)!,
    });
  }
  return {
    kind: 'dispatch',
    machine: machineInfo(),
    params: { sizes, a, w, runs, transport: pipes ? 'pipe' : 'socketpair', selectMaxN: cap, fdSetSize },
    rows,
    skipped,
    ratios,
  };
}

function summarise(backend: BackendName, runner: RunnerInfo, n: number, a: number, w: number, samples: RunSample[]): DispatchRow {
  for (const s of samples) {
    if (s.reads !== a + w || s.writes !== w) {
      throw new Error(`dispatch ${runner.name} on ${backend}, n = ${n}: a run read ${s.reads} bytes and wrote ${s.writes}; expected ${a + w} and ${w}`);
    }
  }
  const runUs = median(samples.map((s) => s.dispatchUs));
  const runCpuUs = median(samples.map((s) => s.dispatchCpuUs));
  return {
    backend,
    runner: runner.name,
    lang: runner.lang,
    n,
    a,
    w,
    runs: samples.length,
    events: a + w,
    setupUs: round(median(samples.map((s) => s.setupUs)), 2)!,
    runUs: round(runUs, 2)!,
    perEventUs: round(runUs / (a + w), 4)!,
    setupCpuUs: round(median(samples.map((s) => s.setupCpuUs)), 2)!,
    runCpuUs: round(runCpuUs, 2)!,
    perEventCpuUs: round(runCpuUs / (a + w), 4)!,
    passes: median(samples.map((s) => s.passes)),
    samples: samples.map((s) => ({
      ...s,
      setupUs: round(s.setupUs, 2)!,
      dispatchUs: round(s.dispatchUs, 2)!,
      setupCpuUs: round(s.setupCpuUs, 2)!,
      dispatchCpuUs: round(s.dispatchCpuUs, 2)!,
    })),
  };
}
