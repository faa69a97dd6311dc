// `reactor-pool`: the reactor (one EventLoop owning the thread, handlers in
// JS), with CPU work (/work?us=N) handed to a pool of worker_threads
// (work-pool.ts) so that one slow request no longer stalls the others. A
// connection's responses still leave in request order: those behind CPU work
// wait for it (reactor-core.ts, Conn.held), even when later work finishes first.
import { Interest } from '../poller';
import { COUNTERS, ReactorCore } from './reactor-core';
import { OwnedReactor, openReactor } from './reactor';
import { workerCount } from './loop-options';
import { CpuPool } from './work-pool';
import type { Arch, RunningServer, ServeOptions, ServerStats } from './types';

async function start(o: ServeOptions): Promise<RunningServer> {
  const size = workerCount(o.workers);
  const pool = await CpuPool.start(size);
  let opened: ReturnType<typeof openReactor>;
  try {
    opened = openReactor(
      o,
      (loop, edge) => new ReactorCore({ loop, protocol: o.protocol, edge, counters: new Float64Array(COUNTERS), graceMs: o.graceMs ?? 2000, pool }),
    );
  } catch (err) {
    await pool.close();
    throw err;
  }
  const { loop, core, port } = opened;
  const workDone = (token: number): void => core.workDone(token);
  const watcher = loop.watch(pool.fd, Interest.READABLE, () => pool.drain(workDone));
  const stats = (): ServerStats => {
    const s: ServerStats = { workers: size, workDone: pool.done.reduce((a, b) => a + b, 0) };
    for (let i = 0; i < size; i++) s[`workDone_w${i}`] = pool.done[i];
    return s;
  };
  return new OwnedReactor(
    o.host,
    port,
    loop,
    core,
    async () => {
      watcher.close();
      await pool.close(o.graceMs ?? 2000);
    },
    stats,
  );
}

export const reactorPoolArch: Arch = {
  name: 'reactor-pool',
  summary: 'reactor + worker_threads pool for the CPU work (--workers N, default: cores), replies kept in order',
  options: ['backend', 'mode', 'workers'],
  availability: () => ({ available: true }),
  start,
};
