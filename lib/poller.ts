// Poller: the typed surface of one multiplexer backend instance.
import { markAsUntransferable } from 'node:worker_threads';
import { native } from './native';

// Where ArrayBuffer.prototype.transfer exists (Node 21+), even an
// untransferable buffer can be detached: the bound wait then checks each call.
const CAN_DETACH = typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function';
import { ErrnoError } from './errors';
import { fdArg, intArg, timeoutArg, typeOf } from './validate';

/** Normalised event bits, the same on every backend. ERROR and HANGUP are always reported. */
export const Interest = Object.freeze({ READABLE: 1, WRITABLE: 2, ERROR: 4, HANGUP: 8 } as const);
/** Registration modes: LEVEL (0, the default) or a combination of the flags. */
export const Mode = Object.freeze({ LEVEL: 0, EDGE: 1, ONESHOT: 2, EXCLUSIVE: 4 } as const);

export type BackendName = 'select' | 'poll' | 'epoll' | 'kqueue' | 'io_uring';
export const BACKEND_NAMES: readonly BackendName[] = Object.freeze(['select', 'poll', 'epoll', 'kqueue', 'io_uring']);
export type Support = 'native' | 'emulated' | 'unsupported';
export interface ModeSupport {
  level: Support;
  edge: Support;
  oneshot: Support;
  exclusive: Support;
}
export interface BackendStatus {
  name: BackendName;
  available: boolean;
  reason?: string;
  modes: ModeSupport;
}

/** The monotonic clock the EventLoop and Poller.waitUntil use: CLOCK_MONOTONIC in ms, with a fractional part. */
export function monotonicMs(): number {
  return native.monotonicMs();
}

/** Every backend, probed now (not cached): whether it works here, why not, and its modes. */
export function backends(): BackendStatus[] {
  return native.backends() as BackendStatus[];
}

let modeCache: Map<string, ModeSupport> | null = null;
function modesOf(name: BackendName): ModeSupport {
  // Mode support is fixed at build time, so it is read once; availability is not cached.
  if (!modeCache) modeCache = new Map(backends().map((b) => [b.name, b.modes]));
  return modeCache.get(name)!;
}

/** The best backend on this platform: epoll on Linux, kqueue where it exists, else poll. */
export function defaultBackend(): BackendName {
  const list = backends();
  for (const name of ['epoll', 'kqueue', 'poll'] as BackendName[]) {
    if (list.find((b) => b.name === name)?.available) return name;
  }
  return 'poll';
}

const MODE_FLAGS: Array<[number, keyof ModeSupport, string]> = [
  [Mode.EDGE, 'edge', 'EDGE'],
  [Mode.ONESHOT, 'oneshot', 'ONESHOT'],
  [Mode.EXCLUSIVE, 'exclusive', 'EXCLUSIVE'],
];
const CREATE_SYSCALL: Record<BackendName, string> = {
  select: 'select',
  poll: 'poll',
  epoll: 'epoll_create1',
  kqueue: 'kqueue',
  io_uring: 'io_uring_setup',
};

/** Thrown when a registration asks for a mode the backend does not have. */
export class UnsupportedModeError extends RangeError {
  readonly code = 'ERR_IOMUX_MODE_UNSUPPORTED';
  constructor(message: string) {
    super(message);
    this.name = 'UnsupportedModeError';
  }
}

export interface PollerOptions {
  /** Maximum (fd, events) pairs one wait() returns; default 1024. */
  capacity?: number;
}

export class Poller {
  readonly backend: BackendName;
  /** Filled by wait(): events[2*i] is the fd, events[2*i+1] its Interest bits. */
  readonly events: Int32Array;
  readonly capacity: number;
  /** waitUntil()'s clock: [before, after] the kernel wait, in monotonicMs(). */
  readonly times: Float64Array;
  private handle: NativeHandle | null;
  private readonly fastWait: (timeout: number) => number;
  private readonly fastWaitUntil: (deadline: number) => number;
  private readonly modes: ModeSupport;

