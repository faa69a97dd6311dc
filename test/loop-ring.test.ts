// The io_uring Ring driven by an EventLoop through LoopHooks, in owned and
// embedded mode, on every readiness backend. (lib/ring.ts and lib/loop.ts
// were written on separate branches: this file skips until both are there.)
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { EventLoop, backends, connectTcp } from '../lib';
import type { BackendName, Connection } from '../lib';
import { echoRandomRounds } from './helpers/echo';

const lib = path.join(__dirname, '..', 'lib');
const haveRing = fs.existsSync(path.join(lib, 'ring-net.ts'));
// Imported by a computed path, so that this file loads where they are missing.
const ringMod = haveRing ? await import(path.join(lib, 'ring')) : null;
const ringNet = haveRing ? await import(path.join(lib, 'ring-net')) : null;
const uring = backends().find((b) => b.name === 'io_uring')!;
const why = !haveRing ? 'lib/ring.ts is not on this branch yet' : !uring.available ? `io_uring: ${uring.reason}` : '';
if (why) console.log(`loop-ring.test: skipped: ${why}`);
const loopBackends = backends().filter((b) => b.available).map((b) => b.name as BackendName);

describe.skipIf(why !== '')('Ring on an EventLoop', () => {
  it.each(loopBackends)('owned mode on %s: a Ring echo server, EventLoop TCP clients, one thread', async (backend) => {
    const loop = new EventLoop(backend);
    const ring = new ringMod.Ring({ bufferCount: 64, bufferSize: 4096 });
    const detach = ring.attach(loop);
    const server = new ringNet.RingTcpServer(ring, {});
    server.onconnection = (c: Connection) => {
      c.ondata = (d) => c.write(d);
      c.onend = () => c.end();
    };
    const conns = 10;
    const perConn = 20;
    let verified = 0;
    let closed = 0;
    for (let id = 0; id < conns; id++) {
      const c = connectTcp(loop, server.address.port);
      echoRandomRounds(c, perConn, 6000, () => verified++);
      c.onclose = () => {
        if (++closed === conns) {
          server.close();
          detach(); // the ring's watcher keeps the loop alive until then
        }
      };
    }
    const safety = loop.setTimeout(() => loop.stop(), 20_000).unref();
    await loop.run();
    loop.clearTimer(safety);
    expect(verified).toBe(conns * perConn);
    ring.close();
    loop.close();
  });

  it.each(loopBackends)('embedded mode on %s: Node net clients, a Ring server, an attached EventLoop', async (backend) => {
    const loop = new EventLoop(backend).attach();
    const ring = new ringMod.Ring({ bufferCount: 64, bufferSize: 4096 });
    const detach = ring.attach(loop);
    const server = new ringNet.RingTcpServer(ring, {});
    server.onconnection = (c: Connection) => {
      c.ondata = (d) => c.write(d);
      c.onend = () => c.end();
    };
    const one = async (): Promise<void> => {
      const sock = net.connect(server.address.port, '127.0.0.1');
      const msg = crypto.randomBytes(10_000);
      const back: Buffer[] = [];
      let have = 0;
      await new Promise<void>((resolve, reject) => {
        sock.on('data', (d) => {
          back.push(d);
          have += d.length;
          if (have >= msg.length) sock.end();
        });
        sock.on('close', () => resolve());
        sock.on('error', reject);
        sock.write(msg);
      });
      expect(Buffer.concat(back).equals(msg)).toBe(true);
    };
    await Promise.all(Array.from({ length: 10 }, one));
    server.close();
    detach();
    ring.close();
    loop.detach();
    loop.close();
  });
});
