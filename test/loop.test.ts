// EventLoop conformance: the same behaviour on every available backend.
import { describe, expect, it } from 'vitest';
import * as net from 'node:net';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { spawnSync } from 'node:child_process';
import { EventLoop, Interest, Mode, backends, sys, ErrnoError, InvalidStateError, ProcessSampler, UnsupportedModeError } from '../lib';
import type { BackendStatus } from '../lib';
import { runFor } from './helpers/loop';

const all = backends();
for (const b of all) if (!b.available) console.log(`loop.test: skipping ${b.name}: ${b.reason}`);

const root = path.join(__dirname, '..');

describe.each(all.map((b) => [b.name, b] as [string, BackendStatus]))('EventLoop on %s', (name, status) => {
  const test = it.skipIf(!status.available);
  const backend = name as BackendStatus['name'];

  test('timers fire in deadline order, ties in creation order, within generous bounds', async () => {
    const loop = new EventLoop(backend);
    const order: string[] = [];
    const start = loop.now();
    let fired50 = -1;
    loop.setTimeout(() => order.push('30'), 30);
    loop.setTimeout(() => order.push('10a'), 10);
    loop.setTimeout(() => order.push('20'), 20);
    loop.setTimeout(() => order.push('10b'), 10);
    loop.setTimeout(() => order.push('0'), 0);
    const cancelled = loop.setTimeout(() => order.push('cancelled'), 5);
    loop.clearTimer(cancelled);
    loop.clearTimer(cancelled); // twice is a no-op
    loop.setTimeout(() => {
      fired50 = loop.now() - start;
    }, 50);
    const r = await runFor(loop);
    expect(r.timedOut).toBe(false);
    expect(order).toEqual(['0', '10a', '10b', '20', '30']);
    expect(fired50).toBeGreaterThanOrEqual(50);
    expect(fired50).toBeLessThan(2000);
    expect(loop.timerCount).toBe(0);
    loop.close();
  });

  test('setInterval repeats until cleared; refresh() restarts a timer', async () => {
    const loop = new EventLoop(backend);
    let ticks = 0;
    const iv = loop.setInterval(() => {
      if (++ticks === 5) loop.clearTimer(iv);
    }, 2);
    let refreshed = 0;
    const start = loop.now();
    let firedAt = 0;
    const t = loop.setTimeout(() => {
      firedAt = loop.now() - start;
    }, 40);
    loop.setTimeout(() => {
      refreshed++;
      t.refresh(); // now fires 40 ms after this point (>= 60 ms from the start)
    }, 20);
    const r = await runFor(loop);
    expect(r.timedOut).toBe(false);
    expect(ticks).toBe(5);
    expect(iv.active).toBe(false);
    expect(refreshed).toBe(1);
    expect(firedAt).toBeGreaterThanOrEqual(60);
    loop.close();
  });

  test('immediates run in order; one queued by an immediate waits for the next iteration', async () => {
    const loop = new EventLoop(backend);
    const order: string[] = [];
    loop.setImmediate(() => {
      order.push('a');
      loop.setImmediate(() => order.push('c'));
    });
    const skip = loop.setImmediate(() => order.push('skipped'));
    loop.setImmediate(() => order.push('b'));
    loop.clearImmediate(skip);
    loop.runOnce(0);
    expect(order).toEqual(['a', 'b']);
    loop.runOnce(0);
    expect(order).toEqual(['a', 'b', 'c']);
    expect(loop.alive).toBe(false);
    loop.close();
  });

  test('a wait does not block while an immediate is queued', async () => {
    const loop = new EventLoop(backend);
    const [r, w] = sys.pipe();
    const watcher = loop.watch(r, Interest.READABLE, () => {});
    const t0 = loop.now();
    loop.setImmediate(() => {});
    loop.runOnce(); // would block forever on the empty pipe without the immediate
    expect(loop.now() - t0).toBeLessThan(5000);
    watcher.close();
    sys.close(r);
    sys.close(w);
    loop.close();
  });

  test('watchers: start, stop, modify and close from inside callbacks', async () => {
    const loop = new EventLoop(backend);
    const [a, b] = sys.socketpair();
    const seen: string[] = [];
    const buf = Buffer.alloc(64);
    let reads = 0;
    const w = loop.watch(a, Interest.READABLE, (fd, ev) => {
      if (ev & Interest.READABLE) {
        sys.read(fd, buf);
        seen.push('r' + ++reads);
        if (reads === 1) {
          w.stop(); // nothing more until started again
          expect(w.active).toBe(false);
          sys.write(b, Buffer.from('second'));
          loop.setTimeout(() => {
            seen.push('restart');
            w.start(Interest.READABLE);
          }, 10);
        } else {
          w.modify(Interest.WRITABLE); // now only writability
        }
      } else if (ev & Interest.WRITABLE) {
        seen.push('w');
        w.close();
        expect(w.closed).toBe(true);
      }
    });
    sys.write(b, Buffer.from('first'));
    const r = await runFor(loop);
    expect(r.timedOut).toBe(false);
    expect(seen).toEqual(['r1', 'restart', 'r2', 'w']);
    expect(() => w.modify(Interest.READABLE)).toThrow(ErrnoError);
    sys.close(a);
    sys.close(b);
    loop.close();
  });

  test('an fd closed and reused inside a batch gets no stale event', async () => {
    const loop = new EventLoop(backend);
    const p1 = sys.socketpair();
    const p2 = sys.socketpair();
    const watchers = new Map<number, ReturnType<EventLoop['watch']>>();
    const calls: number[] = [];
    let reused = -1;
    let closedFd = -1;
    let newCalls = 0;
    let newPair: [number, number] | null = null;
    const onReady = (fd: number): void => {
      calls.push(fd);
      sys.read(fd, Buffer.alloc(8));
      if (closedFd >= 0) return;
      // Close the *other* watched fd, which is ready in this same batch, and
      // make a new fd that takes its number.
      const other = fd === p1[0] ? p2[0] : p1[0];
      watchers.get(other)!.close();
      sys.close(other);
      closedFd = other;
      newPair = sys.socketpair();
      reused = newPair[0];
      loop.watch(reused, Interest.READABLE, () => newCalls++);
      loop.setTimeout(() => loop.stop(), 30);
    };
    watchers.set(p1[0], loop.watch(p1[0], Interest.READABLE, onReady));
    watchers.set(p2[0], loop.watch(p2[0], Interest.READABLE, onReady));
    sys.write(p1[1], Buffer.from('x'));
    sys.write(p2[1], Buffer.from('y'));
    const r = await runFor(loop);
    expect(r.timedOut).toBe(false);
    expect(reused).toBe(closedFd); // the number really was reused
    expect(calls.filter((fd) => fd === closedFd)).toEqual([]); // the closed one never ran
    expect(newCalls).toBe(0); // and the newcomer got nothing from the old batch
    for (const fd of [p1[0], p2[0], p1[1], p2[1], ...newPair!]) if (fd !== closedFd) sys.close(fd);
    loop.close();
  });

  test('closing the watcher, then the fd, really closes it (the peer sees EOF at once)', async () => {
    const loop = new EventLoop(backend);
    const [a, b] = sys.socketpair();
    const w = loop.watch(a, Interest.READABLE, () => {});
    loop.runOnce(0);
    w.close();
    sys.close(a);
    expect(sys.read(b, Buffer.alloc(8))).toBe(0);
    sys.close(b);
    loop.close();
  });

  test('one watcher per fd; argument errors name the argument', () => {
    const loop = new EventLoop(backend);
    const [a, b] = sys.pipe();
    const w = loop.watch(a, Interest.READABLE, () => {});
    expect(() => loop.watch(a, Interest.READABLE, () => {})).toThrow(/already has a watcher/);
    expect(() => loop.watch(-1, Interest.READABLE, () => {})).toThrow(RangeError);
    expect(() => loop.watch('3' as unknown as number, Interest.READABLE, () => {})).toThrow(TypeError);
    expect(() => loop.watch(b, 99, () => {})).toThrow(/interest/);
    expect(() => loop.watch(b, Interest.WRITABLE, null as unknown as () => void)).toThrow(/callback/);
    expect(() => loop.setTimeout(() => {}, -1)).toThrow(RangeError);
    expect(() => loop.setTimeout(() => {}, NaN)).toThrow(RangeError);
    expect(() => loop.setTimeout('x' as unknown as () => void, 1)).toThrow(TypeError);
    if (status.modes.edge === 'unsupported') {
      expect(() => loop.watch(b, Interest.WRITABLE, () => {}, Mode.EDGE)).toThrow(UnsupportedModeError);
    }
    w.close();
    sys.close(a);
    sys.close(b);
    loop.close();
    expect(() => loop.setTimeout(() => {}, 1)).toThrow(/closed/);
  });

  if (status.available && status.modes.oneshot === 'unsupported') console.log(`loop.test: ${name} has no ONESHOT mode: its test is skipped`);
  it.skipIf(!status.available || status.modes.oneshot === 'unsupported')('ONESHOT fires once until rearm()', async () => {
    const loop = new EventLoop(backend);
    const [a, b] = sys.socketpair();
    let calls = 0;
    const w = loop.watch(a, Interest.READABLE, () => calls++, Mode.ONESHOT);
    sys.write(b, Buffer.from('x')); // left unread: level readiness stays
    for (let i = 0; i < 3; i++) loop.runOnce(20);
    expect(calls).toBe(1);
    w.rearm();
    for (let i = 0; i < 3; i++) loop.runOnce(20);
    expect(calls).toBe(2);
    w.close();
    sys.close(a);
    sys.close(b);
    loop.close();
  });

  if (status.available && status.modes.edge === 'unsupported') console.log(`loop.test: ${name} has no EDGE mode: its test is skipped`);
  it.skipIf(!status.available || status.modes.edge === 'unsupported')('EDGE reports new data once', async () => {
    const loop = new EventLoop(backend);
    const [a, b] = sys.socketpair();
    let calls = 0;
    const w = loop.watch(a, Interest.READABLE, () => calls++, Mode.EDGE);
    sys.write(b, Buffer.from('x'));
    for (let i = 0; i < 3; i++) loop.runOnce(20);
    expect(calls).toBe(1);
    sys.write(b, Buffer.from('y'));
    for (let i = 0; i < 3; i++) loop.runOnce(20);
    expect(calls).toBe(2);
    w.close();
    sys.close(a);
    sys.close(b);
    loop.close();
  });

  test('stop() from a callback ends run(); run() can resume', async () => {
    const loop = new EventLoop(backend);
    let n = 0;
    const iv = loop.setInterval(() => {
      n++;
      if (n === 3 || n === 6) loop.stop();
    }, 1);
    await loop.run();
    expect(n).toBe(3);
    expect(loop.isRunning).toBe(false);
    await loop.run();
    expect(n).toBe(6);
    loop.clearTimer(iv);
    await loop.run(); // nothing alive: returns at once
    loop.close();
  });

  test('owned run(): promise jobs of any depth run between iterations', async () => {
    const loop = new EventLoop(backend);
    const [a, b] = sys.socketpair();
    const steps: string[] = [];
    const w = loop.watch(a, Interest.READABLE, async (fd) => {
      sys.read(fd, Buffer.alloc(16));
      steps.push('callback');
      for (let i = 0; i < 20; i++) await Promise.resolve(i);
      await new Promise<void>((resolve) => queueMicrotask(resolve));
      steps.push('after 21 awaits');
      process.nextTick(() => {
        steps.push('nextTick');
        loop.stop(); // the loop would otherwise block forever on the quiet socket
      });
    });
    sys.write(b, Buffer.from('go'));
    const r = await runFor(loop, 10_000);
    expect(r.timedOut).toBe(false);
    expect(steps).toEqual(['callback', 'after 21 awaits', 'nextTick']);
    w.close();
    sys.close(a);
    sys.close(b);
    loop.close();
  });

  test('a callback that throws rejects run() and stops the loop', async () => {
    const loop = new EventLoop(backend);
    loop.setTimeout(() => {
      throw new Error('boom');
    }, 1);
    const later = loop.setTimeout(() => {}, 1000);
    await expect(loop.run()).rejects.toThrow('boom');
    expect(loop.isRunning).toBe(false);
    expect(later.active).toBe(true);
    loop.close();
  });

  test('runSync() runs the same loop without promise jobs in between', () => {
    const loop = new EventLoop(backend);
    let fired = 0;
    loop.setTimeout(() => fired++, 1);
    loop.setTimeout(() => fired++, 2);
    loop.runSync();
    expect(fired).toBe(2);
    loop.close();
  });

  test('wakeup() from a worker thread while run() blocks', async () => {
    const loop = new EventLoop(backend);
    const shared = new Int32Array(new SharedArrayBuffer(8));
    let wakes = 0;
    loop.onwakeup = () => {
      wakes++;
      if (Atomics.load(shared, 0) === 3) loop.stop();
    };
    const dist = path.join(root, 'dist', 'loop.js');
    expect(fs.existsSync(dist), 'dist/ is built by npm ci (npm run build:ts)').toBe(true);
    // The worker needs only the fd number; it sleeps with Atomics.wait, so it
    // does not depend on the (blocked) main thread in any way.
    const worker = new Worker(
      `const { workerData } = require('node:worker_threads');
       const { EventLoop } = require(workerData.dist);
       const sleep = new Int32Array(new SharedArrayBuffer(4));
       for (let i = 1; i <= 3; i++) {
         Atomics.wait(sleep, 0, 0, 20);
         Atomics.store(workerData.shared, 0, i);
         EventLoop.wake(workerData.fd);
       }`,
      { eval: true, workerData: { fd: loop.wakeupFd, shared, dist } },
    );
    const r = await runFor(loop, 15_000);
    await new Promise((resolve) => worker.once('exit', resolve));
    expect(r.timedOut).toBe(false);
    expect(Atomics.load(shared, 0)).toBe(3);
    expect(wakes).toBeGreaterThanOrEqual(1);
    expect(wakes).toBeLessThanOrEqual(3);
    expect(loop.stats.wakeups).toBe(wakes);
    loop.onwakeup = null;
    loop.close();
  });

  test('embedded: callbacks interleave with a real net server, setTimeout and promises', async () => {
    const loop = new EventLoop(backend).attach();
    const order: string[] = [];
    const server = net.createServer((s) => s.on('data', (d) => s.write(d)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    // A raw iomux client: connect, send, read the echo through a watcher.
    const fd = sys.socket('ipv4');
    sys.connect(fd, '127.0.0.1', port);
    let echoed = '';
    const done = new Promise<void>((resolve) => {
      const w = loop.watch(fd, Interest.WRITABLE, async (_fd, ev) => {
        if (ev & Interest.WRITABLE) {
          expect(sys.getsockopt(fd, 'SO_ERROR')).toBe(0);
          sys.write(fd, Buffer.from('ping'));
          w.modify(Interest.READABLE);
          order.push('iomux:sent');
          return;
        }
        const b = Buffer.alloc(16);
        const n = sys.read(fd, b);
        echoed += b.subarray(0, Math.max(0, n)).toString();
        order.push('iomux:echo');
        await Promise.resolve();
        order.push('iomux:after-await');
        w.close();
        resolve();
      });
    });
    const timers = new Promise<void>((resolve) => {
      setTimeout(() => order.push('node:10'), 10);
      loop.setTimeout(() => order.push('iomux:60'), 60);
      setTimeout(() => {
        order.push('node:150');
        resolve();
      }, 150);
    });
    await Promise.all([done, timers]);
    expect(echoed).toBe('ping');
    const t = order.filter((s) => /:\d+$/.test(s));
    expect(t).toEqual(['node:10', 'iomux:60', 'node:150']);
    expect(order.indexOf('iomux:after-await')).toBe(order.indexOf('iomux:echo') + 1);
    sys.close(fd);
    loop.detach();
    loop.close();
    await new Promise((resolve) => server.close(resolve));
  });

  test('embedded: timers and wakeups drive the loop; detach() lets go', async () => {
    const loop = new EventLoop(backend);
    let wakes = 0;
    loop.onwakeup = () => wakes++;
    loop.attach();
    const fired = await new Promise<number>((resolve) => {
      const start = loop.now();
      loop.setTimeout(() => resolve(loop.now() - start), 20);
    });
    expect(fired).toBeGreaterThanOrEqual(20);
    loop.wakeup();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(wakes).toBe(1);
    loop.detach();
    loop.wakeup();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(wakes).toBe(1); // detached: nothing drives it
    loop.runOnce(0);
    expect(wakes).toBe(2);
    loop.onwakeup = null;
    loop.close();
  });

  test('a worker thread with an attached loop can exit or be terminated (child process)', () => {
    // Node unloads the addon when a worker's environment goes away: the libuv
    // handles of embedded mode must be closed before that, or the process dies.
    const script = `
      const { Worker } = require('node:worker_threads');
      let left = 2;
      for (const how of ['exit', 'terminate']) {
        const w = new Worker(\`
          const { EventLoop, listenTcp } = require(\${JSON.stringify(process.argv[1])});
          const { parentPort } = require('node:worker_threads');
          const loop = new EventLoop(\${JSON.stringify(process.argv[2])}).attach();
          listenTcp(loop, {}, () => {});
          loop.setInterval(() => {}, 5);
          parentPort.postMessage('attached');
          if ('\${how}' === 'exit') setTimeout(() => process.exit(0), 20);
        \`, { eval: true });
        w.on('message', () => { if (how === 'terminate') setTimeout(() => w.terminate(), 20); });
        w.on('exit', () => { if (--left === 0) console.log('both workers gone'); });
      }`;
    const r = spawnSync(process.execPath, ['-e', script, path.join(root, 'dist'), backend], { encoding: 'utf8', timeout: 20_000 });
    expect(r.stderr).toBe('');
    expect(r.signal).toBe(null);
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('both workers gone');
  });

  test('hooks: onPrepare runs before each wait; watchReadable and removers work', async () => {
    const loop = new EventLoop(backend);
    const [a, b] = sys.pipe();
    let prepares = 0;
    let readable = 0;
    const removePrepare = loop.onPrepare(() => prepares++);
    const removeWatch = loop.watchReadable(a, () => {
      readable++;
      sys.read(a, Buffer.alloc(8));
    });
    sys.write(b, Buffer.from('x'));
    loop.runOnce(1000);
    expect(readable).toBe(1);
    expect(prepares).toBe(loop.stats.waitCalls);
    removePrepare();
    removeWatch();
    removeWatch(); // twice is fine
    sys.write(b, Buffer.from('y'));
    loop.runOnce(0);
    expect(readable).toBe(1);
    expect(prepares).toBe(1);
    sys.close(a);
    sys.close(b);
    loop.close();
  });

  test('stats: counters move and agree with each other', async () => {
    const loop = new EventLoop(backend);
    const [a, b] = sys.socketpair();
    let n = 0;
    const w = loop.watch(a, Interest.READABLE, () => {
      sys.read(a, Buffer.alloc(8));
      if (++n < 10) loop.setTimeout(() => sys.write(b, Buffer.from('x')), 1);
      else w.close();
    });
    sys.write(b, Buffer.from('x'));
    await runFor(loop);
    const s = loop.stats;
    expect(s.eventsDelivered).toBe(10);
    expect(s.timersFired).toBe(9);
    expect(s.iterations).toBeGreaterThanOrEqual(10);
    expect(s.waitCalls).toBe(s.iterations);
    expect(s.histogram.reduce((x, y) => x + y, 0)).toBe(s.waitCalls);
    expect(s.eventsPerWakeup[1]).toBeGreaterThanOrEqual(10);
    expect(s.blockedNs).toBeGreaterThan(0);
    expect(s.callbackNs).toBeGreaterThan(0);
    expect(JSON.parse(JSON.stringify(s)).eventsDelivered).toBe(10);
    s.reset();
    expect(s.iterations + s.waitCalls + s.eventsDelivered).toBe(0);
    sys.close(a);
    sys.close(b);
    loop.close();
  });
});

describe('misuse in the wrong state: InvalidStateError, code ERR_IOMUX_INVALID_STATE', () => {
  const thrown = (fn: () => unknown): unknown => {
    try {
      fn();
    } catch (err) {
      return err;
    }
    return null;
  };
  const stateError = (caught: unknown, message: RegExp): void => {
    expect(caught).toBeInstanceOf(InvalidStateError);
    expect((caught as InvalidStateError).code).toBe('ERR_IOMUX_INVALID_STATE');
    expect((caught as Error).message).toMatch(message);
  };

  it('runOnce() and run() from inside a loop callback', () => {
    const loop = new EventLoop('poll');
    try {
      const caught: unknown[] = [];
      loop.setImmediate(() => {
        caught.push(thrown(() => loop.runOnce(0)));
        caught.push(thrown(() => void loop.run()));
      });
      loop.runOnce(0);
      expect(caught).toHaveLength(2);
      stateError(caught[0], /runOnce\(\) cannot be called from inside a loop callback/);
      stateError(caught[1], /run\(\) cannot be called from inside a loop callback/);
    } finally {
      loop.close();
    }
  });

  it('ProcessSampler: stop() before start(), start() twice', () => {
    const s = new ProcessSampler(process.pid);
    stateError(thrown(() => s.stop()), /was not started/);
    s.start();
    stateError(thrown(() => s.start()), /already started/);
    s.stop();
  });
});

