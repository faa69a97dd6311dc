// The CPU-work pool of reactor-pool: worker_threads that burn /work?us=N while
// the reactor keeps serving. Nothing goes through postMessage (the reactor's
// thread is blocked in its multiplexer, and a message per request would
// allocate): jobs go into a queue in shared memory that every worker takes
// from (compare-and-swap on its head), each worker writes finished tokens into
// its own single-producer ring, and wakes the reactor through an eventfd the
// reactor watches, at most once until the reactor has drained.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { native } from '../native';
import * as sys from '../sys';
import type { WorkPool as WorkPoolContract } from './reactor-core';

/** Jobs submitted and not yet drained, at most (more wait in a JS array). */
export const POOL_CAPACITY = 1 << 14;
const MASK = POOL_CAPACITY - 1;
// Job queue (Int32Array): [head, tail, stop] then (token, us) pairs.
export const Q_HEAD = 0;
export const Q_TAIL = 1;
export const Q_STOP = 2;
export const Q_BASE = 4;
// Result ring per worker: [head, tail] then tokens.
export const R_HEAD = 0;
export const R_TAIL = 1;
export const R_BASE = 2;
// Control: [wake pending]
export const CTL_WAKE = 0;

export interface PoolWorkerData {
  id: number;
  jobs: SharedArrayBuffer;
  results: SharedArrayBuffer;
  ctl: SharedArrayBuffer;
  wakeFd: number;
}

/** A compiled worker script: next to this file, else (running from the TypeScript sources) in dist/arch/. */
export function workerScript(name: string): string {
  const here = path.join(__dirname, `${name}.js`);
  if (fs.existsSync(here)) return here;
  const dist = path.join(__dirname, '..', '..', 'dist', 'arch', `${name}.js`);
  if (fs.existsSync(dist)) return dist;
  throw new Error(`${name}.js is neither next to ${__filename} nor in dist/arch/ (run npm run build:ts)`);
}

export class CpuPool implements WorkPoolContract {
  /** Readable when finished work waits: watch it, then call drain(). */
  readonly fd: number;
  readonly size: number;
  /** Jobs each worker has finished. */
  readonly done: Float64Array;
  private readonly jobs: Int32Array;
  private readonly results: Int32Array[] = [];
  private readonly ctl: Int32Array;
  private readonly workers: Worker[] = [];
  private readonly exited: Array<Promise<void>> = [];
  private outstanding = 0;
  private overflow: number[] = [];
  private readonly drainBuf = new Uint8Array(8);
  private closing: Promise<void> | null = null;
  private error: Error | null = null;

  private constructor(size: number) {
    this.size = size;
    this.fd = sys.eventfd(0);
    this.jobs = new Int32Array(new SharedArrayBuffer(4 * (Q_BASE + 2 * POOL_CAPACITY)));
    this.ctl = new Int32Array(new SharedArrayBuffer(4 * 4));
    this.done = new Float64Array(size);
  }

  /** Starts `size` workers; resolves once every one runs. */
  static async start(size: number): Promise<CpuPool> {
    const pool = new CpuPool(size);
    const script = workerScript('work-pool-worker');
    const online: Array<Promise<void>> = [];
    for (let id = 0; id < size; id++) {
      const results = new SharedArrayBuffer(4 * (R_BASE + POOL_CAPACITY));
      pool.results.push(new Int32Array(results));
      const data: PoolWorkerData = { id, jobs: pool.jobs.buffer as SharedArrayBuffer, results, ctl: pool.ctl.buffer as SharedArrayBuffer, wakeFd: pool.fd };
      const w = new Worker(script, { workerData: data });
      pool.workers.push(w);
      online.push(
        new Promise<void>((resolve, reject) => {
          w.once('online', resolve);
          w.once('error', reject);
        }),
      );
      pool.exited.push(
        new Promise<void>((resolve) => {
          w.on('error', (err) => {
            pool.error ??= err;
          });
          w.once('exit', () => resolve());
        }),
      );
    }
    try {
      await Promise.all(online);
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /** A worker that failed, if any. */
  get failure(): Error | null {
    return this.error;
  }

  submit(us: number, token: number): void {
    if (this.outstanding >= POOL_CAPACITY) {
      this.overflow.push(us, token);
      return;
    }
    this.push(us, token);
  }

  private push(us: number, token: number): void {
    const q = this.jobs;
    const t = q[Q_TAIL];
    const slot = Q_BASE + 2 * (t & MASK);
    q[slot] = token;
    q[slot + 1] = us;
    Atomics.store(q, Q_TAIL, (t + 1) | 0);
    Atomics.notify(q, Q_TAIL, 1);
    this.outstanding++;
  }

  /** On the reactor's thread, when fd is readable: hands every finished token to done(). */
  drain(done: (token: number) => void): void {
    native.sys.read(this.fd, this.drainBuf, 0, 8);
    Atomics.store(this.ctl, CTL_WAKE, 0);
    for (let w = 0; w < this.results.length; w++) {
      const r = this.results[w];
      let h = r[R_HEAD];
      const t = Atomics.load(r, R_TAIL);
      if (h === t) continue;
      while (h !== t) {
        const token = r[R_BASE + (h & MASK)];
        h = (h + 1) | 0;
        this.outstanding--;
        this.done[w]++;
        done(token);
      }
      Atomics.store(r, R_HEAD, h);
    }
    if (this.overflow.length > 0) {
      let i = 0;
      while (i < this.overflow.length && this.outstanding < POOL_CAPACITY) {
        this.push(this.overflow[i], this.overflow[i + 1]);
        i += 2;
      }
      this.overflow = this.overflow.slice(i);
    }
  }

  /** Stops the workers (work in progress is abandoned after graceMs) and closes fd. */
  close(graceMs = 2000): Promise<void> {
    if (this.closing === null) {
      this.closing = (async () => {
        Atomics.store(this.jobs, Q_STOP, 1);
        Atomics.notify(this.jobs, Q_TAIL);
        const timer = setTimeout(() => {
          for (const w of this.workers) void w.terminate();
        }, graceMs);
        await Promise.all(this.exited);
        clearTimeout(timer);
        // Only now: no worker can write to the eventfd any more.
        sys.close(this.fd);
      })();
    }
    return this.closing;
  }
}
