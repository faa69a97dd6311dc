// One spec, run against every available backend; unavailable ones are
// skipped with their reason. Timing appears only as generous bounds.
import { describe, expect, it, afterEach } from 'vitest';
import { Worker } from 'node:worker_threads';
import { Poller, Interest, Mode, sys, ErrnoError, UnsupportedModeError, backends, type BackendName } from '../lib/index';
import { availableBackends, unavailableBackends, makePair, pairKinds, drain, closeAll, eventsOf, openFdCount } from './helpers';

const R = Interest.READABLE;
const W = Interest.WRITABLE;
const modesOf = (name: BackendName) => backends().find((b) => b.name === name)!.modes;

for (const [name, reason] of unavailableBackends) {
  describe.skip(`${name} (unavailable: ${reason})`, () => {
    it('is skipped', () => {});
  });
  console.log(`conformance: skipping ${name}: ${reason}`);
}

describe.each(availableBackends)('%s', (backend) => {
  const opened: number[] = [];
  const pollers: Poller[] = [];
  const pair = (kind: Parameters<typeof makePair>[0]) => {
    const p = makePair(kind);
    opened.push(...p);
    return p;
  };
  const poller = (opts?: { capacity?: number }) => {
    const p = new Poller(backend, opts);
    pollers.push(p);
    return p;
  };
  afterEach(() => {
    for (const p of pollers.splice(0)) p.close();
    closeAll(...opened.splice(0));
  });

  describe.each(pairKinds)('over %s', (kind) => {
    it('reports readable only after a write', () => {
      const p = poller();
      const [r, w] = pair(kind);
      p.add(r, R);
      expect(p.wait(0)).toBe(0);
      sys.write(w, Buffer.from('x'));
      const n = p.wait(1000);
      expect(n).toBe(1);
      expect(p.events[0]).toBe(r);
      expect(p.events[1] & R).toBe(R);
    });

    it('reports writable on a fresh writer', () => {
      const p = poller();
      const [, w] = pair(kind);
      p.add(w, W);
      expect(p.wait(1000)).toBe(1);
      expect(p.events[0]).toBe(w);
      expect(p.events[1] & W).toBe(W);
    });

    it('reports the peer closing as readable (EOF), with HANGUP where the backend can see it', () => {
      const p = poller();
      const [r, w] = pair(kind);
      p.add(r, R);
      sys.close(w);
      opened.splice(opened.indexOf(w), 1);
      expect(p.wait(1000)).toBe(1);
      const ev = p.events[1];
      expect(ev & R).toBe(R);
      if (backend !== 'select' && kind !== 'tcp') expect(ev & Interest.HANGUP).toBe(Interest.HANGUP);
      expect(sys.read(r, Buffer.alloc(8))).toBe(0);
    });

    it('is level-triggered by default: unread data is reported again', () => {
      const p = poller();
      const [r, w] = pair(kind);
      p.add(r, R);
      sys.write(w, Buffer.from('ab'));
      expect(p.wait(1000)).toBe(1);
      expect(p.wait(1000)).toBe(1);
      expect(p.events[0]).toBe(r);
      drain(r);
      expect(p.wait(0)).toBe(0);
    });

    it.runIf(modesOf(backend).edge !== 'unsupported')('EDGE reports each new arrival once', () => {
      const p = poller();
      const [r, w] = pair(kind);
      p.add(r, R, Mode.EDGE);
      sys.write(w, Buffer.from('a'));
      expect(p.wait(1000)).toBe(1);
      expect(p.wait(0)).toBe(0); // still readable, but no new edge
      sys.write(w, Buffer.from('b'));
      expect(p.wait(1000)).toBe(1);
      expect(p.events[0]).toBe(r);
      expect(drain(r)).toBe(2);
    });

    it.runIf(modesOf(backend).oneshot !== 'unsupported')('ONESHOT fires once, then again only after modify()', () => {
      const p = poller();
      const [r, w] = pair(kind);
      p.add(r, R, Mode.ONESHOT);
      sys.write(w, Buffer.from('a'));
      expect(p.wait(1000)).toBe(1);
      sys.write(w, Buffer.from('b'));
      expect(p.wait(0)).toBe(0);
      p.modify(r, R, Mode.ONESHOT);
      expect(p.wait(1000)).toBe(1);
      expect(p.events[0]).toBe(r);
    });
  });

  it('modify() switches interest from readable to writable', () => {
    const p = poller();
    const [a] = pair('socketpair');
    p.add(a, R);
    expect(p.wait(0)).toBe(0);
    p.modify(a, W);
    expect(p.wait(1000)).toBe(1);
    expect(p.events[1] & W).toBe(W);
    p.modify(a, R);
    expect(p.wait(0)).toBe(0);
  });

  it('reports several ready fds in one wait, each once', () => {
    const p = poller();
    const fds: number[] = [];
    for (let i = 0; i < 10; i++) {
      const [a, b] = pair('socketpair');
      p.add(a, R);
      sys.write(b, Buffer.from('x'));
      fds.push(a);
    }
    const n = p.wait(1000);
    const seen = eventsOf(p, n);
    // io_uring posts completions as they arrive; collect until all are in.
    for (let i = 0; i < 100 && seen.size < 10; i++) for (const [fd, ev] of eventsOf(p, p.wait(100))) seen.set(fd, ev);
    expect([...seen.keys()].sort((x, y) => x - y)).toEqual([...fds].sort((x, y) => x - y));
    const raw = Array.from({ length: n }, (_, i) => p.events[2 * i]);
    expect(new Set(raw).size).toBe(raw.length);
  });

  describe('timeouts', () => {
    it('0 returns at once when nothing is ready', () => {
      const p = poller();
      const [r] = pair('pipe');
      p.add(r, R);
      const t = performance.now();
      expect(p.wait(0)).toBe(0);
      expect(performance.now() - t).toBeLessThan(1000);
    });

    it('n ms waits about n ms (50 ms within 45-2000 ms)', () => {
      const p = poller();
      const [r] = pair('pipe');
      p.add(r, R);
      const t = performance.now();
      expect(p.wait(50)).toBe(0);
      const dt = performance.now() - t;
      expect(dt).toBeGreaterThanOrEqual(45);
      expect(dt).toBeLessThan(2000);
    });

    it('a fraction of a millisecond rounds up instead of becoming a busy 0', () => {
      const p = poller();
      const [r] = pair('pipe');
      p.add(r, R);
      const t = process.hrtime.bigint();
      expect(p.wait(0.01)).toBe(0);
      expect(Number(process.hrtime.bigint() - t)).toBeGreaterThanOrEqual(500_000); // >= 0.5 ms
    });

    it('-1 waits until a write from another thread', async () => {
      const p = poller();
      const [r, w] = pair('pipe');
      p.add(r, R);
      const worker = new Worker(
        `const { workerData } = require('node:worker_threads'); const fs = require('node:fs');
         setTimeout(() => fs.writeSync(workerData.fd, 'x'), 100);`,
        { eval: true, workerData: { fd: w } },
      );
      await new Promise((resolve) => worker.once('online', resolve));
      expect(p.wait(-1)).toBe(1);
      expect(p.events[0]).toBe(r);
      await worker.terminate();
    });

    it('EINTR inside a wait resumes with the time that is left', () => {
      const p = poller();
      const [r] = pair('pipe');
      p.add(r, R);
      // The handler stays installed: a signal that arrives late (a loaded
      // machine can delay the sending thread) must not kill the process.
      if (process.listenerCount('SIGUSR2') === 0) process.on('SIGUSR2', () => {});
      // Ten signals 20 ms apart: at least one lands inside the wait even when
      // the sending thread is delayed.
      sys.signalSelfAfter(20, 12 /* SIGUSR2 */, 10);
      const t = performance.now();
      expect(p.wait(600)).toBe(0);
      expect(performance.now() - t).toBeGreaterThanOrEqual(580);
      expect(p.interrupted).toBeGreaterThanOrEqual(1);
    });
  });

  describe('registration errors', () => {
    it('add twice is EEXIST', () => {
      const p = poller();
      const [r] = pair('pipe');
      p.add(r, R);
      expect(() => p.add(r, R)).toThrow(expect.objectContaining({ code: 'EEXIST', errno: 17 }));
    });

    it('modify and remove of an unregistered fd are ENOENT', () => {
      const p = poller();
      const [r] = pair('pipe');
      expect(() => p.modify(r, R)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
      expect(() => p.remove(r)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
      try {
        p.remove(r);
      } catch (e) {
        expect(e).toBeInstanceOf(ErrnoError);
        expect(typeof (e as ErrnoError).syscall).toBe('string');
        expect((e as ErrnoError).syscall.length).toBeGreaterThan(0);
      }
    });

    it('add of a closed fd is EBADF', () => {
      const p = poller();
      const [r, w] = sys.pipe();
      sys.close(r);
      sys.close(w);
      expect(() => p.add(r, R)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    });

    it('remove after close succeeds', () => {
      const p = poller();
      const [r, w] = sys.pipe();
      p.add(r, R);
      sys.close(r);
      sys.close(w);
      expect(() => p.remove(r)).not.toThrow();
    });

    it('an unsupported mode is an error, never a silent downgrade', () => {
      const p = poller();
      const [r] = pair('pipe');
      const modes = modesOf(backend);
      for (const [key, bit] of [['edge', Mode.EDGE], ['oneshot', Mode.ONESHOT], ['exclusive', Mode.EXCLUSIVE]] as const) {
        if (modes[key] !== 'unsupported') continue;
        expect(() => p.add(r, R, bit)).toThrow(UnsupportedModeError);
        expect(() => p.add(r, R, bit)).toThrow(RangeError);
      }
      p.add(r, R); // and the fd is still free to register
    });
  });

  describe('fd numbers reused after close', () => {
    // Close `a` while registered, then make a new file take the same number.
    function reuse(p: Poller, keepOldAlive: boolean, removeFirst: boolean) {
      const [a, b] = sys.socketpair();
      opened.push(b);
      const dupOfA = keepOldAlive ? sys.dup(a) : -1;
      if (dupOfA >= 0) opened.push(dupOfA);
      p.add(a, R);
      const [x, y] = sys.pipe();
      sys.close(a);
      if (removeFirst) p.remove(a);
      const a2 = sys.fcntl(x, 'F_DUPFD', a);
      sys.close(x);
      opened.push(a2, y);
      expect(a2).toBe(a);
      p.add(a2, R);
      // Make the OLD file readable (if anything still holds it open).
      sys.write(b, Buffer.from('old'));
      return { a2, y };
    }

    for (const keepOldAlive of [false, true]) {
      for (const removeFirst of [false, true]) {
        it(`do not receive the old file's events (old file ${keepOldAlive ? 'kept alive by a dup' : 'gone'}, ${removeFirst ? 'removed' : 'not removed'} before reuse)`, () => {
          const p = poller();
          const { a2, y } = reuse(p, keepOldAlive, removeFirst);
          const n = p.wait(100);
          expect(eventsOf(p, n).has(a2)).toBe(false);
          sys.write(y, Buffer.from('new'));
          let seen = false;
          for (let i = 0; i < 20 && !seen; i++) seen = eventsOf(p, p.wait(100)).has(a2);
          expect(seen).toBe(true);
        });
      }
    }
  });

  it.runIf(backend !== 'select')('watches 5000 fds and reports exactly the ready ones', () => {
    const p = poller({ capacity: 256 });
    const ends: Array<[number, number]> = [];
    for (let i = 0; i < 5000; i++) {
      const pr = pair('socketpair');
      p.add(pr[0], R);
      ends.push(pr);
    }
    const ready = new Set<number>();
    for (let i = 0; i < 5000; i += 37) {
      sys.write(ends[i][1], Buffer.from('x'));
      ready.add(ends[i][0]);
    }
    const seen = new Set<number>();
    for (let round = 0; round < 50 && seen.size < ready.size; round++) {
      const n = p.wait(200);
      for (let i = 0; i < n; i++) {
        const fd = p.events[2 * i];
        seen.add(fd);
        drain(fd);
      }
    }
    expect([...seen].sort((x, y) => x - y)).toEqual([...ready].sort((x, y) => x - y));
    expect(p.wait(0)).toBe(0);
  });

  it.runIf(backend === 'select')('select refuses fd >= FD_SETSIZE with a RangeError', () => {
    const p = poller();
    const [r] = pair('pipe');
    const high = sys.fcntl(r, 'F_DUPFD', sys.constants.FD_SETSIZE);
    opened.push(high);
    expect(high).toBeGreaterThanOrEqual(sys.constants.FD_SETSIZE);
    expect(() => p.add(high, R)).toThrow(RangeError);
    expect(() => p.add(high, R)).toThrow(/FD_SETSIZE/);
  });

  it('interest ERROR/HANGUP-only registrations are accepted', () => {
    const p = poller();
    const [r] = pair('socketpair');
    p.add(r, 0);
    expect(p.wait(0)).toBe(0);
  });

  describe('lifecycle', () => {
    it('closing twice is harmless, and a closed Poller throws EBADF', () => {
      const p = new Poller(backend);
      const [r] = pair('pipe');
      p.close();
      p.close();
      expect(p.closed).toBe(true);
      for (const call of [() => p.add(r, R), () => p.modify(r, R), () => p.remove(r), () => p.wait(0)]) {
        expect(call).toThrow(ErrnoError);
        expect(call).toThrow(expect.objectContaining({ code: 'EBADF' }));
      }
    });

    it('close releases the backend fd', () => {
      const before = openFdCount();
      const ps = Array.from({ length: 20 }, () => new Poller(backend));
      for (const p of ps) p.close();
      expect(openFdCount()).toBe(before);
    });

    it('exposes a pollable fd where the backend has one', () => {
      const p = poller();
      if (backend === 'select' || backend === 'poll') expect(p.fd).toBe(-1);
      else expect(p.fd).toBeGreaterThan(2);
    });
  });

  describe('argument validation', () => {
    it('names the argument in TypeError / RangeError', () => {
      const p = poller();
      expect(() => p.add('3' as unknown as number, R)).toThrow(TypeError);
      expect(() => p.add(-1, R)).toThrow(/fd/);
      expect(() => p.add(1.5, R)).toThrow(RangeError);
      expect(() => p.add(0, 99)).toThrow(/interest/);
      expect(() => p.add(0, R, 42)).toThrow(/mode/);
      expect(() => p.wait(-5)).toThrow(/timeout/);
      expect(() => p.wait(NaN)).toThrow(RangeError);
      expect(() => p.wait('1' as unknown as number)).toThrow(TypeError);
    });
  });
});

describe('Poller construction', () => {
  it('rejects unknown backends', () => {
    expect(() => new Poller('nope' as BackendName)).toThrow(RangeError);
    expect(() => new Poller(7 as unknown as BackendName)).toThrow(TypeError);
    expect(() => new Poller('epoll', { capacity: 0 })).toThrow(/capacity/);
  });

  for (const [name, reason] of unavailableBackends) {
    it(`an unavailable backend (${name}) throws ErrnoError with its reason`, () => {
      expect(() => new Poller(name)).toThrow(ErrnoError);
      expect(() => new Poller(name)).toThrow(reason.slice(0, 20));
    });
  }
});
