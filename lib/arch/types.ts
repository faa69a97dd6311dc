// The contract every lab architecture implements. An architecture is one file
// in lib/arch/ exporting an `Arch`, plus one row in lib/arch/index.ts;
// `iomux serve`, the tests (test/lab-serve.test.ts runs every registered
// arch) and the benchmarks pick it up from there.
import type { LabProtocol } from '../lab/load';

export type { LabProtocol };

/** Options an arch may accept besides protocol/host/port. */
export type ServeOptionName = 'backend' | 'mode' | 'threads' | 'workers' | 'stackKb';

export interface ServeOptions {
  protocol: LabProtocol;
  /** An IPv4 or IPv6 literal. */
  host: string;
  /** 0 = any free port. */
  port: number;
  /** Multiplexer for reactor archs: select | poll | epoll | kqueue | io_uring. */
  backend?: string;
  /** Registration mode for reactor archs: level | edge | oneshot | exclusive. */
  mode?: string;
  /** Native threads: the pool size (thread-pool) or reactor threads (c-epoll, c-uring). */
  threads?: number;
  /** worker_threads for JS archs (reactor-pool, multi-reactor). */
  workers?: number;
  /** Stack size of native server threads, KiB. */
  stackKb?: number;
  /** How long close() lets in-flight replies finish before cutting connections. Default 2000. */
  graceMs?: number;
}

export interface ServerStats {
  accepted?: number;
  active?: number;
  requests?: number;
  [key: string]: number | undefined;
}

export interface RunningServer {
  readonly host: string;
  readonly port: number;
  /** Stops accepting, lets in-flight replies finish (up to graceMs), releases every thread. */
  close(): Promise<void>;
  /** Counters, where the arch keeps them. */
  stats?(): ServerStats;
  /**
   * For archs that own the calling thread (an EventLoop in owned mode):
   * `iomux serve` prints the listening line, then awaits run(). run() must
   * return once the server has stopped, and the arch must notice SIGINT and
   * SIGTERM itself (Node's signal handlers do not run while the thread is
   * blocked in the kernel), e.g. with a signalfd in its loop. Archs that do not
   * block the thread leave run() out; serve then calls close() on a signal.
   */
  run?(): Promise<void>;
}

export interface Availability {
  available: boolean;
  /** Why not, when unavailable. */
  reason?: string;
}

export interface Arch {
  /** The --arch name. */
  readonly name: string;
  /** One line for `iomux serve --help`. */
  readonly summary: string;
  /** The options it understands; serve rejects the others. */
  readonly options: readonly ServeOptionName[];
  availability(): Availability;
  /** Listens and serves; resolves once accepting. */
  start(options: ServeOptions): Promise<RunningServer>;
}
