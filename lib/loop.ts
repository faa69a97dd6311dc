// EventLoop: a reactor over any Poller backend. Per-fd watchers, timers on a
// binary heap, immediates, wakeup() from other threads, counters; driven
// either by itself (owned mode: run()/runSync()/runOnce()) or by Node's own
// loop (embedded mode: attach()/detach()). See docs/loop.md.
import { native } from './native';
import { ErrnoError, InvalidStateError } from './errors';
import { BackendName, Interest, Mode, ModeSupport, Poller, UnsupportedModeError, backends, defaultBackend, monotonicMs } from './poller';
import { fdArg, typeOf } from './validate';
import * as sys from './sys';
import type { LoopHooks } from './loop-types';

export type { LoopHooks } from './loop-types';

/** Called with the fd and the Interest bits that are ready (ERROR and HANGUP included). */
export type WatchCallback = (fd: number, events: number) => void;

/** Counters of an EventLoop. Plain fields, updated in place: reading them costs nothing. */
export interface LoopStatsSnapshot {
  /** Loop iterations completed (one wait each, then callbacks, timers, immediates). */
  iterations: number;
  /** Calls into the multiplexer (Poller.waitUntil). */
  waitCalls: number;
  /** Watcher callbacks called. */
  eventsDelivered: number;
  /** Blocking waits that returned no event and fired no timer (spurious, or a signal). */
  emptyWakeups: number;
  /** Timer callbacks called. */
  timersFired: number;
  /** Immediate callbacks called. */
  immediatesRun: number;
  /** wakeup() notifications received. */
  wakeups: number;
  /** Nanoseconds spent inside the multiplexer's wait (blocked in the kernel, or polling). */
  blockedNs: number;
  /** Nanoseconds between waits: callbacks, timers, immediates, promise jobs and loop overhead. */
  callbackNs: number;
  /** eventsPerWakeup[0]: waits that returned 0 pairs; [k] (k >= 1): waits that returned 2^(k-1) .. 2^k - 1. */
  eventsPerWakeup: number[];
}

const RW = Interest.READABLE | Interest.WRITABLE;
const ALWAYS = Interest.ERROR | Interest.HANGUP;
const EEXIST = 17;
const EBADF = 9;
const HISTOGRAM_BUCKETS = 24;

function fnArg(value: unknown, name: string): void {
  if (typeof value !== 'function') throw new TypeError(`${name} must be a function, got ${typeOf(value)}`);
}

