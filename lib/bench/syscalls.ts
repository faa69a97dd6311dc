// `iomux bench syscalls`: what one call costs, timed by a C loop inside the
// addon (native/bench.cc) and by the same operation driven from JS through
// the addon, so the difference is the binding tax.
//
//   N-API call         a call into the addon that does nothing (JS only): the
//                      fixed price of crossing the binding
//   gettid             the bare syscall floor (a JS call of bench.gettid()
//                      is one N-API call around the same syscall)
//   wait, idle fds     select / poll / epoll_wait / kevent with N idle fds and
//                      a zero timeout: C calls the syscall itself ("C raw"),
//                      then Backend::Wait(0) of the object a Poller wraps
//                      ("C backend"); JS calls Poller.wait(0), and also the
//                      leanest wait N-API allows ("JS lean": bench.leanWait,
//                      the events array bound once, no unwrap), which shows
//                      how much of the tax is N-API and how much the wrapper
//   io_uring NOP       one NOP submitted and waited for
//   pipe ping-pong     one byte bounced between two threads over two blocking
//                      pipes, reported per one-way trip (round trip / 2): C
//                      threads, or the JS main thread and a worker_thread
//                      using sys.read / sys.write
import * as fs from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { native } from '../native';
import { ErrnoError } from '../errors';
import { Poller, backends, Interest, type BackendName } from '../poller';
import * as sys from '../sys';
import { linearFit, machineInfo, measure, median, progress, round, sig, type MachineInfo } from './measure';

export interface SyscallOptions {
  /** Idle fd counts for the wait rows (default 1, 10, 100, 1000). */
  fdCounts?: number[];
  /** Target duration of one timed batch, ms (default 50). */
  targetMs?: number;
  /** Timed batches per figure; the median is reported (default 5). */
  reps?: number;
  /** Backends for the wait rows (default: every backend; unavailable ones are listed with the reason). */
  backends?: BackendName[];
  /** Progress lines on stderr. */
  progress?: boolean;
}

export type SyscallOp = 'napi-call' | 'gettid' | 'wait-idle' | 'uring-nop' | 'pingpong';

export interface SyscallRow {
  op: SyscallOp;
  label: string;
  backend?: BackendName;
  /** Idle fds watched (wait rows): the number actually used. */
  fds?: number;
  /** The number asked for, when select had to stop below FD_SETSIZE. */
  requestedFds?: number;
  /** ns per call from the C loop calling the syscall itself (null where there is none). */
  cNs: number | null;
  /** ns per call from the C loop calling Backend::Wait (wait rows only). */
  cBackendNs: number | null;
  /** ns per call from JS through the addon. */
  jsNs: number | null;
  /** ns per call from JS through the leanest N-API wait (wait rows only). */
  jsLeanNs: number | null;
  /** jsNs / cNs: the binding tax against the raw syscall. */
  tax: number | null;
  /** jsNs / cBackendNs: what N-API and the TypeScript wrapper add to the same native call. */
  napiTax: number | null;
  /** jsLeanNs / cBackendNs: what N-API alone adds to the same native call. */
  leanTax: number | null;
  /** The same figures in CPU time of the measuring thread (null for the ping-pong, whose cost is waiting). */
  cCpuNs: number | null;
  cBackendCpuNs: number | null;
  jsCpuNs: number | null;
  jsLeanCpuNs: number | null;
  taxCpu: number | null;
  napiTaxCpu: number | null;
  leanTaxCpu: number | null;
  /** Set when the row could not be measured here, with the reason. */
  skipped?: string;
  note?: string;
}

export interface SlopeRow {
  backend: BackendName;
  /** ns added per idle fd, least squares over the fd counts measured (wall clock). */
  cNsPerFd: number | null;
  cBackendNsPerFd: number | null;
  jsNsPerFd: number | null;
  /** The same from the CPU-time figures. */
  cCpuNsPerFd: number | null;
  cBackendCpuNsPerFd: number | null;
  jsCpuNsPerFd: number | null;
}