  constructor(backend: BackendName = defaultBackend(), options: PollerOptions = {}) {
    if (typeof backend !== 'string') throw new TypeError(`backend must be a string, got ${typeOf(backend)}`);
    if (!BACKEND_NAMES.includes(backend)) {
      throw new RangeError(`backend must be one of ${BACKEND_NAMES.join(', ')}, got '${backend}'`);
    }
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${typeOf(options)}`);
    this.capacity = options.capacity === undefined ? 1024 : intArg(options.capacity, 'options.capacity', 1, 1 << 20);
    this.backend = backend;
    this.events = new Int32Array(2 * this.capacity);
    this.times = new Float64Array(2);
    // The native side keeps pointers to these two arrays (see bindWait): they
    // must never be detached by a transfer to another thread.
    markAsUntransferable(this.events.buffer);
    markAsUntransferable(this.times.buffer);
    this.modes = modesOf(backend);
    try {
      this.handle = new native.NativePoller(backend) as NativeHandle;
    } catch (err) {
      const e = err as { errno?: number; message?: string };
      const error = new ErrnoError(e.errno ?? 38, CREATE_SYSCALL[backend], e.message);
      (error as ErrnoError & { reason?: string }).reason = e.message;
      throw error;
    }
    [this.fastWait, this.fastWaitUntil] = this.handle.bindWait(this.events, this.times, CAN_DETACH);
  }

  /** The fd that becomes readable when events are pending (epoll, kqueue, io_uring), else -1. */
  get fd(): number {
    return this.handle ? this.handle.pollableFd() : -1;
  }

  get closed(): boolean {
    return this.handle === null;
  }

  /** How many times a wait was interrupted by a signal (EINTR) and resumed. */
  get interrupted(): number {
    return this.handle ? this.handle.interrupted() : 0;
  }

  add(fd: number, interest: number = Interest.READABLE, mode: number = Mode.LEVEL): void {
    const h = this.live('add');
    fdArg(fd);
    this.checkInterest(interest);
    this.checkMode(mode);
    if (this.backend === 'select' && fd >= native.FD_SETSIZE) {
      throw new RangeError(`fd ${fd} is >= FD_SETSIZE (${native.FD_SETSIZE}): select cannot watch it; use poll, epoll or io_uring`);
    }
    this.check(h.add(fd, interest, mode), h);
  }

  modify(fd: number, interest: number, mode: number = Mode.LEVEL): void {
    const h = this.live('modify');
    fdArg(fd);
    this.checkInterest(interest);
    this.checkMode(mode);
    this.check(h.modify(fd, interest, mode), h);
  }

  /**
   * @internal The Poller takes fd over: it closes it when it closes, is
   * garbage collected, or its worker thread ends (the EventLoop's wakeup fds).
   */
  _adopt(fd: number): void {
    const h = this.live('adopt');
    fdArg(fd);
    this.check(h.adopt(fd), h);
  }

  /** Stops watching fd. Succeeds for an fd that was closed after add(). */
  remove(fd: number): void {
    const h = this.live('remove');
    fdArg(fd);
    this.check(h.remove(fd), h);
  }

  /**
   * Waits up to timeout ms (-1 forever, 0 poll; fractions round up) and
   * returns the number of (fd, events) pairs written to `events`. May return
   * 0 before the timeout (a spurious wakeup); an EINTR is resumed inside.
   */
  wait(timeout: number = -1): number {
    if (this.handle === null) this.live('wait');
    const rc = this.fastWait(timeout === 0 || timeout === -1 ? timeout : timeoutArg(timeout));
    return rc >= 0 ? rc : this.check(rc, this.handle!);
  }

  /**
   * wait() with an absolute deadline on the monotonicMs() clock (-1 waits
   * forever, a deadline in the past polls). clock[0] and clock[1] receive
   * monotonicMs() just before and just after the kernel wait: the EventLoop
   * uses them for its timers and its stats without reading a clock itself.
   */
  waitUntil(deadline: number, clock: Float64Array): number {
    const h = this.live('waitUntil');
    if (typeof deadline !== 'number' || Number.isNaN(deadline)) throw new TypeError(`deadline must be a number of milliseconds, got ${typeOf(deadline)}`);
    if (!(clock instanceof Float64Array) || clock.length < 2) throw new TypeError(`clock must be a Float64Array of length >= 2, got ${typeOf(clock)}`);
    const rc = clock === this.times ? this.fastWaitUntil(deadline) : h.waitUntil(deadline, this.events, clock);
    return rc >= 0 ? rc : this.check(rc, h);
  }

  /** Releases the backend's kernel resources. Closing twice is a no-op. */
  close(): void {
    if (this.handle) this.handle.close();
    this.handle = null;
  }

  private live(op: string): NativeHandle {
    if (this.handle === null) throw new ErrnoError(9, `poller.${op}`, `this ${this.backend} Poller is closed`);
    return this.handle;
  }

  private check(rc: number, h: NativeHandle): number {
    if (rc < 0) throw new ErrnoError(-rc, h.failedSyscall() || this.backend);
    return rc;
  }

  private checkInterest(interest: unknown): void {
    if (typeof interest !== 'number') throw new TypeError(`interest must be a number (Interest bits), got ${typeOf(interest)}`);
    if (!Number.isInteger(interest) || interest < 0 || interest > 15) {
      throw new RangeError(`interest must be a combination of Interest.READABLE and Interest.WRITABLE, got ${interest}`);
    }
  }

  private checkMode(mode: unknown): void {
    if (typeof mode !== 'number') throw new TypeError(`mode must be a number (Mode), got ${typeOf(mode)}`);
    if (!Number.isInteger(mode) || mode < 0 || mode > 7) {
      throw new RangeError(`mode must be Mode.LEVEL or a combination of Mode.EDGE, Mode.ONESHOT, Mode.EXCLUSIVE, got ${mode}`);
    }
    if (mode & Mode.EXCLUSIVE && mode & Mode.ONESHOT) {
      throw new RangeError('mode: EXCLUSIVE cannot be combined with ONESHOT (the kernel refuses it)');
    }
    for (const [bit, key, label] of MODE_FLAGS) {
      if (mode & bit && this.modes[key] === 'unsupported') {
        const have = MODE_FLAGS.filter(([, k]) => this.modes[k] !== 'unsupported').map(([, k, l]) => `${l} (${this.modes[k]})`);
        throw new UnsupportedModeError(
          `mode ${label} is not supported by the ${this.backend} backend; it has LEVEL (${this.modes.level})${have.length ? ', ' + have.join(', ') : ''}`,
        );
      }
    }
  }
}

interface NativeHandle {
  add(fd: number, interest: number, mode: number): number;
  modify(fd: number, interest: number, mode: number): number;
  adopt(fd: number): number;
  remove(fd: number): number;
  wait(timeout: number, out: Int32Array): number;
  waitUntil(deadline: number, out: Int32Array, clock: Float64Array): number;
  close(): void;
  pollableFd(): number;
  failedSyscall(): string;
  interrupted(): number;
  bindWait(events: Int32Array, times: Float64Array, checkDetached: boolean): [(timeout: number) => number, (deadline: number) => number];
}
