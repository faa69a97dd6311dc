// iomux objects left open on purpose, for the lifecycle scenarios
// (test/children/lifecycle.ts and its worker thread): each with work
// pending, none ever closed. Each function also returns the fds it made
// itself, so that a test can look for them after the objects are gone.
import { EventLoop } from '../../lib/loop';
import { Poller, type BackendName } from '../../lib/poller';
import { Ring } from '../../lib/ring';
import * as sys from '../../lib/sys';

/** A Poller per backend, watching a readable pipe and an idle one, after a wait. fds[2] is the first idle read end. */
export function livePollers(backends: readonly BackendName[]): { pollers: Poller[]; fds: number[] } {
  const pollers: Poller[] = [];
  const fds: number[] = [];
  for (const name of backends) {
    const p = new Poller(name);
    const [r, w] = sys.pipe();
    const [idle, idleW] = sys.pipe();
    sys.write(w, Buffer.from('x'));
    p.add(r, 1);
    p.add(idle, 1);
    p.wait(0);
    pollers.push(p);
    fds.push(r, w, idle, idleW);
  }
  return { pollers, fds };
}

/**
 * An EventLoop per backend with a watcher, a 60 s timer and its wakeup fd,
 * after one iteration; then one loop attached to Node's loop (unref'd, so
 * that it does not keep the thread alive by itself) for each of `attached`
 * that is among `backends`.
 */
export function liveLoops(backends: readonly BackendName[], attached: readonly BackendName[]): { loops: EventLoop[]; fds: number[] } {
  const loops: EventLoop[] = [];
  const fds: number[] = [];
  for (const name of backends) {
    const loop = new EventLoop(name);
    const [r, w] = sys.pipe();
    sys.write(w, Buffer.from('x'));
    loop.watch(r, 1, () => {});
    loop.setTimeout(() => {}, 60_000);
    void loop.wakeupFd;
    loop.runOnce(0);
    loops.push(loop);
    fds.push(r, w);
  }
  for (const name of attached.filter((b) => backends.includes(b))) {
    const loop = new EventLoop(name);
    const [r, w] = sys.pipe();
    loop.watch(r, 1, () => {}).unref();
    void loop.wakeupFd;
    loop.attach();
    loops.push(loop);
    fds.push(r, w);
  }
  return { loops, fds };
}

/** A Ring with a recv and a timeout pending, where io_uring is there (none otherwise). */
export function liveRings(): { rings: Ring[]; fds: number[] } {
  if (!Ring.probe().available) return { rings: [], fds: [] };
  const ring = new Ring({ entries: 8, bufferCount: 8, bufferSize: 256 });
  const [a, b] = sys.socketpair();
  ring.recv(a, 1);
  ring.timeout(60_000, 2);
  ring.submit();
  return { rings: [ring], fds: [a, b] };
}