export interface SyscallReport {
  kind: 'syscalls';
  machine: MachineInfo;
  params: { fdCounts: number[]; targetMs: number; reps: number; fdSetSize: number };
  rows: SyscallRow[];
  slopes: SlopeRow[];
  /** The figures the issue's targets are stated in, taken from the rows above. */
  summary: {
    napiCallNs: number | null;
    syscallFloorNs: number | null;
    gettidTax: number | null;
    gettidTaxCpu: number | null;
    epollWaitIdleTax: number | null;
    epollWaitIdleTaxCpu: number | null;
    /** The epoll row's jsLeanNs / cBackendNs: what N-API alone would cost. */
    epollWaitIdleLeanTax: number | null;
    epollWaitIdleLeanTaxCpu: number | null;
    contextSwitchNs: number | null;
    contextSwitchJsNs: number | null;
  };
}

const B = native.bench as {
  loop(op: string, fds: Int32Array, targetNs: number, backend?: string): Float64Array | number;
  gettid(): number;
  noop(): number;
  UringNop: new () => { nop(): number; close(): void };
  leanWait(backend: string, fds: Int32Array, events: Int32Array): LeanWaiter | number;
};

interface LeanWaiter {
  wait(timeout: number): number;
  close(): void;
}

/** A figure and its CPU-time twin, ns per op. */
interface Sample {
  ns: number;
  cpu: number;
}

function cLoop(op: string, fds: number[], targetNs: number, backend?: string): Sample {
  const r = B.loop(op, Int32Array.from(fds), targetNs, backend);
  if (typeof r === 'number') throw new ErrnoError(-r, `bench ${op}${backend ? ` (${backend})` : ''}`);
  return { ns: r[0], cpu: r[3] };
}

function jsLoop(op: (iters: number) => void, targetNs: number, divide = 1): Sample {
  const m = measure(op, targetNs);
  return { ns: m.nsPerOp / divide, cpu: m.cpuNsPerOp / divide };
}

const RAW_LABEL: Record<BackendName, string> = {
  select: 'select',
  poll: 'poll',
  epoll: 'epoll_wait',
  kqueue: 'kevent',
  io_uring: 'io_uring poll',
};

/** N idle fds: dups of one pipe's read end whose write end stays open, so none is ever ready. */
function idleFds(count: number): { fds: number[]; close(): void } {
  const [r, w] = sys.pipe();
  const fds = [r];
  try {
    while (fds.length < count) fds.push(sys.dup(r));
  } catch (err) {
    for (const fd of fds) sys.close(fd);
    sys.close(w);
    throw err;
  }
  return {
    fds,
    close() {
      for (const fd of fds) sys.close(fd);
      sys.close(w);
    },
  };
}

function ratio(a: number | null, b: number | null): number | null {
  return a !== null && b !== null && b > 0 ? a / b : null;
}

type Figures =
  | 'cNs' | 'cBackendNs' | 'jsNs' | 'jsLeanNs' | 'tax' | 'napiTax' | 'leanTax'
  | 'cCpuNs' | 'cBackendCpuNs' | 'jsCpuNs' | 'jsLeanCpuNs' | 'taxCpu' | 'napiTaxCpu' | 'leanTaxCpu';

interface Samples {
  c?: Sample[];
  cb?: Sample[];
  js?: Sample[];
  lean?: Sample[];
}

