// Which backends this machine has, for suites that run on every available one.
import { Poller, backends, type BackendName, type BackendStatus, type PollerOptions } from '../../lib/poller';
import { ErrnoError } from '../../lib/errors';
import { Ring, type RingOptions } from '../../lib/ring';

export const statuses: BackendStatus[] = probe();

// backends(), probed again if it ran inside the window described at newPoller().
function probe(): BackendStatus[] {
  for (let attempt = 0; ; attempt++) {
    const list = backends();
    const uring = list.find((b) => b.name === 'io_uring');
    if (!uring || uring.available || !/io_uring_disabled=2/.test(uring.reason ?? '') || attempt >= 1000) return list;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  }
}
export const available: BackendName[] = statuses.filter((b) => b.available).map((b) => b.name);
export const unavailable: BackendStatus[] = statuses.filter((b) => !b.available);

/** Prints, once per file, which backends a suite skips and why. */
export function noteUnavailable(suite: string): void {
  for (const b of unavailable) console.log(`[${suite}] backend ${b.name} skipped: ${b.reason}`);
}

/**
 * new Poller(name), riding out the sub-millisecond window in which
 * test/uring-unavailable.test.ts has kernel.io_uring_disabled=2 set for the
 * whole machine (a sysctl cannot be set per process): an io_uring Poller
 * created in that window fails with EPERM and a reason naming the sysctl.
 */
export function newPoller(name: BackendName, options?: PollerOptions): Poller {
  for (let attempt = 0; ; attempt++) {
    try {
      return new Poller(name, options);
    } catch (err) {
      const sysctl = err instanceof ErrnoError && err.code === 'EPERM' && /io_uring_disabled/.test(err.message);
      if (!sysctl || attempt >= 5000) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

/** new Ring(options), riding out the same window as newPoller(). */
export function newRing(options?: RingOptions): Ring {
  for (let attempt = 0; ; attempt++) {
    try {
      return new Ring(options);
    } catch (err) {
      const sysctl = err instanceof ErrnoError && err.code === 'EPERM' && /io_uring_disabled/.test(err.message);
      if (!sysctl || attempt >= 5000) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}
