// Ring: io_uring as a completion engine. Operations are queued from JS (no
// syscall), submitted together in one io_uring_enter per loop iteration, and
// their completions come back as (userData, res, flags, bufferId) tuples in a
// preallocated Int32Array. Received bytes stay in a provided buffer ring whose
// memory is `ring.buffers`; each buffer goes back with returnBuffer(id).
import * as os from 'node:os';
import { native } from './native';
import { ErrnoError, InvalidStateError } from './errors';
import { bytesArg, fdArg, intArg, timeoutArg, typeOf } from './validate';
import type { LoopHooks } from './loop-types';

const E = os.constants.errno;

/** Bits of a completion's flags (completions[4*i+2]). */
export const CompletionFlags = Object.freeze({
  /** The completion carries a buffer id (completions[4*i+3]). */
  BUFFER: 1,
  /** A multishot request stays armed: more completions will follow. Without it the request is over. */
  MORE: 2,
  /** recv: more data was waiting in the socket. */
  SOCK_NONEMPTY: 4,
} as const);

/** poll() event bits (Linux values). */
export const PollEvents = Object.freeze({ IN: 0x1, PRI: 0x2, OUT: 0x4, ERR: 0x8, HUP: 0x10, RDHUP: 0x2000 } as const);

const MSG_WAITALL = 0x100;
const SHUT: Record<string, number> = { read: 0, write: 1, both: 2 };

export interface RingOptions {
  /** Submission queue size (rounded up to a power of two by the kernel). Default 256. */
  entries?: number;
  /** Completion queue size, >= entries. Default: twice the SQ (the kernel's choice). */
  cqEntries?: number;
  /** Receive buffers in the provided buffer ring: a power of two up to 32768, or 0 for none. Default 256. */
  bufferCount?: number;
  /** Bytes per receive buffer. Default 16384. */
  bufferSize?: number;
  /** Completions one submitAndWait()/reap() returns at most (the size of `completions`). Default 1024. */
  capacity?: number;
  /**
   * Extra IORING_SETUP_* bits to ask for. A bit the kernel refuses with
   * EINVAL is dropped and the setup retried; `droppedFlags` lists it.
   */
  setupFlags?: number;
}

export interface RingStats {
  /** io_uring_enter calls, all reasons together: the syscalls a Ring makes. */
  enters: number;
  /** SQEs the kernel consumed. */
  submitted: number;
  /** Completions handed to JS. */
  reaped: number;
  /** Enters that waited for completions. */
  waits: number;
  /** Times an operation found the SQ full and submitted early. */
  sqFull: number;
  /** Enters made only to move overflowed completions (CQ full) into the CQ. */
  overflowFlushes: number;
  /** Completions that failed with ENOBUFS (the buffer ring was empty). */
  noBuffers: number;
  /** Times the kernel reported dropped completions (EBADR); 0 unless memory ran out. */
  lost: number;
}
const STAT_NAMES: Array<keyof RingStats> = ['enters', 'submitted', 'reaped', 'waits', 'sqFull', 'overflowFlushes', 'noBuffers', 'lost'];

export interface RingProbe {
  available: boolean;
  reason?: string;
}

interface NativeRing {
  init(entries: number, cqEntries: number, bufCount: number, bufSize: number, completions: Int32Array, extraFlags: number): number;
  reason(): string;
  info(): { fd: number; sqEntries: number; cqEntries: number; features: number; setupFlags: string[]; droppedFlags: string[] };
  buffers(): ArrayBuffer | undefined;
  accept(fd: number, ud: number): number;
  recv(fd: number, ud: number): number;
  send(fd: number, data: Uint8Array, ud: number, msgFlags: number): number;
  closeFd(fd: number, ud: number, cancelFirst: boolean): number;
  shutdown(fd: number, how: number, ud: number): number;
  cancel(target: number, ud: number): number;
  cancelFd(fd: number, ud: number): number;
  timeout(ms: number, ud: number): number;
  poll(fd: number, mask: number, ud: number): number;
  nop(ud: number): number;
  submit(): number;
  submitAndWait(min: number, timeoutMs: number): number;
  reap(): number;
  returnBuffer(id: number): number;
  buffersFree(): number;
  pending(): number;
  stats(out: Float64Array): void;
  close(): void;
}

