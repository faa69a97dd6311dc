// Types shared by the EventLoop (lib/loop.ts) and the code that plugs into
// it: the io_uring Ring (lib/ring.ts) codes against LoopHooks only.

/** Called with the fd and the Interest bits that are ready (ERROR and HANGUP included). */
export type WatchCallback = (fd: number, events: number) => void;

/** What a completion engine (the Ring) needs from a loop to be driven by it. */
export interface LoopHooks {
  /** cb runs before every blocking wait (the Ring submits its queued SQEs there). Returns a remover. */
  onPrepare(cb: () => void): () => void;
  /** cb runs when fd is readable (level-triggered). Returns a remover. */
  watchReadable(fd: number, cb: () => void): () => void;
}

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