function finish(row: Omit<SyscallRow, Figures>, m: Samples, cpu = true): SyscallRow {
  const med = (xs: Sample[] | undefined, k: keyof Sample) => (xs && xs.length && (k === 'ns' || cpu) ? median(xs.map((x) => x[k])) : null);
  const cNs = med(m.c, 'ns');
  const cBackendNs = med(m.cb, 'ns');
  const jsNs = med(m.js, 'ns');
  const jsLeanNs = med(m.lean, 'ns');
  const cCpuNs = med(m.c, 'cpu');
  const cBackendCpuNs = med(m.cb, 'cpu');
  const jsCpuNs = med(m.js, 'cpu');
  const jsLeanCpuNs = med(m.lean, 'cpu');
  return {
    ...row,
    cNs: round(cNs),
    cBackendNs: round(cBackendNs),
    jsNs: round(jsNs),
    jsLeanNs: round(jsLeanNs),
    tax: sig(ratio(jsNs, cNs)),
    napiTax: sig(ratio(jsNs, cBackendNs)),
    leanTax: sig(ratio(jsLeanNs, cBackendNs)),
    cCpuNs: round(cCpuNs),
    cBackendCpuNs: round(cBackendCpuNs),
    jsCpuNs: round(jsCpuNs),
    jsLeanCpuNs: round(jsLeanCpuNs),
    taxCpu: sig(ratio(jsCpuNs, cCpuNs)),
    napiTaxCpu: sig(ratio(jsCpuNs, cBackendCpuNs)),
    leanTaxCpu: sig(ratio(jsLeanCpuNs, cBackendCpuNs)),
  };
}

function skippedRow(row: Omit<SyscallRow, Figures>): SyscallRow {
  return finish(row, {});
}

/** Where the compiled sys module lives, for the ping-pong worker (it cannot load TypeScript). */
function sysModulePath(): string {
  const candidates = [path.join(__dirname, '..', 'sys.js'), path.join(__dirname, '..', '..', 'dist', 'sys.js')];
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`cannot find the compiled sys module (tried ${candidates.join(', ')}); run npm run build:ts`);
  return found;
}

