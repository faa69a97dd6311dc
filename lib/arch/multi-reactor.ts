// `multi-reactor`: N reactors, one per worker_thread (--workers N, default:
// cores), each an EventLoop owning its thread with the JS handlers of
// reactor-core.ts. Two ways to share the port:
//  - multi-reactor: every worker has its own listening socket with
//    SO_REUSEPORT; the kernel spreads new connections over them by a hash of
//    the addresses and ports.
//  - multi-reactor-exclusive: one listening socket, made here (fds belong to
//    the process, so its number is all a worker needs), registered in every
//    worker's epoll with EPOLLEXCLUSIVE: one waiting worker is woken per
//    connection instead of all of them.
// The main thread stays in Node's loop: it starts the workers, sums their
// counters (shared memory) and stops them through an eventfd each.
import * as net from 'node:net';
import { Worker } from 'node:worker_threads';
import { EventLoop } from '../loop';
import { backends } from '../poller';
import * as sys from '../sys';
import { COUNTERS, COUNT_ACCEPTED, COUNT_ACTIVE, COUNT_REQUESTS } from './reactor-core';
import { BACKLOG } from './reactor';
import { resolveBackend, resolveEdge, workerCount } from './loop-options';
import { workerScript } from './work-pool';
import type { ReactorWorkerData } from './reactor-worker';
import type { Arch, Availability, RunningServer, ServeOptions, ServerStats } from './types';

class MultiReactor implements RunningServer {
  readonly host: string;
  port = 0;
  private readonly size: number;
  private readonly exclusive: boolean;
  private readonly counters: Float64Array;
  private readonly ctl: Int32Array;
  private readonly workers: Worker[] = [];
  private readonly exited: Array<Promise<void>> = [];
  private readonly wakeFds: number[] = [];
  private listenFd = -1;
  private closing: Promise<void> | null = null;
  private readonly graceMs: number;

  constructor(o: ServeOptions, size: number, exclusive: boolean) {
    this.host = o.host;
    this.size = size;
    this.exclusive = exclusive;
    this.graceMs = o.graceMs ?? 2000;
    this.counters = new Float64Array(new SharedArrayBuffer(8 * COUNTERS * size));
    this.ctl = new Int32Array(new SharedArrayBuffer(16));
  }

  async start(o: ServeOptions): Promise<void> {
    const backend = this.exclusive ? 'epoll' : resolveBackend(o.backend);
    const edge = resolveEdge(o.mode, backend);
    let reserveFd = -1;
    try {
      if (this.exclusive) {
        this.listenFd = sys.listenTcp(o.host, o.port, { backlog: BACKLOG });
        this.port = sys.getsockname(this.listenFd).port ?? o.port;
      } else {
        // Bound but not listening: it holds the port (and picks it, for port 0)
        // until the workers' SO_REUSEPORT listeners exist, and takes no connection.
        reserveFd = sys.socket(net.isIPv6(o.host) ? 'ipv6' : 'ipv4');
        sys.setsockopt(reserveFd, 'SO_REUSEADDR', true);
        sys.setsockopt(reserveFd, 'SO_REUSEPORT', true);
        sys.bind(reserveFd, o.host, o.port);
        this.port = sys.getsockname(reserveFd).port ?? o.port;
      }
      const script = workerScript('reactor-worker');
      const ready: Array<Promise<void>> = [];
      for (let id = 0; id < this.size; id++) {
        const wakeFd = sys.eventfd(0);
        this.wakeFds.push(wakeFd);
        const data: ReactorWorkerData = {
          id,
          protocol: o.protocol,
          host: o.host,
          port: this.port,
          backend,
          edge,
          listenFd: this.listenFd,
          backlog: BACKLOG,
          graceMs: this.graceMs,
          counters: this.counters.buffer as SharedArrayBuffer,
          ctl: this.ctl.buffer as SharedArrayBuffer,
          wakeFd,
        };
        const w = new Worker(script, { workerData: data });
        this.workers.push(w);
        let isReady = false;
        ready.push(
          new Promise<void>((resolve, reject) => {
            w.on('message', (m: { type: string; message?: string; code?: string }) => {
              if (m.type === 'ready') {
                isReady = true;
                resolve();
              } else if (m.type === 'error') {
                const err = Object.assign(new Error(`multi-reactor worker ${id}: ${m.message}`), { code: m.code });
                if (isReady) process.stderr.write(`iomux: ${err.message}\n`);
                reject(err);
              }
            });
            w.once('error', (err) => {
              if (isReady) process.stderr.write(`iomux: multi-reactor worker ${id}: ${err.stack ?? err.message}\n`);
              reject(err);
            });
            w.once('exit', (code) => reject(new Error(`multi-reactor worker ${id} exited (${code}) before it was listening`)));
          }),
        );
        this.exited.push(new Promise<void>((resolve) => w.once('exit', () => resolve())));
      }
      await Promise.all(ready);
    } catch (err) {
      await this.stop(2);
      throw err;
    } finally {
      if (reserveFd >= 0) sys.close(reserveFd);
    }
  }

