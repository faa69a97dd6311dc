// Ring: io_uring as a completion engine. Skipped, with the reason printed,
// where io_uring cannot be used. Timing appears only as generous bounds.
import { afterEach, describe, expect, it } from 'vitest';
import * as os from 'node:os';
import { CompletionFlags, ErrnoError, Poller, Ring, backends, sys, type RingOptions } from '../lib/index';
import type { LoopHooks } from '../lib/loop-types';

const E = os.constants.errno;
const probe = Ring.probe();
const skip = !probe.available;
if (skip) console.log(`ring: skipping the Ring tests: ${probe.reason}`);
/** Backends a stand-in loop can watch the ring fd with. */
const loopBackends = backends()
  .filter((b) => b.available)
  .map((b) => b.name);

/** One completion, copied out of the Ring's tuple array. */
interface Cqe {
  ud: number;
  res: number;
  flags: number;
  bid: number;
}

function tuples(ring: Ring, n: number): Cqe[] {
  const c = ring.completions;
  const out: Cqe[] = [];
  for (let i = 0; i < n; i++) out.push({ ud: c[4 * i] >>> 0, res: c[4 * i + 1], flags: c[4 * i + 2], bid: c[4 * i + 3] });
  return out;
}

/** Waits for completions until `done` says stop (bounded: 10 s). */
function pump(ring: Ring, onCqe: (c: Cqe) => void, done: () => boolean, limitMs = 10_000): void {
  const deadline = Date.now() + limitMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('pump: condition not reached within the limit');
    const n = ring.submitAndWait(1, 20);
    for (const c of tuples(ring, n)) onCqe(c);
  }
}

function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

function readAll(fd: number, want: number, ring?: Ring): Buffer {
  const out: Buffer[] = [];
  let got = 0;
  const buf = Buffer.alloc(65536);
  const deadline = Date.now() + 10_000;
  while (got < want) {
    if (Date.now() > deadline) throw new Error(`readAll: got ${got} of ${want} bytes`);
    const n = sys.read(fd, buf);
    if (n > 0) {
      out.push(Buffer.from(buf.subarray(0, n)));
      got += n;
    } else if (n === 0) break;
    else if (ring) ring.submitAndWait(0, 0);
  }
  return Buffer.concat(out);
}