function userDataArg(value: unknown, name = 'userData'): number {
  return intArg(value, name, 0, 0xffffffff);
}

function optionsArg(options: unknown): RingOptions {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${typeOf(options)}`);
  return options as RingOptions;
}

export class Ring {
  /** Whether a Ring can be created here, and why not. */
  static probe(): RingProbe {
    const reason: string = native.ringProbe();
    return reason ? { available: false, reason } : { available: true };
  }

  /** Filled by submitAndWait()/reap(): for i < count, [4i] userData (read it with >>> 0), [4i+1] res, [4i+2] flags, [4i+3] buffer id or -1. */
  readonly completions: Int32Array;
  /** Tuples `completions` holds. */
  readonly capacity: number;
  /** The receive buffers (bufferCount × bufferSize bytes), or null when the Ring has none. */
  readonly buffers: ArrayBuffer | null;
  readonly bufferCount: number;
  readonly bufferSize: number;
  readonly entries: number;
  readonly cqEntries: number;
  /** IORING_SETUP_* flags in use, and those dropped because the kernel refused them. */
  readonly setupFlags: readonly string[];
  readonly droppedFlags: readonly string[];
  /** Used by run() and attach() when they are given no callback. */
  oncompletions: ((count: number) => void) | null = null;

  private handle: NativeRing | null;
  private readonly ringFd: number;
  private readonly statBuf = new Float64Array(STAT_NAMES.length);
  private stopping = false;
  private running = false;
  private detachers: Array<() => void> = [];

  constructor(options?: RingOptions) {
    const o = optionsArg(options);
    const entries = o.entries === undefined ? 256 : intArg(o.entries, 'options.entries', 1, 32768);
    const cqEntries = o.cqEntries === undefined ? 0 : intArg(o.cqEntries, 'options.cqEntries', 1, 65536);
    if (cqEntries !== 0 && cqEntries < entries) {
      throw new RangeError(`options.cqEntries must be >= options.entries (${entries}), got ${cqEntries}`);
    }
    const bufferCount = o.bufferCount === undefined ? 256 : intArg(o.bufferCount, 'options.bufferCount', 0, 32768);
    if (bufferCount & (bufferCount - 1)) throw new RangeError(`options.bufferCount must be 0 or a power of two, got ${bufferCount}`);
    const bufferSize = o.bufferSize === undefined ? 16384 : intArg(o.bufferSize, 'options.bufferSize', 1, 1 << 24);
    if (bufferCount * bufferSize > 2 ** 31) {
      throw new RangeError(`options.bufferCount × options.bufferSize must be at most 2 GiB, got ${bufferCount * bufferSize}`);
    }
    this.capacity = o.capacity === undefined ? 1024 : intArg(o.capacity, 'options.capacity', 1, 1 << 20);
    const extra = o.setupFlags === undefined ? 0 : intArg(o.setupFlags, 'options.setupFlags', 0, 0xffffffff);
    // A fresh ArrayBuffer is always off the V8 heap, so its address never moves.
    this.completions = new Int32Array(new ArrayBuffer(16 * this.capacity));
    const h = new native.NativeRing() as NativeRing;
    const rc = h.init(entries, cqEntries, bufferCount, bufferSize, this.completions, extra);
    if (rc < 0) {
      const reason = h.reason();
      const syscall = reason.startsWith('io_uring_register') ? 'io_uring_register' : reason.startsWith('mmap') ? 'mmap' : 'io_uring_setup';
      h.close?.();
      const err = new ErrnoError(-rc, syscall, reason);
      (err as ErrnoError & { reason?: string }).reason = reason;
      throw err;
    }
    this.handle = h;
    const info = h.info();
    this.ringFd = info.fd;
    this.entries = info.sqEntries;
    this.cqEntries = info.cqEntries;
    this.setupFlags = Object.freeze(info.setupFlags);
    this.droppedFlags = Object.freeze(info.droppedFlags);
    this.buffers = h.buffers() ?? null;
    this.bufferCount = this.buffers ? bufferCount : 0;
    this.bufferSize = this.buffers ? bufferSize : 0;
  }

  /** The ring's fd: readable when completions are waiting (for embedding in another loop). */
  get fd(): number {
    return this.handle ? this.ringFd : -1;
  }

  get closed(): boolean {
    return this.handle === null;
  }

  /** Requests queued or in flight; a multishot request counts until its last completion. */
  get pending(): number {
    return this.handle ? this.handle.pending() : 0;
  }

  /** Receive buffers the kernel can fill now. */
  get buffersFree(): number {
    return this.handle ? this.handle.buffersFree() : 0;
  }

  /** Syscall and completion counters (read on demand; counting costs an increment). */
  get stats(): RingStats {
    if (this.handle) this.handle.stats(this.statBuf);
    const s = {} as RingStats;
    STAT_NAMES.forEach((name, i) => (s[name] = this.statBuf[i]));
    return s;
  }

  // ---- operations: each fills one SQE; nothing reaches the kernel before submit() ----

  /** Multishot accept on a listening socket: one completion per connection, res = the new fd (non-blocking, close-on-exec). */
  accept(fd: number, userData: number): void {
    const h = this.live('accept');
    this.check(h.accept(fdArg(fd), userDataArg(userData)), 'accept');
  }

  /**
   * Multishot recv into the buffer ring: one completion per chunk (res bytes in
   * buffer completions[4i+3]), res 0 at end of stream. Without the MORE flag
   * the request is over: after ENOBUFS (no free buffer), return buffers and
   * call recv() again.
   */
  recv(fd: number, userData: number): void {
    const h = this.live('recv');
    fdArg(fd);
    userDataArg(userData);
    if (!this.buffers) throw new ErrnoError(E.ENOBUFS, 'ring.recv', 'this Ring was created with bufferCount 0');
    this.check(h.recv(fd, userData), 'recv');
  }

  /**
   * Sends data (kept referenced until its completion; do not modify it
   * before). res = bytes sent, which may be fewer than asked unless waitAll.
   */
  send(fd: number, data: ArrayBufferView | ArrayBuffer, userData: number, waitAll = false): void {
    const h = this.live('send');
    fdArg(fd);
    const view = bytesArg(data, 'data');
    userDataArg(userData);
    if (typeof waitAll !== 'boolean') throw new TypeError(`waitAll must be a boolean, got ${typeOf(waitAll)}`);
    this.check(h.send(fd, view, userData, waitAll ? MSG_WAITALL : 0), 'send');
  }

  /** Closes fd; with cancelPending, every request on fd is cancelled first. */
  closeFd(fd: number, userData: number, cancelPending = false): void {
    const h = this.live('closeFd');
    fdArg(fd);
    userDataArg(userData);
    if (typeof cancelPending !== 'boolean') throw new TypeError(`cancelPending must be a boolean, got ${typeOf(cancelPending)}`);
    this.check(h.closeFd(fd, userData, cancelPending), 'closeFd');
  }

  shutdown(fd: number, how: 'read' | 'write' | 'both', userData: number): void {
    const h = this.live('shutdown');
    fdArg(fd);
    const v = typeof how === 'string' ? SHUT[how] : undefined;
    if (v === undefined) throw new TypeError(`how must be 'read', 'write' or 'both', got ${typeOf(how)}`);
    this.check(h.shutdown(fd, v, userDataArg(userData)), 'shutdown');
  }

  /**
   * Cancels every request queued with userData `target` (not sends: cancel
   * those with cancelFd). The cancel's own completion has res = how many
   * were cancelled (0 for none); each cancelled request completes with -ECANCELED.
   */
  cancel(target: number, userData: number): void {
    const h = this.live('cancel');
    this.check(h.cancel(userDataArg(target, 'target'), userDataArg(userData)), 'cancel');
  }

  /** Cancels every request on fd. */
  cancelFd(fd: number, userData: number): void {
    const h = this.live('cancelFd');
    this.check(h.cancelFd(fdArg(fd), userDataArg(userData)), 'cancelFd');
  }

  /** Completes with res -ETIME after ms milliseconds (-ECANCELED if cancelled first). */
  timeout(ms: number, userData: number): void {
    const h = this.live('timeout');
    if (typeof ms !== 'number') throw new TypeError(`ms must be a number of milliseconds, got ${typeOf(ms)}`);
    if (!(ms >= 0) || ms > 0x7fffffff) throw new RangeError(`ms must be in [0, ${0x7fffffff}], got ${ms}`);
    this.check(h.timeout(Math.ceil(ms), userDataArg(userData)), 'timeout');
  }

  /** One-shot poll: completes with the ready PollEvents bits. */
  poll(fd: number, events: number, userData: number): void {
    const h = this.live('poll');
    fdArg(fd);
    intArg(events, 'events', 1, 0xffff);
    this.check(h.poll(fd, events, userDataArg(userData)), 'poll');
  }

  /** Completes at once with res 0 (a wake-up, or a way to defer work to the next batch). */
  nop(userData: number): void {
    const h = this.live('nop');
    this.check(h.nop(userDataArg(userData)), 'nop');
  }

  // ---- driving ----

  /** Submits the queued requests (one io_uring_enter, none if nothing is queued); returns how many the kernel took. */
  submit(): number {
    const h = this.live('submit');
    const rc = h.submit();
    if (rc === -E.EBUSY || rc === -E.EAGAIN) return 0; // CQ overflow back-pressure: reap, then submit again
    return this.check(rc, 'submit');
  }

  /**
   * Submits the queued requests and waits for at least minComplete
   * completions in the same io_uring_enter; timeout in ms (-1 forever, 0 no
   * wait). Returns how many tuples were written to `completions` (fewer than
   * minComplete on timeout).
   */
  submitAndWait(minComplete = 1, timeout = -1): number {
    const h = this.live('submitAndWait');
    intArg(minComplete, 'minComplete', 0, this.capacity);
    return this.check(h.submitAndWait(minComplete, timeoutArg(timeout)), 'submitAndWait');
  }

  /** Copies completions that are ready into `completions` without waiting; returns the count. */
  reap(): number {
    const h = this.live('reap');
    return this.check(h.reap(), 'reap');
  }

  /** A view of `length` received bytes in buffer id (valid until returnBuffer(id)). */
  buffer(id: number, length: number): Uint8Array {
    this.live('buffer');
    if (!this.buffers) throw new ErrnoError(E.ENOBUFS, 'ring.buffer', 'this Ring was created with bufferCount 0');
    intArg(id, 'id', 0, this.bufferCount - 1);
    intArg(length, 'length', 0, this.bufferSize);
    return new Uint8Array(this.buffers, id * this.bufferSize, length);
  }

  /** Hands receive buffer id back to the kernel. */
  returnBuffer(id: number): void {
    const h = this.live('returnBuffer');
    if (!this.buffers) throw new ErrnoError(E.ENOBUFS, 'ring.returnBuffer', 'this Ring was created with bufferCount 0');
    intArg(id, 'id', 0, this.bufferCount - 1);
    if (h.returnBuffer(id) < 0) throw new RangeError(`id ${id} is not a buffer JS holds (returned twice?)`);
  }

  /**
   * Drives the Ring from an event loop: queued requests are submitted before
   * every blocking wait, and completions are reaped when the ring fd is
   * readable. Without onCompletions, batches go to ring.oncompletions (which
   * ring-net servers and connections set). Returns a function that detaches
   * (close() also detaches).
   */
  attach(loop: LoopHooks, onCompletions?: (count: number) => void): () => void {
    this.live('attach');
    if (loop === null || typeof loop !== 'object' || typeof loop.onPrepare !== 'function' || typeof loop.watchReadable !== 'function') {
      throw new TypeError(`loop must have onPrepare() and watchReadable() (an EventLoop), got ${typeOf(loop)}`);
    }
    const cb = this.callbackArg(onCompletions);
    const removePrepare = loop.onPrepare(() => {
      if (this.handle) this.submit();
    });
    const removeWatch = loop.watchReadable(this.ringFd, () => {
      let n: number;
      do {
        if (!this.handle) return;
        n = this.reap();
        if (n > 0) cb(n);
      } while (n === this.capacity);
    });
    let attached = true;
    const detach = (): void => {
      if (!attached) return;
      attached = false;
      removeWatch();
      removePrepare();
      this.detachers = this.detachers.filter((d) => d !== detach);
    };
    this.detachers.push(detach);
    return detach;
  }

  /**
   * Owns the thread: submits, waits and hands completions to onCompletions
   * until stop(), until nothing is pending, or until options.timeout ms have
   * passed. Returns the number of completions handled. Promise jobs do not
   * run until it returns: use attach() to mix with Node's own I/O.
   */
  run(onCompletions?: ((count: number) => void) | null, options: { timeout?: number } = {}): number {
    this.live('run');
    const cb = this.callbackArg(onCompletions);
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${typeOf(options)}`);
    const limit = timeoutArg(options.timeout, 'options.timeout');
    if (this.running) throw new InvalidStateError('ring.run() is already running');
    const deadline = limit >= 0 ? performance.now() + limit : Infinity;
    this.stopping = false;
    this.running = true;
    let total = 0;
    try {
      while (!this.stopping && this.handle !== null && this.handle.pending() > 0) {
        const left = deadline === Infinity ? -1 : Math.max(0, Math.ceil(deadline - performance.now()));
        const n = this.submitAndWait(1, left);
        if (n > 0) {
          total += n;
          cb(n);
        } else if (left === 0) {
          break;
        }
        if (performance.now() >= deadline) break;
      }
    } finally {
      this.running = false;
      this.stopping = false;
    }
    return total;
  }

  /** Makes run() return after the current batch. */
  stop(): void {
    this.stopping = true;
  }

  /**
   * Drops requests queued but not submitted, cancels everything in flight,
   * waits (at most 1 s) for the kernel to let go of the buffers, and releases
   * the ring. `buffers` stays readable. Closing
   * twice is a no-op.
   */
  close(): void {
    for (const d of [...this.detachers]) d();
    if (this.handle) this.handle.close();
    this.handle = null;
    this.stopping = true;
  }

  /** The callback given, else one that reads ring.oncompletions at each batch (it may be set later). */
  private callbackArg(cb: unknown): (count: number) => void {
    if (cb === undefined || cb === null) {
      return (count: number): void => {
        const f = this.oncompletions;
        if (typeof f !== 'function') throw new InvalidStateError(`ring: ${count} completion(s) arrived but ring.oncompletions is not set`);
        f(count);
      };
    }
    if (typeof cb !== 'function') throw new TypeError(`onCompletions must be a function (or omitted: ring.oncompletions), got ${typeOf(cb)}`);
    return cb as (count: number) => void;
  }

  private live(op: string): NativeRing {
    if (this.handle === null) throw new ErrnoError(E.EBADF, `ring.${op}`, 'this Ring is closed');
    return this.handle;
  }

  private check(rc: number, op: string): number {
    if (rc >= 0) return rc;
    if (rc === -E.EBUSY) {
      throw new ErrnoError(E.EBUSY, 'io_uring_enter', `ring.${op}: the submission queue is full and the kernel takes no more until completions are reaped`);
    }
    throw new ErrnoError(-rc, op === 'submit' || op === 'submitAndWait' || op === 'reap' ? 'io_uring_enter' : `ring.${op}`);
  }
}