  close(): Promise<void> {
    if (this.closing === null) this.closing = this.stop(1);
    return this.closing;
  }

  stats(): ServerStats {
    const c = this.counters;
    const s: ServerStats = { accepted: 0, active: 0, requests: 0, workers: this.size };
    for (let i = 0; i < this.size; i++) {
      const b = i * COUNTERS;
      s.accepted! += c[b + COUNT_ACCEPTED];
      s.active! += c[b + COUNT_ACTIVE];
      s.requests! += c[b + COUNT_REQUESTS];
      s[`accepted_w${i}`] = c[b + COUNT_ACCEPTED];
    }
    return s;
  }

  /** How many connections each worker accepted. */
  acceptedPerWorker(): number[] {
    return Array.from({ length: this.size }, (_, i) => this.counters[i * COUNTERS + COUNT_ACCEPTED]);
  }

  private async stop(level: 1 | 2): Promise<void> {
    const tell = (l: number): void => {
      Atomics.store(this.ctl, 0, l);
      for (const fd of this.wakeFds) EventLoop.wake(fd);
    };
    tell(level);
    // Each worker cuts its connections after graceMs itself; these are the backstops.
    const cut = setTimeout(() => tell(2), this.graceMs + 500);
    const kill = setTimeout(() => {
      for (const w of this.workers) void w.terminate();
    }, this.graceMs + 5000);
    await Promise.all(this.exited);
    clearTimeout(cut);
    clearTimeout(kill);
    // Only now: no worker watches these any more.
    for (const fd of this.wakeFds) sys.close(fd);
    this.wakeFds.length = 0;
    if (this.listenFd >= 0) sys.close(this.listenFd);
    this.listenFd = -1;
  }
}

function exclusiveAvailability(): Availability {
  const epoll = backends().find((b) => b.name === 'epoll');
  if (!epoll || !epoll.available) return { available: false, reason: `EPOLLEXCLUSIVE needs epoll: ${epoll?.reason ?? 'not built'}` };
  if (epoll.modes.exclusive !== 'native') return { available: false, reason: 'this epoll has no EPOLLEXCLUSIVE (Linux 4.5+)' };
  return { available: true };
}

export const multiReactorArch: Arch = {
  name: 'multi-reactor',
  summary: 'one reactor per worker_thread (--workers N, default: cores), each with its own SO_REUSEPORT listener',
  options: ['backend', 'mode', 'workers'],
  availability: () => ({ available: true }),
  async start(o) {
    const s = new MultiReactor(o, workerCount(o.workers), false);
    await s.start(o);
    return s;
  },
};

export const multiReactorExclusiveArch: Arch = {
  name: 'multi-reactor-exclusive',
  summary: 'one reactor per worker_thread (--workers N), one shared listening socket in every epoll with EPOLLEXCLUSIVE',
  options: ['mode', 'workers'],
  availability: exclusiveAvailability,
  async start(o) {
    const s = new MultiReactor(o, workerCount(o.workers), true);
    await s.start(o);
    return s;
  },
};
