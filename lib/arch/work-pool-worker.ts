// One worker of reactor-pool's CPU pool (work-pool.ts): takes (token, us)
// jobs from the shared queue, burns us µs, puts the token into its result
// ring, and wakes the reactor through its eventfd when no wakeup is pending.
import { workerData } from 'node:worker_threads';
import { EventLoop } from '../loop';
import { burnMicros } from '../lab/protocol';
import { CTL_WAKE, POOL_CAPACITY, Q_BASE, Q_HEAD, Q_STOP, Q_TAIL, R_BASE, R_TAIL, type PoolWorkerData } from './work-pool';

const MASK = POOL_CAPACITY - 1;
const data = workerData as PoolWorkerData;
const q = new Int32Array(data.jobs);
const r = new Int32Array(data.results);
const ctl = new Int32Array(data.ctl);

for (;;) {
  if (Atomics.load(q, Q_STOP) !== 0) break;
  const h = Atomics.load(q, Q_HEAD);
  const t = Atomics.load(q, Q_TAIL);
  if (h === t) {
    Atomics.wait(q, Q_TAIL, t, 1000);
    continue;
  }
  const slot = Q_BASE + 2 * (h & MASK);
  const token = q[slot];
  const us = q[slot + 1];
  // Another worker may have taken it meanwhile: then the slot's contents are
  // not ours (and may already be a newer job); try again.
  if (Atomics.compareExchange(q, Q_HEAD, h, (h + 1) | 0) !== h) continue;
  burnMicros(us);
  const rt = r[R_TAIL];
  r[R_BASE + (rt & MASK)] = token;
  Atomics.store(r, R_TAIL, (rt + 1) | 0);
  if (Atomics.exchange(ctl, CTL_WAKE, 1) === 0) EventLoop.wake(data.wakeFd);
}