function msArg(value: unknown, name: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number of milliseconds, got ${typeOf(value)}`);
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
  return value;
}

function interestArg(value: unknown): number {
  if (typeof value !== 'number') throw new TypeError(`interest must be a number (Interest bits), got ${typeOf(value)}`);
  if (!Number.isInteger(value) || value < 0 || value > 15) {
    throw new RangeError(`interest must be 0 or a combination of Interest.READABLE and Interest.WRITABLE, got ${value}`);
  }
  return value & RW;
}

/** The loop's counters; see LoopStatsSnapshot for what each field means. */
export class LoopStats implements LoopStatsSnapshot {
  iterations = 0;
  waitCalls = 0;
  eventsDelivered = 0;
  emptyWakeups = 0;
  timersFired = 0;
  immediatesRun = 0;
  wakeups = 0;
  blockedNs = 0;
  callbackNs = 0;
  /** [0]: waits that returned 0 pairs; [k]: waits that returned 2^(k-1) .. 2^k - 1 pairs. */
  readonly histogram = new Float64Array(HISTOGRAM_BUCKETS);

  get eventsPerWakeup(): number[] {
    const h = Array.from(this.histogram);
    let last = h.length;
    while (last > 1 && h[last - 1] === 0) last--;
    return h.slice(0, last);
  }

  reset(): void {
    this.iterations = this.waitCalls = this.eventsDelivered = this.emptyWakeups = 0;
    this.timersFired = this.immediatesRun = this.wakeups = this.blockedNs = this.callbackNs = 0;
    this.histogram.fill(0);
  }

  toJSON(): LoopStatsSnapshot {
    return {
      iterations: this.iterations,
      waitCalls: this.waitCalls,
      eventsDelivered: this.eventsDelivered,
      emptyWakeups: this.emptyWakeups,
      timersFired: this.timersFired,
      immediatesRun: this.immediatesRun,
      wakeups: this.wakeups,
      blockedNs: Math.round(this.blockedNs),
      callbackNs: Math.round(this.callbackNs),
      eventsPerWakeup: this.eventsPerWakeup,
    };
  }
}

/**
 * Readiness callbacks for one fd. Made by loop.watch(); one per fd and loop.
 * Close the watcher BEFORE closing the fd: a backend may hold the file open
 * (io_uring's pending poll does) until the registration is removed.
 */
export class Watcher {
  readonly fd: number;
  /** Called with (fd, events) when the fd is ready; may be replaced at any time. */
  callback: WatchCallback;
  /** @internal */ _id: number;
  /** @internal */ _interest = 0;
  /** @internal */ _mode: number;
  /** @internal */ _ref = true;
  /** @internal */ _armed = true;
  /** @internal */ _loop: EventLoop | null;

  /** @internal */
  constructor(loop: EventLoop, fd: number, mode: number, callback: WatchCallback, id: number) {
    this._loop = loop;
    this.fd = fd;
    this._mode = mode;
    this.callback = callback;
    this._id = id;
  }

  /** The Interest bits watched now (0 when stopped). */
  get interest(): number {
    return this._interest;
  }
  get mode(): number {
    return this._mode;
  }
  /** Watching something (interest != 0) and not closed. */
  get active(): boolean {
    return this._interest !== 0 && this._loop !== null;
  }
  get closed(): boolean {
    return this._loop === null;
  }
  /** Whether this watcher, while active, keeps run() (and an attached Node process) alive. */
  get hasRef(): boolean {
    return this._ref;
  }

  /** Changes what is watched (0 stops watching) and, optionally, the trigger mode. Re-arms a ONESHOT watcher. */
  modify(interest: number, mode: number = this._mode): this {
    this.live()._update(this, interestArg(interest), mode);
    return this;
  }

  /** Starts watching (READABLE by default, or the given interest). */
  start(interest: number = Interest.READABLE): this {
    return this.modify(interest);
  }

  /** Stops watching; the watcher stays and can be started again. */
  stop(): this {
    return this.modify(0);
  }

  /** Adds Interest bits to what is watched. */
  add(interest: number): this {
    return this.modify(this._interest | interestArg(interest));
  }

  /** Removes Interest bits from what is watched. */
  remove(interest: number): this {
    return this.modify(this._interest & ~interestArg(interest));
  }

  /** ONESHOT: watch again after an event disarmed the registration. */
  rearm(): this {
    const loop = this.live();
    if (this._interest !== 0) loop._update(this, this._interest, this._mode, true);
    return this;
  }

  ref(): this {
    this._loop?._setRef(this, true);
    return this;
  }

  unref(): this {
    this._loop?._setRef(this, false);
    return this;
  }

  /** Removes the registration. Idempotent. The fd itself stays open: close it afterwards. */
  close(): void {
    this._loop?._unwatch(this);
  }

  private live(): EventLoop {
    if (this._loop === null) throw new ErrnoError(EBADF, 'watcher', `the watcher for fd ${this.fd} is closed`);
    return this._loop;
  }
}

/** A timer made by loop.setTimeout() / loop.setInterval(). */
export class Timer {
  /** @internal */ _deadline = 0;
  /** @internal */ _seq = 0;
  /** @internal */ _index = -1;
  /** @internal */ _ref = true;
  /** @internal */ readonly _loop: EventLoop;
  readonly callback: () => void;
  /** The delay, in ms. */
  readonly delay: number;
  /** The repeat interval in ms, 0 for a one-shot timer. */
  readonly repeat: number;

  /** @internal */
  constructor(loop: EventLoop, callback: () => void, delay: number, repeat: number) {
    this._loop = loop;
    this.callback = callback;
    this.delay = delay;
    this.repeat = repeat;
  }

  /** Pending (not yet fired, or an interval not cleared). */
  get active(): boolean {
    return this._index >= 0;
  }
  get hasRef(): boolean {
    return this._ref;
  }
  /** Cancels the timer (same as loop.clearTimer(timer)). */
  cancel(): void {
    this._loop.clearTimer(this);
  }
  /** Restarts the timer: it fires `delay` ms from now. */
  refresh(): this {
    this._loop._schedule(this, monotonicMs() + this.delay);
    return this;
  }
  ref(): this {
    this._loop._setTimerRef(this, true);
    return this;
  }
  unref(): this {
    this._loop._setTimerRef(this, false);
    return this;
  }
}

/** A callback queued by loop.setImmediate(). */
export class Immediate {
  /** @internal */ _pending = true;
  /** @internal */ readonly _loop: EventLoop;
  readonly callback: () => void;
  /** @internal */
  constructor(loop: EventLoop, callback: () => void) {
    this._loop = loop;
    this.callback = callback;
  }
  get pending(): boolean {
    return this._pending;
  }
  cancel(): void {
    this._loop.clearImmediate(this);
  }
}

export interface RunOptions {
  /** How promise jobs run between iterations: 'jobs' (default) or 'node'; see EventLoop.run(). */
  drain?: 'jobs' | 'node';
}

// Node's "run the queued ticks, then every promise job" function: what its
// timers call between two timer callbacks. Undocumented (DEP0134 documents
// it as internal), so its absence is handled: run() falls back to 'node'.
const drainJobs: (() => void) | null =
  typeof (process as unknown as { _tickCallback?: unknown })._tickCallback === 'function'
    ? (process as unknown as { _tickCallback: () => void })._tickCallback
    : null;

export interface EventLoopOptions {
  /** Maximum (fd, events) pairs taken from the kernel per wait; default 1024. */
  capacity?: number;
}

// 8 bytes with a non-zero value: what an eventfd needs, and fine for a pipe.
const WAKE_BYTES = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
const DRAIN = new Uint8Array(64);

/**
 * The event loop. `new EventLoop('epoll')`, or a Poller you made yourself
 * (the loop then owns it and closes it with itself).
 */
export class EventLoop implements LoopHooks {
  readonly poller: Poller;
  readonly backend: BackendName;
  readonly stats = new LoopStats();
  private wakeCallback: (() => void) | null = null;

  private readonly events: Int32Array;
  private readonly clock: Float64Array;
  private byFd: Array<Watcher | undefined> = [];
  private nextId = 1;
  private nWatchers = 0;
  /** Ref'd active watchers + ref'd pending timers. */
  private refs = 0;
  private heap: Timer[] = [];
  private timerSeq = 0;
  private immQueue: Immediate[] = [];
  private immSpare: Immediate[] = [];
  private immCount = 0;
  private prepareHooks: Array<() => void> = [];
  private lastAfter = 0;
  private modes: ModeSupport | null = null;

  private running = false;
  private stopRequested = false;
  private closeRequested = false;
  private dispatching = false;
  private isClosed = false;

  private wakeR = -1;
  private wakeW = -1;
  private wakeWatcher: Watcher | null = null;

  // Embedded mode.
  private embed: EmbedHandle | null = null;
  private embedThread = false;
  private helperArmed = false;
  private embedDirty = false;
  private embedScheduled = false;
  private embedRef = false;
  private embedPrepare = false;
  private inTick = false;
  private flushUntilEmpty = false;
  private nodeTimer: NodeJS.Timeout | null = null;
  private nodeTimerDeadline = -1;
  private nodeImmediate: NodeJS.Immediate | null = null;
  private interestSet = new Int32Array(64);

  constructor(backend: BackendName | Poller = defaultBackend(), options: EventLoopOptions = {}) {
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${typeOf(options)}`);
    if (backend instanceof Poller) {
      if (backend.closed) throw new ErrnoError(EBADF, 'EventLoop', 'the Poller is closed');
      if (options.capacity !== undefined) throw new TypeError('options.capacity cannot be given with a Poller (it has its own capacity)');
      this.poller = backend;
    } else {
      this.poller = new Poller(backend, options.capacity === undefined ? {} : { capacity: options.capacity });
    }
    this.backend = this.poller.backend;
    this.events = this.poller.events;
    this.clock = this.poller.times; // bound natively: waitUntil takes its fast path
    // io_uring re-arms its level-mode polls inside the next wait: an embedded
    // tick keeps waiting (with timeout 0) until a wait returns nothing, so
    // that no re-arm is left unsubmitted while Node's loop sleeps.
    this.flushUntilEmpty = this.backend === 'io_uring';
    this.lastAfter = monotonicMs();
  }

  /** Static: wakes the loop whose wakeupFd is `fd`. Callable from any thread (a worker needs only the number). */
  static wake(fd: number): void {
    fdArg(fd);
    const rc = native.sys.write(fd, WAKE_BYTES, 0, 8);
    if (rc < 0 && rc !== sys.EAGAIN && rc !== sys.EINTR) throw new ErrnoError(-rc, 'write');
  }

  /** The loop's clock: monotonic milliseconds (with a fraction). */
  now(): number {
    return monotonicMs();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** True while run() or runSync() is running. */
  get isRunning(): boolean {
    return this.running;
  }

  get isAttached(): boolean {
    return this.embed !== null;
  }

  /** Whether anything keeps the loop alive: ref'd active watchers or timers, or pending immediates. */
  get alive(): boolean {
    return this.refs > 0 || this.immCount > 0;
  }

  /** Open watchers (active or stopped), not counting the loop's own wakeup fd. */
  get watcherCount(): number {
    return this.nWatchers - (this.wakeWatcher ? 1 : 0);
  }

  /** Pending timers. */
  get timerCount(): number {
    return this.heap.length;
  }

  // ---- watchers -------------------------------------------------------

  /**
   * Watches fd: callback(fd, events) runs when it is ready for `interest`
   * (Interest.READABLE | Interest.WRITABLE; 0 makes a stopped watcher).
   * mode: Mode.LEVEL (default), EDGE, ONESHOT, EXCLUSIVE where the backend has it.
   */
  watch(fd: number, interest: number, callback: WatchCallback, mode: number = Mode.LEVEL): Watcher {
    this.checkOpen('watch');
    fdArg(fd);
    const bits = interestArg(interest);
    fnArg(callback, 'callback');
    this.checkMode(mode);
    if (fd < this.byFd.length && this.byFd[fd] !== undefined) {
      throw new ErrnoError(EEXIST, 'watch', `fd ${fd} already has a watcher on this loop: modify() it, or close() it first`);
    }
    const w = new Watcher(this, fd, mode, callback, this.nextId++);
    if (bits !== 0) this.poller.add(fd, bits, mode); // throws before any bookkeeping changes
    while (this.byFd.length <= fd) this.byFd.push(undefined);
    this.byFd[fd] = w;
    this.nWatchers++;
    w._interest = bits;
    if (bits !== 0) this.refs++;
    this.changed();
    return w;
  }

  /** The watcher of fd on this loop, if any. */
  watcherOf(fd: number): Watcher | undefined {
    return fd >= 0 && fd < this.byFd.length ? this.byFd[fd] : undefined;
  }

  /** Closes fd's watcher, if any (the fd stays open). */
  unwatch(fd: number): void {
    this.watcherOf(fdArg(fd))?.close();
  }

  /** @internal */
  _update(w: Watcher, interest: number, mode: number, force = false): void {
    if (mode !== w._mode) this.checkMode(mode);
    const was = w._interest;
    if (!force && was === interest && mode === w._mode && w._armed) return;
    if (interest === 0) {
      if (was !== 0) {
        this.beforeRemove();
        this.poller.remove(w.fd);
      }
    } else if (was === 0) {
      this.poller.add(w.fd, interest, mode);
    } else {
      this.poller.modify(w.fd, interest, mode);
    }
    w._interest = interest;
    w._mode = mode;
    w._armed = true;
    if (w._ref && (was === 0) !== (interest === 0)) this.refs += interest === 0 ? -1 : 1;
    this.changed();
  }

  /** @internal */
  _unwatch(w: Watcher): void {
    if (w._loop !== this) return;
    w._loop = null;
    this.byFd[w.fd] = undefined;
    this.nWatchers--;
    if (w._interest !== 0) {
      if (w._ref) this.refs--;
      w._interest = 0;
      this.beforeRemove();
      if (!this.poller.closed) this.poller.remove(w.fd);
    }
    this.changed();
  }

  /** @internal */
  _setRef(w: Watcher, on: boolean): void {
    if (w._ref === on) return;
    w._ref = on;
    if (w._interest !== 0) this.refs += on ? 1 : -1;
    this.changed();
  }

  private checkMode(mode: unknown): void {
    if (mode === Mode.LEVEL) return;
    if (typeof mode !== 'number') throw new TypeError(`mode must be a number (Mode), got ${typeOf(mode)}`);
    if (!Number.isInteger(mode) || mode < 0 || mode > 7) {
      throw new RangeError(`mode must be Mode.LEVEL or a combination of Mode.EDGE, Mode.ONESHOT, Mode.EXCLUSIVE, got ${mode}`);
    }
    if (!this.modes) this.modes = backends().find((b) => b.name === this.backend)!.modes;
    const flags: Array<[number, keyof ModeSupport, string]> = [
      [Mode.EDGE, 'edge', 'EDGE'],
      [Mode.ONESHOT, 'oneshot', 'ONESHOT'],
      [Mode.EXCLUSIVE, 'exclusive', 'EXCLUSIVE'],
    ];
    for (const [bit, key, label] of flags) {
      if (mode & bit && this.modes[key] === 'unsupported') {
        throw new UnsupportedModeError(`mode ${label} is not supported by the ${this.backend} backend`);
      }
    }
  }

  // ---- timers and immediates ----------------------------------------------

  /** Runs callback once, `ms` milliseconds from now (monotonic clock). */
  setTimeout(callback: () => void, ms: number): Timer {
    fnArg(callback, 'callback');
    const delay = msArg(ms, 'ms');
    this.checkOpen('setTimeout');
    const t = new Timer(this, callback, delay, 0);
    this._schedule(t, monotonicMs() + delay);
    return t;
  }

  /** Runs callback every `ms` milliseconds (at least 1) until cleared. */
  setInterval(callback: () => void, ms: number): Timer {
    fnArg(callback, 'callback');
    const delay = Math.max(1, msArg(ms, 'ms'));
    this.checkOpen('setInterval');
    const t = new Timer(this, callback, delay, delay);
    this._schedule(t, monotonicMs() + delay);
    return t;
  }

  /** Cancels a timer. Clearing twice, or a timer that fired, is a no-op. */
  clearTimer(timer: Timer | null | undefined): void {
    if (timer === null || timer === undefined) return;
    if (!(timer instanceof Timer)) throw new TypeError(`timer must be a Timer, got ${typeOf(timer)}`);
    if (timer._loop !== this || timer._index < 0) return;
    this.heapRemove(timer._index);
    this.changed();
  }

  /** Aliases of clearTimer, for readers used to Node's names. */
  clearTimeout(timer: Timer | null | undefined): void {
    this.clearTimer(timer);
  }
  clearInterval(timer: Timer | null | undefined): void {
    this.clearTimer(timer);
  }

  /** Runs callback after the I/O callbacks of the current (or next) iteration; the wait does not block while any is queued. */
  setImmediate(callback: () => void): Immediate {
    fnArg(callback, 'callback');
    this.checkOpen('setImmediate');
    const im = new Immediate(this, callback);
    this.immQueue.push(im);
    this.immCount++;
    this.changed();
    return im;
  }

  clearImmediate(im: Immediate | null | undefined): void {
    if (im === null || im === undefined) return;
    if (!(im instanceof Immediate)) throw new TypeError(`immediate must be an Immediate, got ${typeOf(im)}`);
    if (im._loop !== this || !im._pending) return;
    im._pending = false;
    this.immCount--;
    this.changed();
  }

  /** @internal */
  _schedule(t: Timer, deadline: number): void {
    if (t._index >= 0) this.heapRemove(t._index);
    t._deadline = deadline;
    t._seq = this.timerSeq++;
    this.heapPush(t);
    this.changed();
  }

  /** @internal */
  _setTimerRef(t: Timer, on: boolean): void {
    if (t._ref === on) return;
    t._ref = on;
    if (t._index >= 0) this.refs += on ? 1 : -1;
    this.changed();
  }

  private heapPush(t: Timer): void {
    const h = this.heap;
    t._index = h.length;
    h.push(t);
    if (t._ref) this.refs++;
    this.siftUp(t._index);
  }

  private heapRemove(i: number): void {
    const h = this.heap;
    const t = h[i];
    const last = h.pop()!;
    if (t._ref) this.refs--;
    t._index = -1;
    if (last !== t) {
      h[i] = last;
      last._index = i;
      this.siftDown(i);
      this.siftUp(last._index);
    }
  }

  private static before(a: Timer, b: Timer): boolean {
    return a._deadline < b._deadline || (a._deadline === b._deadline && a._seq < b._seq);
  }

  private siftUp(i: number): void {
    const h = this.heap;
    const t = h[i];
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!EventLoop.before(t, h[p])) break;
      h[i] = h[p];
      h[i]._index = i;
      i = p;
    }
    h[i] = t;
    t._index = i;
  }

  private siftDown(i: number): void {
    const h = this.heap;
    const n = h.length;
    const t = h[i];
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && EventLoop.before(h[c + 1], h[c])) c++;
      if (!EventLoop.before(h[c], t)) break;
      h[i] = h[c];
      h[i]._index = i;
      i = c;
    }
    h[i] = t;
    t._index = i;
  }

  // ---- hooks (LoopHooks) --------------------------------------------------

  /** cb runs before every wait of this loop (and, when attached, before every blocking poll of Node's loop). Returns a remover. */
  onPrepare(cb: () => void): () => void {
    fnArg(cb, 'cb');
    this.prepareHooks = [...this.prepareHooks, cb];
    this.changed();
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      const i = this.prepareHooks.indexOf(cb);
      if (i >= 0) this.prepareHooks = this.prepareHooks.filter((_, j) => j !== i);
      this.changed();
    };
  }

  /** cb runs when fd is readable (level-triggered). Returns a remover (call it before closing fd). */
  watchReadable(fd: number, cb: () => void): () => void {
    fnArg(cb, 'cb');
    const w = this.watch(fd, Interest.READABLE, () => cb());
    return () => w.close();
  }

  // ---- wakeup from other threads ------------------------------------------

  /**
   * The fd another thread writes to wake this loop: pass the number to a
   * worker and call EventLoop.wake(fd) there. An eventfd on Linux, else the
   * write end of a pipe. Created on first use.
   */
  get wakeupFd(): number {
    if (this.wakeW < 0) this.createWakeup();
    return this.wakeW;
  }

  /**
   * Called after wakeup() / EventLoop.wake(loop.wakeupFd) from any thread
   * (several wakes before the loop gets to run are delivered as one). While
   * it is set, the loop stays alive waiting for wakeups, like a libuv async
   * handle; set it to null to let run() end.
   */
  get onwakeup(): (() => void) | null {
    return this.wakeCallback;
  }
  set onwakeup(cb: (() => void) | null) {
    if (cb !== null) fnArg(cb, 'onwakeup');
    this.wakeCallback = cb;
    if (cb !== null && this.wakeW < 0) this.createWakeup();
    if (this.wakeWatcher) this._setRef(this.wakeWatcher, cb !== null);
  }

  /** Wakes the loop (from this thread; other threads use EventLoop.wake(loop.wakeupFd)). */
  wakeup(): void {
    EventLoop.wake(this.wakeupFd);
  }

  private createWakeup(): void {
    this.checkOpen('wakeup');
    let r: number, w: number;
    try {
      r = w = sys.eventfd(0);
    } catch {
      [r, w] = sys.pipe();
    }
    try {
      this.wakeWatcher = this.watch(r, Interest.READABLE, this.onWakeFd).unref();
    } catch (err) {
      sys.close(r);
      if (w !== r) sys.close(w);
      throw err;
    }
    // The Poller owns them from now on: they close with it, also when the loop
    // is garbage collected unclosed or its worker thread ends (found by
    // test/leaks.test.ts: 300 dropped loops left 300 eventfds behind).
    this.poller._adopt(r);
    if (w !== r) this.poller._adopt(w);
    this.wakeR = r;
    this.wakeW = w;
  }

  private readonly onWakeFd = (): void => {
    while (native.sys.read(this.wakeR, DRAIN, 0, DRAIN.length) > 0) {
      // drained: an eventfd reads its whole counter at once, a pipe 64 bytes at a time
    }
    this.stats.wakeups++;
    const cb = this.wakeCallback;
    if (cb) cb();
  };

  // ---- running: owned mode ------------------------------------------------

  /**
   * Owned mode: runs until stop() or until nothing keeps the loop alive.
   * The thread blocks in the multiplexer, as a C event loop does; between
   * iterations, promise jobs (await in callbacks) and process.nextTick
   * callbacks run. Resolves when the loop stops; rejects (and stops) if a
   * callback throws.
   *
   * options.drain chooses how they run (docs/loop.md has the measured cost):
   *  - 'jobs' (default): the loop runs inside one process.nextTick callback
   *    and drains Node's tick and microtask queues after every iteration
   *    (process._tickCallback, what Node's own timers call between two
   *    timers). Node's timers and I/O wait until run() returns: use attach()
   *    to mix the two. Where that function is missing, 'node' is used.
   *  - 'node': each iteration is a setImmediate callback, so a whole turn of
   *    Node's loop (its timers and I/O too) runs between iterations, at the
   *    cost of one more poll of Node's own loop per iteration.
   */
  run(options: RunOptions = {}): Promise<void> {
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${typeOf(options)}`);
    const drain = options.drain ?? 'jobs';
    if (drain !== 'jobs' && drain !== 'node') throw new TypeError(`options.drain must be 'jobs' or 'node', got ${typeOf(drain)}`);
    this.enterRun();
    return new Promise<void>((resolve, reject) => {
      const more = (): boolean => !this.stopRequested && this.alive && !this.isClosed;
      const finish = (failed: boolean, err: unknown): void => {
        this.leaveRun();
        if (failed) reject(err);
        else resolve();
      };
      if (drain === 'jobs' && drainJobs !== null) {
        const jobs = drainJobs;
        process.nextTick(() => {
          try {
            while (more()) {
              this.iterate(-1);
              jobs.call(process);
            }
          } catch (err) {
            finish(true, err);
            return;
          }
          finish(false, undefined);
        });
        return;
      }
      const step = (): void => {
        try {
          if (more()) this.iterate(-1);
        } catch (err) {
          finish(true, err);
          return;
        }
        if (more()) setImmediate(step);
        else finish(false, undefined);
      };
      setImmediate(step);
    });
  }

  /**
   * Owned mode without promise jobs: a plain synchronous loop. It is the
   * cheapest way to run (see docs/loop.md for the cost of run()), but a
   * promise resolved inside a callback settles only after runSync() returns.
   */
  runSync(): void {
    this.enterRun();
    try {
      while (!this.stopRequested && this.alive && !this.isClosed) this.iterate(-1);
    } finally {
      this.leaveRun();
    }
  }

  /**
   * One iteration: waits at most `timeout` ms (default: until something is
   * due; 0 polls), then runs ready callbacks, due timers and immediates.
   * Does not block when nothing keeps the loop alive. Returns the number of
   * (fd, events) pairs the wait returned.
   */
  runOnce(timeout = -1): number {
    this.checkOpen('runOnce');
    if (this.dispatching) throw new InvalidStateError('runOnce() cannot be called from inside a loop callback');
    if (typeof timeout !== 'number' || Number.isNaN(timeout)) throw new TypeError(`timeout must be a number of milliseconds, got ${typeOf(timeout)}`);
    let cap: number;
    if (timeout < 0) cap = this.alive ? -1 : 0;
    else cap = timeout === 0 ? 0 : monotonicMs() + timeout;
    const n = this.iterate(cap);
    if (this.closeRequested && !this.running) this.close();
    return n;
  }

  /** Makes run()/runSync() return after the current iteration; detaches an attached loop. */
  stop(): void {
    if (this.running) this.stopRequested = true;
    if (this.embed) this.detach();
  }

  /**
   * Closes every watcher (the fds stay open: they are yours), cancels the
   * timers and immediates, closes the wakeup fd and the Poller. Inside a
   * running loop, this happens when run() returns.
   */
  close(): void {
    if (this.isClosed) return;
    if (this.running || this.dispatching) {
      this.closeRequested = true;
      this.stopRequested = this.running;
      return;
    }
    this.detach();
    for (const w of this.byFd) if (w) w.close();
    this.byFd = [];
    for (const t of this.heap) t._index = -1;
    this.heap = [];
    for (const im of this.immQueue) im._pending = false;
    this.immQueue = [];
    this.immCount = 0;
    this.refs = 0;
    this.prepareHooks = [];
    this.wakeR = this.wakeW = -1; // closed by the Poller, which adopted them
    this.wakeWatcher = null;
    this.poller.close();
    this.isClosed = true;
    this.closeRequested = false;
  }

  private enterRun(): void {
    this.checkOpen('run');
    if (this.running) throw new InvalidStateError('the loop is already running');
    if (this.embed) throw new InvalidStateError('the loop is attached to Node\'s loop: detach() it before run()');
    if (this.dispatching) throw new InvalidStateError('run() cannot be called from inside a loop callback');
    this.running = true;
    this.stopRequested = false;
    this.lastAfter = monotonicMs();
  }

  private leaveRun(): void {
    this.running = false;
    this.stopRequested = false;
    if (this.closeRequested) this.close();
  }

  private checkOpen(op: string): void {
    if (this.isClosed) throw new ErrnoError(EBADF, op, 'the EventLoop is closed');
  }

  /**
   * One iteration. cap: -1 (wait until the next timer, or forever), 0 (poll),
   * or an absolute monotonicMs() deadline.
   */
  private iterate(cap: number): number {
    this.dispatching = true;
    try {
      const hooks = this.prepareHooks;
      for (let i = 0; i < hooks.length; i++) hooks[i]();
      let deadline = -1;
      if (cap === 0 || this.immCount > 0 || this.stopRequested || this.closeRequested) {
        deadline = 0;
      } else {
        if (this.heap.length > 0) deadline = this.heap[0]._deadline;
        if (cap > 0 && (deadline < 0 || cap < deadline)) deadline = cap;
      }
      const clock = this.clock;
      const n = this.poller.waitUntil(deadline, clock);
      const before = clock[0];
      const after = clock[1];
      const st = this.stats;
      st.waitCalls++;
      st.blockedNs += (after - before) * 1e6;
      st.callbackNs += (before - this.lastAfter) * 1e6;
      this.lastAfter = after;
      st.histogram[n === 0 ? 0 : 32 - Math.clz32(n)]++;
      if (n > 0) this.dispatch(n);
      const fired = this.heap.length > 0 && this.heap[0]._deadline <= after ? this.runTimers(after) : 0;
      if (this.immCount > 0) this.runImmediates();
      if (n === 0 && fired === 0 && deadline !== 0) st.emptyWakeups++;
      st.iterations++;
      return n;
    } finally {
      this.dispatching = false;
    }
  }

  private dispatch(n: number): void {
    const ev = this.events;
    const byFd = this.byFd;
    // A watcher made during this batch (its fd number may be a reused one)
    // gets nothing from it; a watcher closed during it is gone from byFd.
    const limit = this.nextId;
    const st = this.stats;
    for (let i = 0; i < n; i++) {
      const fd = ev[2 * i];
      if (fd >= byFd.length) continue;
      const w = byFd[fd];
      if (w === undefined || w._id >= limit) continue;
      const bits = ev[2 * i + 1] & (w._interest | ALWAYS);
      if (w._interest === 0 || bits === 0) continue;
      if (w._mode & Mode.ONESHOT) {
        w._armed = false;
        this.embedDirty = true;
      }
      st.eventsDelivered++;
      w.callback(fd, bits);
    }
  }

  private runTimers(now: number): number {
    const h = this.heap;
    let fired = 0;
    while (h.length > 0 && h[0]._deadline <= now) {
      const t = h[0];
      this.heapRemove(0);
      if (t.repeat > 0) {
        let next = t._deadline + t.repeat;
        if (next <= now) next = now + t.repeat;
        t._deadline = next;
        t._seq = this.timerSeq++;
        this.heapPush(t);
      }
      fired++;
      this.stats.timersFired++;
      t.callback();
    }
    return fired;
  }

  private runImmediates(): void {
    const q = this.immQueue;
    this.immQueue = this.immSpare;
    let i = 0;
    try {
      for (; i < q.length; i++) {
        const im = q[i];
        if (!im._pending) continue;
        im._pending = false;
        this.immCount--;
        this.stats.immediatesRun++;
        im.callback();
      }
    } finally {
      if (i + 1 < q.length) {
        // A callback threw: the ones after it keep their place, first in line.
        const rest = q.slice(i + 1);
        for (const im of this.immQueue) rest.push(im);
        this.immQueue = rest;
      }
      q.length = 0;
      this.immSpare = q;
    }
  }

  // ---- running: embedded mode ---------------------------------------------

  /**
   * Embedded mode: Node's own loop drives this one. Epoll, kqueue and
   * io_uring are watched through their pollable fd (a uv_poll_t); select and
   * poll through a helper thread that polls a copy of the interest set.
   * While attached and alive (ref'd watchers or timers), the process stays up.
   */
  attach(): this {
    this.checkOpen('attach');
    if (this.embed) return this;
    if (this.running) throw new InvalidStateError('the loop is running in owned mode: stop it before attach()');
    const e = new native.LoopEmbed(this.onEmbedReady, this.onEmbedPrepare) as EmbedHandle;
    const pfd = this.poller.fd;
    const rc = pfd >= 0 ? e.pollFd(pfd) : e.startThread();
    if (rc < 0) {
      e.close();
      throw new ErrnoError(-rc, pfd >= 0 ? 'uv_poll_start' : 'pthread_create');
    }
    this.embed = e;
    this.embedThread = pfd < 0;
    this.helperArmed = false;
    this.embedDirty = true;
    // A new uv handle keeps Node's loop alive (libuv refs it): scheduleEmbedded()
    // unrefs it unless the loop is alive. (Assuming false here kept a process
    // with an attached, idle loop up forever: found by test/lifecycle.test.ts.)
    this.embedRef = true;
    this.embedPrepare = false;
    this.scheduleEmbedded();
    return this;
  }

  /** Leaves Node's loop; watchers, timers and immediates stay, for run() or a later attach(). */
  detach(): void {
    const e = this.embed;
    if (!e) return;
    this.embed = null;
    e.close();
    if (this.nodeTimer) clearTimeout(this.nodeTimer);
    if (this.nodeImmediate) clearImmediate(this.nodeImmediate);
    this.nodeTimer = null;
    this.nodeTimerDeadline = -1;
    this.nodeImmediate = null;
    this.helperArmed = false;
  }

  /** How many times the select/poll helper thread woke the loop (0 for the other backends). */
  get helperSignals(): number {
    return this.embed ? this.embed.signals() : 0;
  }

  private readonly onEmbedReady = (status: number): void => {
    if (this.embedThread) this.helperArmed = false;
    if (status < 0 && this.embed) {
      // The pollable fd went bad: nothing sensible can be watched any more.
      this.detach();
      throw new ErrnoError(-status, 'uv_poll');
    }
    this.tick();
  };

  private readonly onEmbedPrepare = (): void => {
    const hooks = this.prepareHooks;
    for (let i = 0; i < hooks.length; i++) hooks[i]();
  };

  private readonly onNodeTimer = (): void => {
    this.nodeTimer = null;
    this.nodeTimerDeadline = -1;
    this.tick();
  };

  private readonly onNodeImmediate = (): void => {
    this.nodeImmediate = null;
    this.tick();
  };

  private tick(): void {
    if (!this.embed || this.dispatching || this.isClosed) return;
    this.inTick = true;
    try {
      for (let rounds = 0; ; rounds++) {
        const n = this.iterate(0);
        if (!this.flushUntilEmpty || n === 0 || !this.embed) break;
        if (rounds === 16) {
          this.embedDirty = true; // come back soon, after Node had its turn
          if (!this.nodeImmediate) this.nodeImmediate = setImmediate(this.onNodeImmediate);
          break;
        }
      }
    } finally {
      this.inTick = false;
      if (this.closeRequested) this.close();
      else this.scheduleEmbedded();
    }
  }

  // Something that affects the schedule changed outside a tick: recompute it
  // once the current JS job is done.
  private changed(): void {
    if (this.embed === null) return;
    this.embedDirty = true;
    if (this.inTick || this.dispatching || this.embedScheduled) return;
    this.embedScheduled = true;
    queueMicrotask(this.scheduleEmbedded);
  }

  // Before a registration is removed: the helper thread must not be inside
  // poll(2) on that fd when the caller closes it.
  private beforeRemove(): void {
    if (this.embed && this.embedThread && this.helperArmed) {
      this.embed.disarm();
      this.helperArmed = false;
    }
  }

  private readonly scheduleEmbedded = (): void => {
    this.embedScheduled = false;
    const e = this.embed;
    if (!e) return;
    if (this.embedThread && (!this.helperArmed || this.embedDirty)) {
      const count = this.fillInterestSet();
      e.arm(this.interestSet, count);
      this.helperArmed = true;
    }
    this.embedDirty = false;
    if (this.immCount > 0 && !this.nodeImmediate) this.nodeImmediate = setImmediate(this.onNodeImmediate);
    const next = this.heap.length > 0 ? this.heap[0]._deadline : -1;
    if (next !== this.nodeTimerDeadline) {
      if (this.nodeTimer) clearTimeout(this.nodeTimer);
      this.nodeTimer = null;
      if (next >= 0) {
        this.nodeTimer = setTimeout(this.onNodeTimer, Math.max(1, Math.ceil(next - monotonicMs())));
        this.nodeTimer.unref();
      }
      this.nodeTimerDeadline = next;
    }
    const alive = this.alive;
    if (alive !== this.embedRef) {
      e.ref(alive);
      this.embedRef = alive;
    }
    const prep = this.prepareHooks.length > 0;
    if (prep !== this.embedPrepare) {
      e.prepare(prep);
      this.embedPrepare = prep;
    }
  };

  private fillInterestSet(): number {
    let count = 0;
    for (const w of this.byFd) {
      if (w === undefined || w._interest === 0 || !w._armed) continue;
      if (2 * count + 2 > this.interestSet.length) {
        const bigger = new Int32Array(this.interestSet.length * 2);
        bigger.set(this.interestSet);
        this.interestSet = bigger;
      }
      this.interestSet[2 * count] = w.fd;
      this.interestSet[2 * count + 1] = w._interest;
      count++;
    }
    return count;
  }
}

interface EmbedHandle {
  pollFd(fd: number): number;
  startThread(): number;
  arm(pairs: Int32Array, count: number): number;
  disarm(): number;
  prepare(on: boolean): number;
  ref(on: boolean): number;
  close(): void;
  signals(): number;
}