describe.skipIf(skip)('Ring', () => {
  const rings: Ring[] = [];
  const fds: number[] = [];
  const ring = (o?: RingOptions) => {
    const r = new Ring(o);
    rings.push(r);
    return r;
  };
  const pair = () => {
    const p = sys.socketpair();
    fds.push(...p);
    return p;
  };
  afterEach(() => {
    for (const r of rings.splice(0)) r.close();
    for (const fd of fds.splice(0)) {
      try {
        sys.close(fd);
      } catch {
        /* closed by the test */
      }
    }
  });

  it('describes itself', () => {
    const r = ring({ entries: 8, bufferCount: 4, bufferSize: 128 });
    expect(r.fd).toBeGreaterThanOrEqual(0);
    expect(r.entries).toBe(8);
    expect(r.cqEntries).toBeGreaterThanOrEqual(8);
    expect(r.setupFlags).toContain('SUBMIT_ALL');
    expect(r.buffers).toBeInstanceOf(ArrayBuffer);
    expect(r.buffers!.byteLength).toBe(4 * 128);
    expect(r.buffersFree).toBe(4);
    expect(r.pending).toBe(0);
  });

  it('echoes over a socketpair, reading in place from the buffer ring', () => {
    const r = ring({ bufferCount: 8, bufferSize: 1024 });
    const [a, b] = pair();
    r.recv(a, 1);
    const sent: Buffer[] = [];
    for (let round = 0; round < 20; round++) {
      const msg = bytes(100 + round * 37, round + 1);
      sent.push(msg);
      expect(sys.write(b, msg)).toBe(msg.length);
      let echoed = false;
      pump(
        r,
        (c) => {
          if (c.ud === 1) {
            expect(c.flags & CompletionFlags.MORE).toBeTruthy(); // multishot stays armed
            expect(c.flags & CompletionFlags.BUFFER).toBeTruthy();
            const view = r.buffer(c.bid, c.res);
            expect(view.buffer).toBe(r.buffers); // no copy: a view of the ring's memory
            r.send(a, Buffer.from(view), 2);
            r.returnBuffer(c.bid);
          } else if (c.ud === 2) {
            expect(c.res).toBe(msg.length);
            echoed = true;
          }
        },
        () => echoed,
      );
      expect(readAll(b, msg.length).equals(msg)).toBe(true);
    }
    expect(r.buffersFree).toBe(8);
  });

  it('echoes over TCP: multishot accept, recv, send', () => {
    const r = ring();
    const lfd = sys.listenTcp('127.0.0.1', 0);
    fds.push(lfd);
    const port = sys.getsockname(lfd).port!;
    r.accept(lfd, 10);
    const client = sys.socket('ipv4');
    fds.push(client);
    const rc = sys.connect(client, '127.0.0.1', port);
    expect([0, sys.EINPROGRESS]).toContain(rc);
    let conn = -1;
    pump(
      r,
      (c) => {
        expect(c.ud).toBe(10);
        expect(c.res).toBeGreaterThanOrEqual(0);
        conn = c.res;
      },
      () => conn >= 0,
    );
    fds.push(conn);
    r.recv(conn, 11);
    const msg = bytes(5000, 7);
    sys.write(client, msg);
    let echoedBytes = 0;
    pump(
      r,
      (c) => {
        if (c.ud === 11 && c.res > 0) {
          r.send(conn, Buffer.from(r.buffer(c.bid, c.res)), 12, true);
          r.returnBuffer(c.bid);
        } else if (c.ud === 12) {
          expect(c.res).toBeGreaterThan(0);
          echoedBytes += c.res;
        }
      },
      () => echoedBytes === msg.length,
    );
    expect(readAll(client, msg.length).equals(msg)).toBe(true);
    // End of stream: res 0, and the multishot recv is over (no MORE).
    sys.shutdown(client, 'write');
    let eof: Cqe | null = null;
    pump(
      r,
      (c) => {
        if (c.ud === 11) eof = c;
      },
      () => eof !== null,
    );
    expect(eof!.res).toBe(0);
    expect(eof!.flags & CompletionFlags.MORE).toBe(0);
  });

  it('accepts 1000 connections through one multishot accept (re-armed if the kernel ends it)', () => {
    const r = ring({ entries: 64 });
    const lfd = sys.listenTcp('127.0.0.1', 0, { backlog: 2048 });
    fds.push(lfd);
    const port = sys.getsockname(lfd).port!;
    const clients: number[] = [];
    const accepted = new Set<number>();
    let arms = 1;
    r.accept(lfd, 1);
    const onAccept = (c: Cqe) => {
      expect(c.ud).toBe(1);
      if (c.res >= 0) {
        expect(accepted.has(c.res)).toBe(false);
        accepted.add(c.res);
      } else {
        expect([-E.EAGAIN, -E.ECONNABORTED]).toContain(c.res);
      }
      if (!(c.flags & CompletionFlags.MORE)) {
        arms++;
        r.accept(lfd, 1);
      }
    };
    try {
      const N = 1000;
      for (let i = 0; i < N; i++) {
        const fd = sys.socket('ipv4');
        clients.push(fd);
        expect([0, sys.EINPROGRESS]).toContain(sys.connect(fd, '127.0.0.1', port));
        if (i % 100 === 99) {
          // Accept as we go, as a server would.
          const n = r.submitAndWait(0, 0);
          for (const c of tuples(r, n)) onAccept(c);
        }
      }
      pump(r, onAccept, () => accepted.size === N, 20_000);
      expect(accepted.size).toBe(N);
      for (const fd of accepted) expect(sys.getpeername(fd).address).toBe('127.0.0.1');
      expect(arms).toBeGreaterThanOrEqual(1);
    } finally {
      for (const fd of clients) sys.close(fd);
      for (const fd of accepted) sys.close(fd);
    }
  });

  it('recovers from buffer exhaustion: ENOBUFS ends the recv, refill and re-arm, every byte in order', () => {
    const r = ring({ bufferCount: 4, bufferSize: 64, entries: 8 });
    const [a, b] = pair();
    const data = bytes(48 * 1024, 3);
    let written = 0;
    const received: Buffer[] = [];
    let got = 0;
    let rearms = 0;
    let held: number[] = [];
    r.recv(a, 5);
    let sawNoBuffers = false;
    pump(
      r,
      (c) => {
        expect(c.ud).toBe(5);
        if (c.res > 0) {
          received.push(Buffer.from(r.buffer(c.bid, c.res)));
          got += c.res;
          held.push(c.bid); // held until the end of the batch: the ring runs dry
        } else if (c.res === -E.ENOBUFS) {
          sawNoBuffers = true;
          expect(c.flags & CompletionFlags.MORE).toBe(0);
        } else {
          throw new Error(`unexpected res ${c.res}`);
        }
        if (!(c.flags & CompletionFlags.MORE)) {
          // Refill first, then re-arm: the data still in the socket arrives next.
          for (const id of held) r.returnBuffer(id);
          held = [];
          rearms++;
          r.recv(a, 5);
        }
        if (written < data.length) {
          const n = sys.write(b, data, written, Math.min(4096, data.length - written));
          if (n > 0) written += n;
        }
      },
      () => {
        for (const id of held) r.returnBuffer(id);
        held = [];
        if (written < data.length) {
          const n = sys.write(b, data, written, Math.min(4096, data.length - written));
          if (n > 0) written += n;
        }
        return got === data.length;
      },
    );
    expect(sawNoBuffers).toBe(true);
    expect(rearms).toBeGreaterThan(0);
    expect(r.stats.noBuffers).toBeGreaterThan(0);
    expect(Buffer.concat(received).equals(data)).toBe(true);
  });

  it('cancels by user data and by fd', () => {
    const r = ring();
    const [a] = pair();
    const [c2] = pair();
    r.recv(a, 1);
    r.timeout(60_000, 2);
    r.submit();
    r.cancel(1, 100);
    r.cancel(2, 101);
    r.cancel(12345, 102); // nothing has that user data
    const seen = new Map<number, Cqe>();
    pump(r, (c) => seen.set(c.ud, c), () => seen.size === 5);
    expect(seen.get(1)!.res).toBe(-E.ECANCELED);
    expect(seen.get(1)!.flags & CompletionFlags.MORE).toBe(0);
    expect(seen.get(2)!.res).toBe(-E.ECANCELED);
    expect(seen.get(100)!.res).toBe(1);
    expect(seen.get(101)!.res).toBe(1);
    expect(seen.get(102)!.res).toBe(0); // CANCEL_ALL: how many were cancelled

    r.recv(c2, 3);
    r.poll(c2, 1, 4);
    r.submit();
    r.cancelFd(c2, 200);
    seen.clear();
    pump(r, (c) => seen.set(c.ud, c), () => seen.size === 3);
    expect(seen.get(3)!.res).toBe(-E.ECANCELED);
    expect(seen.get(4)!.res).toBe(-E.ECANCELED);
    expect(seen.get(200)!.res).toBe(2);
    expect(r.pending).toBe(0);
  });

  it('times out: a 50 ms timeout completes with ETIME in 50-2000 ms', () => {
    const r = ring();
    r.timeout(50, 9);
    const t0 = performance.now();
    const n = r.submitAndWait(1, 5000);
    const dt = performance.now() - t0;
    expect(n).toBe(1);
    expect(tuples(r, 1)[0]).toMatchObject({ ud: 9, res: -E.ETIME });
    expect(dt).toBeGreaterThanOrEqual(45);
    expect(dt).toBeLessThan(2000);
    // submitAndWait's own timeout: nothing pending completes, 0 comes back.
    r.timeout(60_000, 10);
    const t1 = performance.now();
    expect(r.submitAndWait(1, 30)).toBe(0);
    expect(performance.now() - t1).toBeGreaterThanOrEqual(25);
    expect(r.pending).toBe(1);
  });

  it('is neither cut short nor broken by a signal during the wait (EINTR)', () => {
    const r = ring();
    // The handler stays installed: a signal delayed past the test (a loaded
    // machine can delay the sending thread) must not kill the process.
    if (process.listenerCount('SIGUSR2') === 0) process.on('SIGUSR2', () => {});
    {
      r.timeout(60_000, 1);
      sys.signalSelfAfter(20, 12 /* SIGUSR2 */);
      const t = performance.now();
      expect(r.submitAndWait(1, 300)).toBe(0);
      const dt = performance.now() - t;
      expect(dt).toBeGreaterThanOrEqual(280);
      expect(dt).toBeLessThan(3000);
      r.timeout(100, 2);
      sys.signalSelfAfter(20, 12);
      expect(r.submitAndWait(1, 5000)).toBe(1);
      expect(tuples(r, 1)[0]).toMatchObject({ ud: 2, res: -E.ETIME });
    }
  });

  it('loses no completion when the CQ overflows (4-entry CQ, 3-tuple batches, 500 requests)', () => {
    const r = ring({ entries: 4, cqEntries: 4, capacity: 3, bufferCount: 0 });
    expect(r.cqEntries).toBe(4);
    const N = 500;
    for (let i = 0; i < N; i++) r.nop(i); // SQ full every 4: submitted early, CQ overflows
    const seen = new Uint8Array(N);
    let total = 0;
    const deadline = Date.now() + 10_000;
    while (total < N && Date.now() < deadline) {
      const n = r.submitAndWait(1, 100);
      for (const c of tuples(r, n)) {
        expect(c.res).toBe(0);
        seen[c.ud]++;
        total++;
      }
    }
    expect(total).toBe(N);
    expect(seen.every((v) => v === 1)).toBe(true);
    const s = r.stats;
    expect(s.sqFull).toBeGreaterThan(0);
    expect(s.overflowFlushes).toBeGreaterThan(0);
    expect(s.reaped).toBe(N);
    expect(s.lost).toBe(0);
    expect(r.pending).toBe(0);
  });

  it('loses no received byte when a multishot recv is ended by CQ overflow', () => {
    const r = ring({ entries: 2, cqEntries: 2, capacity: 1, bufferCount: 256, bufferSize: 32 });
    const [a, b] = pair();
    const data = bytes(6000, 11);
    expect(sys.write(b, data)).toBe(data.length);
    r.recv(a, 1);
    const got: Buffer[] = [];
    let n = 0;
    let rearms = 0;
    pump(
      r,
      (c) => {
        if (c.res > 0) {
          got.push(Buffer.from(r.buffer(c.bid, c.res)));
          n += c.res;
          r.returnBuffer(c.bid);
        } else expect([-E.ENOBUFS]).toContain(c.res);
        if (!(c.flags & CompletionFlags.MORE)) {
          rearms++;
          r.recv(a, 1);
        }
      },
      () => n === data.length,
    );
    expect(Buffer.concat(got).equals(data)).toBe(true);
    expect(rearms).toBeGreaterThan(0);
    expect(r.stats.overflowFlushes).toBeGreaterThan(0);
    expect(r.stats.lost).toBe(0);
  });

  it('submits a whole batch and waits in one io_uring_enter', () => {
    const r = ring();
    const before = r.stats;
    for (let i = 0; i < 10; i++) r.nop(i);
    expect(r.stats.enters).toBe(before.enters); // queuing makes no syscall
    expect(r.submitAndWait(10, 1000)).toBe(10);
    const after = r.stats;
    expect(after.enters - before.enters).toBe(1);
    expect(after.submitted - before.submitted).toBe(10);
    expect(after.reaped - before.reaped).toBe(10);
    expect(r.submit()).toBe(0); // nothing queued: no syscall
    expect(r.stats.enters).toBe(after.enters);
  });

  it('keeps a sent buffer alive until its completion, and reports failures in res', () => {
    const r = ring();
    const [a, b] = pair();
    r.send(a, Buffer.from('kept alive'), 1);
    if (global.gc) global.gc();
    const [bad] = pair();
    sys.close(bad);
    fds.splice(fds.indexOf(bad), 1);
    r.send(bad, Buffer.from('x'), 2);
    const seen = new Map<number, number>();
    pump(r, (c) => seen.set(c.ud, c.res), () => seen.size === 2);
    expect(seen.get(1)).toBe(10);
    expect(seen.get(2)).toBe(-E.EBADF);
    expect(readAll(b, 10).toString()).toBe('kept alive');
  });

  it('closes an fd through the ring, cancelling what is pending on it first', () => {
    const r = ring();
    const [a, b] = pair();
    r.recv(a, 1);
    r.submit();
    r.closeFd(a, 2, true);
    fds.splice(fds.indexOf(a), 1);
    const seen = new Map<number, Cqe>();
    pump(r, (c) => seen.set(c.ud, c), () => seen.size === 2);
    expect(seen.get(1)!.res).toBe(-E.ECANCELED);
    expect(seen.get(2)!.res).toBe(0);
    expect(sys.read(b, Buffer.alloc(4))).toBe(0); // the peer sees the close
  });

  it('shuts down the write side through the ring', () => {
    const r = ring();
    const [a, b] = pair();
    r.shutdown(a, 'write', 1);
    let res: number | null = null;
    pump(r, (c) => (res = c.res), () => res !== null);
    expect(res).toBe(0);
    expect(sys.read(b, Buffer.alloc(4))).toBe(0);
  });

  it.each(loopBackends)(
    'is driven by an event loop through LoopHooks on %s (submit in prepare, reap when the ring fd is readable)',
    (backend) => {
    // A minimal loop on a Poller stands in for EventLoop here.
    const poller = new Poller(backend);
    const prepares = new Set<() => void>();
    const watchers = new Map<number, () => void>();
    const loop: LoopHooks = {
      onPrepare(cb) {
        prepares.add(cb);
        return () => prepares.delete(cb);
      },
      watchReadable(fd, cb) {
        watchers.set(fd, cb);
        poller.add(fd);
        return () => {
          watchers.delete(fd);
          poller.remove(fd);
        };
      },
    };
    const r = ring();
    const [a, b] = pair();
    const received: string[] = [];
    const detach = r.attach(loop, (n) => {
      for (const c of tuples(r, n)) {
        if (c.ud === 1 && c.res > 0) {
          const text = Buffer.from(r.buffer(c.bid, c.res)).toString();
          received.push(text);
          r.returnBuffer(c.bid);
          r.send(a, Buffer.from(text.toUpperCase()), 2); // queued from a callback: submitted by the next prepare
        }
      }
    });
    r.recv(a, 1);
    const enters0 = r.stats.enters;
    sys.write(b, Buffer.from('ping'));
    const deadline = Date.now() + 5000;
    let iterations = 0;
    while (received.length === 0 || r.pending > 1) {
      if (Date.now() > deadline) throw new Error('loop did not finish');
      for (const cb of prepares) cb();
      const n = poller.wait(50);
      for (let i = 0; i < n; i++) watchers.get(poller.events[2 * i])?.();
      iterations++;
    }
    expect(received).toEqual(['ping']);
    expect(readAll(b, 4).toString()).toBe('PING');
    expect(r.stats.enters - enters0).toBeLessThanOrEqual(iterations); // at most one enter per iteration
    detach();
    expect(prepares.size).toBe(0);
    expect(watchers.size).toBe(0);
    poller.close();
    },
  );

  it('runs on its own until stop(), nothing pending, or its time limit', () => {
    const r = ring();
    r.timeout(10, 1);
    r.timeout(20, 2);
    const seen: number[] = [];
    expect(r.run((n) => seen.push(...tuples(r, n).map((c) => c.ud)))).toBe(2);
    expect(seen).toEqual([1, 2]);
    r.timeout(60_000, 3);
    const t0 = performance.now();
    expect(r.run(() => {}, { timeout: 50 })).toBe(0);
    expect(performance.now() - t0).toBeLessThan(5000);
    r.nop(4);
    r.nop(5);
    let calls = 0;
    r.oncompletions = () => {
      calls++;
      r.stop();
    };
    r.run();
    expect(calls).toBe(1);
  });

  it('drops setup flags the kernel refuses (EINVAL) and retries without them', () => {
    const r = ring({ setupFlags: 1 << 30 });
    expect(r.droppedFlags).toContain('0x40000000');
    expect(r.setupFlags).not.toContain('0x40000000');
    r.nop(1);
    expect(r.submitAndWait(1, 1000)).toBe(1);
  });

  it('throws TypeError/RangeError naming the argument', () => {
    expect(() => new Ring({ entries: 0 })).toThrow(/options\.entries/);
    expect(() => new Ring({ entries: 0 })).toThrow(RangeError);
    expect(() => new Ring({ bufferCount: 3 })).toThrow(RangeError);
    expect(() => new Ring({ entries: 8, cqEntries: 4 })).toThrow(/cqEntries/);
    expect(() => new Ring({ bufferSize: 'big' as unknown as number })).toThrow(TypeError);
    expect(() => new Ring(5 as unknown as RingOptions)).toThrow(TypeError);
    const r = ring({ bufferCount: 4, bufferSize: 64 });
    const [a] = pair();
    expect(() => r.accept('3' as unknown as number, 1)).toThrow(TypeError);
    expect(() => r.accept(-1, 1)).toThrow(RangeError);
    expect(() => r.recv(a, -1)).toThrow(/userData/);
    expect(() => r.recv(a, 2 ** 32)).toThrow(RangeError);
    expect(() => r.send(a, 'text' as unknown as Uint8Array, 1)).toThrow(/data/);
    expect(() => r.send(a, Buffer.from('x'), 1, 'yes' as unknown as boolean)).toThrow(TypeError);
    expect(() => r.timeout(-5, 1)).toThrow(RangeError);
    expect(() => r.timeout('5' as unknown as number, 1)).toThrow(TypeError);
    expect(() => r.shutdown(a, 'sideways' as 'read', 1)).toThrow(/how/);
    expect(() => r.poll(a, 0, 1)).toThrow(/events/);
    expect(() => r.submitAndWait(r.capacity + 1)).toThrow(/minComplete/);
    expect(() => r.submitAndWait(1, 'soon' as unknown as number)).toThrow(TypeError);
    expect(() => r.returnBuffer(4)).toThrow(RangeError);
    expect(() => r.returnBuffer(0)).toThrow(/not a buffer JS holds/); // the kernel owns it
    expect(() => r.buffer(0, 65)).toThrow(/length/);
    expect(() => r.attach({} as LoopHooks, () => {})).toThrow(TypeError);
    expect(() => r.run(42 as unknown as () => void)).toThrow(/onCompletions/);
    expect(() => r.attach({ onPrepare: () => () => {}, watchReadable: 5 } as unknown as LoopHooks)).toThrow(/watchReadable/);
    const none = ring({ bufferCount: 0 });
    expect(() => none.recv(a, 1)).toThrow(ErrnoError);
    expect(r.pending).toBe(0); // nothing was queued by a bad call
  });

  it('drops requests that were queued but never submitted when it closes', () => {
    const r = ring();
    const [a, b] = pair();
    r.send(a, Buffer.from('must not be sent'), 1);
    r.close();
    expect(sys.read(b, Buffer.alloc(64))).toBe(sys.EAGAIN);
  });

  it('throws ErrnoError EBADF once closed; closing twice is fine; buffers stay readable', () => {
    const r = ring({ bufferCount: 4, bufferSize: 64 });
    const [a, b] = pair();
    sys.write(b, Buffer.from('before close'));
    r.recv(a, 1);
    r.send(a, Buffer.alloc(100), 2);
    r.timeout(60_000, 3);
    r.submit();
    const buffers = r.buffers!;
    const t0 = performance.now();
    r.close();
    expect(performance.now() - t0).toBeLessThan(2000);
    r.close();
    expect(r.closed).toBe(true);
    expect(r.fd).toBe(-1);
    expect(buffers.byteLength).toBe(256);
    expect(new Uint8Array(buffers)[0]).toBeTypeOf('number');
    for (const call of [() => r.nop(1), () => r.submit(), () => r.submitAndWait(), () => r.reap(), () => r.recv(a, 1), () => r.returnBuffer(0)]) {
      try {
        call();
        expect.unreachable('a closed Ring must throw');
      } catch (err) {
        expect(err).toBeInstanceOf(ErrnoError);
        expect((err as ErrnoError).code).toBe('EBADF');
        expect((err as ErrnoError).syscall).toMatch(/^ring\./);
      }
    }
  });
});

describe.skipIf(!skip)('Ring (unavailable)', () => {
  it('throws an ErrnoError carrying the reason', () => {
    try {
      new Ring();
      expect.unreachable('Ring must not start where io_uring is unavailable');
    } catch (err) {
      expect(err).toBeInstanceOf(ErrnoError);
      expect((err as Error & { reason?: string }).reason).toBeTruthy();
    }
  });
});