// The worker echoes every byte until it has echoed a 0 byte. On an error it
// closes its write end, so the main thread's blocking read sees EOF instead
// of hanging.
const ECHO_WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const sys = require(workerData.sysPath);
const buf = new Uint8Array(1);
parentPort.postMessage('ready');
try {
  for (;;) {
    if (sys.read(workerData.rd, buf) !== 1) break;
    sys.write(workerData.wr, buf);
    if (buf[0] === 0) break;
  }
} catch (err) {
  try { sys.close(workerData.wr); } catch {}
  throw err;
}
`;

async function pingPongRow(targetNs: number, reps: number, log: (s: string) => void): Promise<SyscallRow> {
  const label = 'pipe ping-pong, per one-way trip';
  const [a0, a1] = sys.pipe({ nonblocking: false });
  const [b0, b1] = sys.pipe({ nonblocking: false });
  const worker = new Worker(ECHO_WORKER, { eval: true, workerData: { sysPath: sysModulePath(), rd: a0, wr: b1 } });
  const exited = once(worker, 'exit');
  const c: Sample[] = [];
  const js: Sample[] = [];
  try {
    await once(worker, 'message');
    const x = Uint8Array.of(120);
    const buf = new Uint8Array(1);
    for (let rep = 0; rep < reps; rep++) {
      c.push(cLoop('pingpong', [], targetNs));
      js.push(
        jsLoop(
          (iters) => {
            for (let i = 0; i < iters; i++) {
              sys.write(a1, x);
              if (sys.read(b0, buf) !== 1) throw new Error('ping-pong worker stopped echoing');
            }
          },
          targetNs,
          2,
        ),
      );
    }
    log(`syscalls: ${label}: C ${c.length ? median(c.map((v) => v.ns)).toFixed(0) : '-'} ns, JS ${js.length ? median(js.map((v) => v.ns)).toFixed(0) : '-'} ns`);
  } finally {
    try {
      sys.write(a1, Uint8Array.of(0));
      sys.read(b0, new Uint8Array(1));
    } catch {
      /* the worker is gone already */
    }
    await exited;
    for (const fd of [a0, a1, b0, b1]) {
      try {
        sys.close(fd);
      } catch {
        /* closed by the worker after an error */
      }
    }
  }
  return finish({ op: 'pingpong', label, note: 'C: two native threads; JS: main thread and a worker_thread with sys.read/sys.write' }, { c, js }, false);
}

export async function benchSyscalls(options: SyscallOptions = {}): Promise<SyscallReport> {
  const fdCounts = options.fdCounts ?? [1, 10, 100, 1000];
  const targetMs = options.targetMs ?? 50;
  const reps = options.reps ?? 5;
  const targetNs = Math.max(1, Math.round(targetMs * 1e6));
  const log = (s: string) => progress(options.progress ?? false, s);
  const status = backends();
  const wanted = options.backends ?? status.map((b) => b.name);
  const fdSetSize: number = native.FD_SETSIZE;
  const rows: SyscallRow[] = [];

  const nsOf = (xs: Sample[]) => median(xs.map((x) => x.ns)).toFixed(0);

  // The price of the crossing alone.
  {
    const js: Sample[] = [];
    for (let rep = 0; rep < reps; rep++) {
      js.push(
        jsLoop((iters) => {
          for (let i = 0; i < iters; i++) B.noop();
        }, targetNs),
      );
    }
    rows.push(finish({ op: 'napi-call', label: 'N-API call, no syscall' }, { js }));
    log(`syscalls: N-API call: JS ${nsOf(js)} ns`);
  }

  // gettid: the floor.
  {
    const c: Sample[] = [];
    const js: Sample[] = [];
    for (let rep = 0; rep < reps; rep++) {
      c.push(cLoop('gettid', [], targetNs));
      js.push(
        jsLoop((iters) => {
          for (let i = 0; i < iters; i++) B.gettid();
        }, targetNs),
      );
    }
    rows.push(finish({ op: 'gettid', label: 'gettid (bare syscall)' }, { c, js }));
    log(`syscalls: gettid: C ${nsOf(c)} ns, JS ${nsOf(js)} ns`);
  }

  // wait(0) over idle fds, every backend.
  for (const b of status) {
    if (!wanted.includes(b.name) || b.available) continue;
    rows.push(skippedRow({ op: 'wait-idle', label: `${RAW_LABEL[b.name]}, nothing ready`, backend: b.name, skipped: b.reason ?? 'unavailable' }));
  }
  const live = status.filter((b) => b.available && wanted.includes(b.name)).map((b) => b.name);
  for (const count of fdCounts) {
    const idle = idleFds(count);
    try {
      for (const backend of live) {
        const fds = backend === 'select' ? idle.fds.filter((fd) => fd < fdSetSize) : idle.fds;
        const c: Sample[] = [];
        const cb: Sample[] = [];
        const js: Sample[] = [];
        const lean: Sample[] = [];
        const poller = new Poller(backend);
        let leanWait: LeanWaiter | null = null;
        try {
          for (const fd of fds) poller.add(fd, Interest.READABLE);
          const l = B.leanWait(backend, Int32Array.from(fds), new Int32Array(poller.events.length));
          if (typeof l === 'number') throw new ErrnoError(-l, `bench leanWait (${backend})`);
          leanWait = l;
          const { wait } = l;
          for (let rep = 0; rep < reps; rep++) {
            if (backend !== 'io_uring') c.push(cLoop(backend, fds, targetNs));
            cb.push(cLoop('backend', fds, targetNs, backend));
            js.push(
              jsLoop((iters) => {
                for (let i = 0; i < iters; i++) poller.wait(0);
              }, targetNs),
            );
            lean.push(
              jsLoop((iters) => {
                for (let i = 0; i < iters; i++) wait(0);
              }, targetNs),
            );
          }
        } finally {
          poller.close();
          leanWait?.close();
        }
        const row = finish({ op: 'wait-idle', label: `${RAW_LABEL[backend]}, nothing ready`, backend, fds: fds.length }, { c, cb, js, lean });
        if (fds.length < count) {
          row.requestedFds = count;
          row.note = `capped: select cannot watch fd >= FD_SETSIZE (${fdSetSize})`;
        }
        if (backend === 'io_uring') {
          row.note = 'no raw C figure: with nothing pending, wait(0) reads the completion ring in shared memory and makes no syscall';
        }
        rows.push(row);
        log(`syscalls: ${backend} ${fds.length} idle fds: C ${row.cNs ?? '-'} ns, C backend ${row.cBackendNs} ns, JS ${row.jsNs} ns, JS lean ${row.jsLeanNs} ns`);
      }
    } finally {
      idle.close();
    }
  }

  // io_uring NOP.
  const uring = status.find((b) => b.name === 'io_uring');
  if (uring?.available) {
    const ring = new B.UringNop();
    const c: Sample[] = [];
    const js: Sample[] = [];
    try {
      for (let rep = 0; rep < reps; rep++) {
        c.push(cLoop('uring-nop', [], targetNs));
        js.push(
          jsLoop((iters) => {
            for (let i = 0; i < iters; i++) if (ring.nop() !== 0) throw new Error('io_uring NOP failed');
          }, targetNs),
        );
      }
    } finally {
      ring.close();
    }
    rows.push(finish({ op: 'uring-nop', label: 'io_uring NOP submit+wait' }, { c, js }));
    log(`syscalls: io_uring NOP: C ${nsOf(c)} ns, JS ${nsOf(js)} ns`);
  } else {
    rows.push(skippedRow({ op: 'uring-nop', label: 'io_uring NOP submit+wait', skipped: uring?.reason ?? 'unavailable' }));
  }

  rows.push(await pingPongRow(targetNs, reps, log));

  const slopes: SlopeRow[] = [];
  for (const backend of live) {
    const rs = rows.filter((r) => r.op === 'wait-idle' && r.backend === backend && r.fds !== undefined);
    const xs = rs.map((r) => r.fds!);
    const fit = (pick: (r: SyscallRow) => number | null) => {
      const ys = rs.map(pick);
      if (ys.some((y) => y === null)) return null;
      return round(linearFit(xs, ys as number[]).slope, 3);
    };
    slopes.push({
      backend,
      cNsPerFd: fit((r) => r.cNs),
      cBackendNsPerFd: fit((r) => r.cBackendNs),
      jsNsPerFd: fit((r) => r.jsNs),
      cCpuNsPerFd: fit((r) => r.cCpuNs),
      cBackendCpuNsPerFd: fit((r) => r.cBackendCpuNs),
      jsCpuNsPerFd: fit((r) => r.jsCpuNs),
    });
  }

  const gettid = rows.find((r) => r.op === 'gettid');
  const napi = rows.find((r) => r.op === 'napi-call');
  const epoll = rows.filter((r) => r.op === 'wait-idle' && r.backend === 'epoll' && !r.skipped).sort((a, b) => a.fds! - b.fds!)[0];
  const pp = rows.find((r) => r.op === 'pingpong');
  return {
    kind: 'syscalls',
    machine: machineInfo(),
    params: { fdCounts, targetMs, reps, fdSetSize },
    rows,
    slopes,
    summary: {
      napiCallNs: napi?.jsNs ?? null,
      syscallFloorNs: gettid?.cNs ?? null,
      gettidTax: gettid?.tax ?? null,
      gettidTaxCpu: gettid?.taxCpu ?? null,
      epollWaitIdleTax: epoll?.tax ?? null,
      epollWaitIdleTaxCpu: epoll?.taxCpu ?? null,
      epollWaitIdleLeanTax: epoll?.leanTax ?? null,
      epollWaitIdleLeanTaxCpu: epoll?.leanTaxCpu ?? null,
      contextSwitchNs: pp?.cNs ?? null,
      contextSwitchJsNs: pp?.jsNs ?? null,
    },
  };
}
