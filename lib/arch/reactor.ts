// `reactor`: one EventLoop on one backend (--backend select|poll|epoll|kqueue|
// io_uring, --mode level|edge) owning the thread, the protocol handlers in JS
// (reactor-core.ts). CPU work (/work?us=N) runs inline: it stalls every other
// connection for N µs, which is what the arch is there to show.
import { EventLoop, type Watcher } from '../loop';
import { Interest } from '../poller';
import * as sys from '../sys';
import { COUNTERS, COUNT_ACCEPTED, COUNT_ACTIVE, COUNT_REQUESTS, ReactorCore } from './reactor-core';
import { resolveBackend, resolveEdge } from './loop-options';
import { SignalPipe } from './signal-pipe';
import type { Arch, RunningServer, ServeOptions, ServerStats } from './types';

export const BACKLOG = 4096;

/**
 * Resolves after Node's loop has polled for I/O at least once: two
 * immediates, since the first may run in the check phase right after the
 * poll phase we are called from, with no poll in between.
 */
export async function nodeLoopTurn(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setImmediate(resolve));
}

/**
 * A server whose EventLoop owns the thread: run() blocks in the loop until the
 * server has stopped. SIGINT/SIGTERM arrive through a SignalPipe watched by
 * the loop (Node's own handlers cannot run meanwhile): the first starts a
 * graceful shutdown, a second one cuts the connections still open.
 */
export class OwnedReactor implements RunningServer {
  readonly host: string;
  readonly port: number;
  readonly loop: EventLoop;
  readonly core: ReactorCore;
  /** Signals received while running. */
  signals: NodeJS.Signals[] = [];
  private running: Promise<void> | null = null;
  private readonly cleanup: () => Promise<void>;
  private readonly extraStats: () => ServerStats;

  constructor(host: string, port: number, loop: EventLoop, core: ReactorCore, cleanup: () => Promise<void> = async () => {}, extraStats: () => ServerStats = () => ({})) {
    this.host = host;
    this.port = port;
    this.loop = loop;
    this.core = core;
    this.cleanup = cleanup;
    this.extraStats = extraStats;
    core.onstopped = () => loop.stop();
  }

  run(): Promise<void> {
    if (this.running === null) this.running = this.runLoop();
    return this.running;
  }

  /** Graceful stop; without run() it drives the loop itself until done. */
  close(): Promise<void> {
    void this.core.shutdown();
    return this.run();
  }

  stats(): ServerStats {
    const c = this.core.counters;
    const l = this.loop.stats;
    return {
      accepted: c[COUNT_ACCEPTED],
      active: c[COUNT_ACTIVE],
      requests: c[COUNT_REQUESTS],
      loopIterations: l.iterations,
      loopEvents: l.eventsDelivered,
      ...this.extraStats(),
    };
  }

  private async runLoop(): Promise<void> {
    let sig: SignalPipe | null = null;
    let watcher: Watcher | null = null;
    try {
      if (!this.core.isFinished) {
        // Opened here, not in start(): `iomux serve` sets its process.on()
        // handlers in between, and libuv would replace ours.
        const pipe = (sig = new SignalPipe(['SIGINT', 'SIGTERM']));
        watcher = this.loop.watch(pipe.fd, Interest.READABLE, () => {
          const got = pipe.take();
          if (got.length === 0) return;
          const first = this.signals.length === 0;
          this.signals.push(...got);
          if (first) void this.core.shutdown();
          if (!first || got.length > 1) this.core.destroyAll();
        });
        // A signal that came before the pipe existed went to Node's own pipe
        // only: a full turn of Node's loop lets serve's listener see it (and
        // call close()) before the thread blocks.
        await nodeLoopTurn();
        if (!this.core.isFinished) await this.loop.run();
      }
    } finally {
      if (watcher !== null) watcher.close();
      if (sig !== null) sig.close();
      try {
        await this.cleanup();
      } finally {
        this.loop.close();
      }
    }
    // One turn of Node's loop: its own signal listeners (serve's) hear about
    // the signal now, before whoever awaits run() carries on.
    await nodeLoopTurn();
  }
}

/** Checks --backend and --mode, then creates the loop, the core (makeCore) and the listening socket. */
export function openReactor(o: ServeOptions, makeCore: (loop: EventLoop, edge: boolean) => ReactorCore): { loop: EventLoop; core: ReactorCore; port: number } {
  const backend = resolveBackend(o.backend);
  const edge = resolveEdge(o.mode, backend);
  const loop = new EventLoop(backend);
  let fd = -1;
  try {
    fd = sys.listenTcp(o.host, o.port, { backlog: BACKLOG });
    const core = makeCore(loop, edge);
    core.listen(fd, { owned: true });
    return { loop, core, port: sys.getsockname(fd).port ?? o.port };
  } catch (err) {
    if (fd >= 0) sys.close(fd);
    loop.close();
    throw err;
  }
}

async function start(o: ServeOptions): Promise<RunningServer> {
  const { loop, core, port } = openReactor(
    o,
    (l, edge) => new ReactorCore({ loop: l, protocol: o.protocol, edge, counters: new Float64Array(COUNTERS), graceMs: o.graceMs ?? 2000 }),
  );
  return new OwnedReactor(o.host, port, loop, core);
}

export const reactorArch: Arch = {
  name: 'reactor',
  summary: 'EventLoop owning the thread on one backend (--backend, --mode level|edge), handlers in JS, CPU work inline',
  options: ['backend', 'mode'],
  availability: () => ({ available: true }),
  start,
};
