// Shared by the EventLoop and TCP tests.
import type { EventLoop } from '../../lib/loop';

/** run() with a safety net: an unref'd timer stops the loop after `ms` and reports it. */
export async function runFor(loop: EventLoop, ms = 20_000): Promise<{ timedOut: boolean }> {
  const r = { timedOut: false };
  const t = loop.setTimeout(() => {
    r.timedOut = true;
    loop.stop();
  }, ms).unref();
  await loop.run();
  loop.clearTimer(t);
  return r;
}
