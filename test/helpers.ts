// Shared test helpers: the backends to run against, and fd pairs of each kind.
import * as fs from 'node:fs';
import { backends, sys, type BackendName } from '../lib/index';

const all = backends();
/** Names of the backends available here. */
export const availableBackends: BackendName[] = all.filter((b) => b.available).map((b) => b.name);
/** [name, reason] for each backend that is not available here. */
export const unavailableBackends: Array<[BackendName, string]> = all
  .filter((b) => !b.available)
  .map((b) => [b.name, b.reason ?? 'unavailable']);

/** A connected TCP pair over 127.0.0.1: [client, server], both non-blocking. */
export function tcpPair(): [number, number] {
  const lfd = sys.listenTcp('127.0.0.1', 0);
  try {
    const { port } = sys.getsockname(lfd);
    const c = sys.socket('ipv4');
    const rc = sys.connect(c, '127.0.0.1', port!);
    if (rc !== 0 && rc !== sys.EINPROGRESS) throw new Error(`connect returned ${rc}`);
    let s = -1;
    for (let i = 0; i < 1000 && s < 0; i++) {
      s = sys.accept(lfd);
      if (s < 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
    if (s < 0) throw new Error('accept never completed');
    return [c, s];
  } finally {
    sys.close(lfd);
  }
}

export type PairKind = 'pipe' | 'socketpair' | 'tcp';
export const pairKinds: PairKind[] = ['pipe', 'socketpair', 'tcp'];

/** [reader, writer]: for a pipe the read and write ends; for sockets the two ends. */
export function makePair(kind: PairKind): [number, number] {
  if (kind === 'pipe') return sys.pipe();
  if (kind === 'socketpair') return sys.socketpair();
  const [c, s] = tcpPair();
  return [s, c];
}

/** Reads until EAGAIN; returns the bytes read. */
export function drain(fd: number): number {
  const buf = Buffer.alloc(65536);
  let total = 0;
  for (;;) {
    const n = sys.read(fd, buf);
    if (n <= 0) return total;
    total += n;
  }
}

export function closeAll(...fds: number[]): void {
  for (const fd of fds) {
    try {
      sys.close(fd);
    } catch {
      /* already closed by the test */
    }
  }
}

export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** The (fd -> events) map of the last wait. */
export function eventsOf(p: { events: Int32Array }, n: number): Map<number, number> {
  const m = new Map<number, number>();
  for (let i = 0; i < n; i++) m.set(p.events[2 * i], (m.get(p.events[2 * i]) ?? 0) | p.events[2 * i + 1]);
  return m;
}
