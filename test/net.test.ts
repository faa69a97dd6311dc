// The readiness net layer (TcpServer/TcpConnection) on every available backend.
import { describe, expect, it } from 'vitest';
import * as net from 'node:net';
import * as crypto from 'node:crypto';
import { EventLoop, listenTcp, connectTcp, backends, sys, Mode } from '../lib';
import type { BackendName, BackendStatus, TcpConnection } from '../lib';
import { runFor } from './helpers/loop';
import { echoRandomRounds } from './helpers/echo';

const all = backends();
for (const b of all) if (!b.available) console.log(`net.test: skipping ${b.name}: ${b.reason}`);

// The "done when": an echo server written with the public API in
// under 25 lines, on a backend chosen by a string. (A test counts the lines.)
function echoServer(backend: string, port = 0) {
  const loop = new EventLoop(backend as BackendName);
  const server = listenTcp(loop, { port }, (conn) => {
    conn.ondata = (chunk) => {
      if (!conn.write(chunk)) conn.pause(); // backpressure: stop reading
    };
    conn.ondrain = () => conn.resume();
    conn.onerror = (err) => console.error('echo:', err.code);
  });
  return { loop, server };
}

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) % 251;
  return b;
}

/** A Node net client that reads exactly n bytes at a time. */
class Reader {
  private buf = Buffer.alloc(0);
  private want = 0;
  private wake: ((b: Buffer) => void) | null = null;
  constructor(private readonly sock: net.Socket) {
    sock.on('data', (d) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.check();
    });
  }
  read(n: number): Promise<Buffer> {
    return new Promise((resolve) => {
      this.want = n;
      this.wake = resolve;
      this.check();
    });
  }
  private check(): void {
    if (this.wake && this.buf.length >= this.want) {
      const out = this.buf.subarray(0, this.want);
      this.buf = this.buf.subarray(this.want);
      const w = this.wake;
      this.wake = null;
      w(out);
    }
  }
}

it('the echo server is under 25 lines', () => {
  expect(echoServer.toString().split('\n').length).toBeLessThan(25);
});

describe.each(all.map((b) => [b.name, b] as [string, BackendStatus]))('net on %s', (name, status) => {
  const test = it.skipIf(!status.available);
  const backend = name as BackendName;

  test('echo round trip; both sides close cleanly', async () => {
    const loop = new EventLoop(backend);
    const events: string[] = [];
    const server = listenTcp(loop, {}, (c) => {
      c.ondata = (d) => c.write(d);
      c.onclose = (hadError) => events.push(`server-close:${hadError}`);
    });
    expect(server.address.address).toBe('127.0.0.1');
    const c = connectTcp(loop, server.port);
    let got = '';
    c.onconnect = () => events.push('connect');
    c.write('hello, '); // queued until connected
    c.write(Buffer.from('world'));
    c.ondata = (d) => {
      got += Buffer.from(d).toString();
      if (got.length === 12) c.end();
    };
    c.onend = () => events.push('client-end');
    c.onclose = (hadError) => {
      events.push(`client-close:${hadError}`);
      server.close();
    };
    const r = await runFor(loop);
    expect(r.timedOut).toBe(false);
    expect(got).toBe('hello, world');
    expect(events[0]).toBe('connect');
    expect(events).toContain('client-end');
    expect(events).toContain('client-close:false');
    expect(events).toContain('server-close:false');
    expect(server.connections).toBe(0);
    expect(c.closed).toBe(true);
    loop.close();
  });

  test('1 MiB to a slow reader arrives intact and in order, through backpressure', async () => {
    const loop = new EventLoop(backend);
    const total = 1 << 20;
    const data = pattern(total);
    let sawFalse = false;
    let drains = 0;
    let serverClosed: boolean | null = null;
    const server = listenTcp(loop, { highWaterMark: 64 * 1024 }, (c) => {
      sys.setsockopt(c.fd, 'SO_SNDBUF', 8192);
      let off = 0;
      const pump = (): void => {
        while (off < total) {
          const n = Math.min(50_000, total - off);
          const ok = c.write(data.subarray(off, off + n));
          off += n;
          if (!ok) {
            sawFalse = true;
            expect(c.writableLength).toBeGreaterThanOrEqual(64 * 1024);
            return;
          }
        }
        c.end();
      };
      c.ondrain = () => {
        drains++;
        expect(c.writableLength).toBe(0);
        pump();
      };
      c.onclose = (hadError) => (serverClosed = hadError);
      pump();
    });
    const client = connectTcp(loop, server.port);
    sys.setsockopt(client.fd, 'SO_RCVBUF', 16384);
    const chunks: Buffer[] = [];
    let ended = false;
    let clientClosed: boolean | null = null;
    client.ondata = (d) => {
      chunks.push(Buffer.from(d)); // the chunk is reused after the callback: copy
      client.pause(); // a slow reader: one read per millisecond
      loop.setTimeout(() => client.resume(), 1);
    };
    client.onend = () => {
      ended = true;
      client.end();
    };
    client.onclose = (hadError) => {
      clientClosed = hadError;
      server.close();
    };
    const r = await runFor(loop, 30_000);
    expect(r.timedOut).toBe(false);
    const got = Buffer.concat(chunks);
    expect(got.length).toBe(total);
    expect(got.equals(data)).toBe(true);
    expect(sawFalse).toBe(true);
    expect(drains).toBeGreaterThanOrEqual(1);
    expect(ended).toBe(true);
    expect(clientClosed).toBe(false);
    expect(serverClosed).toBe(false);
    expect(chunks.length).toBeGreaterThan(1);
    loop.close();
  });

  test('peer reset (SO_LINGER 0): onerror ECONNRESET then onclose(true), on either side', async () => {
    const loop = new EventLoop(backend);
    const serverSide: string[] = [];
    const clientSide: string[] = [];
    let accepted = 0;
    const server = listenTcp(loop, {}, (c) => {
      accepted++;
      if (accepted === 1) {
        // Connection 1: the server resets; the client sees it.
        sys.setsockopt(c.fd, 'SO_LINGER', 0);
        c.destroy();
        return;
      }
      // Connection 2: the client resets; the server sees it.
      c.onerror = (e) => serverSide.push(`error:${e.code}:${e.syscall}`);
      c.onclose = (hadError) => {
        serverSide.push(`close:${hadError}`);
        server.close();
      };
    });
    const c1 = connectTcp(loop, server.port);
    c1.onerror = (e) => clientSide.push(`error:${e.code}`);
    c1.onclose = (hadError) => {
      clientSide.push(`close:${hadError}`);
      const c2 = connectTcp(loop, server.port);
      c2.onconnect = () => {
        c2.write('some bytes first');
        loop.setTimeout(() => {
          sys.setsockopt(c2.fd, 'SO_LINGER', 0);
          c2.destroy();
        }, 5);
      };
    };
    const r = await runFor(loop);
    expect(r.timedOut).toBe(false);
    expect(clientSide).toHaveLength(2);
    expect(clientSide[0]).toMatch(/^error:(ECONNRESET|EPIPE)$/);
    expect(clientSide[1]).toBe('close:true');
    expect(serverSide).toHaveLength(2);
    expect(serverSide[0]).toMatch(/^error:(ECONNRESET|EPIPE):read$/);
    expect(serverSide[1]).toBe('close:true');
    loop.close();
  });

  test('writing to a reset peer: EPIPE/ECONNRESET from write() arrives as onerror + onclose, never a throw', async () => {
    const loop = new EventLoop(backend);
    const events: string[] = [];
    const server = listenTcp(loop, {}, (c) => {
      sys.setsockopt(c.fd, 'SO_LINGER', 0);
      loop.setTimeout(() => c.destroy(), 5);
    });
    const c = connectTcp(loop, server.port);
    c.pause(); // never read: the reset shows up on a write
    const chunk = Buffer.alloc(1024, 1);
    let writes = 0;
    const iv = loop.setInterval(() => {
      writes++;
      c.write(chunk); // returns false once closed; must not throw
    }, 1);
    c.onerror = (e) => events.push(`error:${e.code}`);
    c.onclose = (hadError) => {
      events.push(`close:${hadError}`);
      expect(c.write(chunk)).toBe(false);
      loop.clearTimer(iv);
      server.close();
    };
    const r = await runFor(loop);
    expect(r.timedOut).toBe(false);
    expect(writes).toBeGreaterThan(0);
    expect(events).toHaveLength(2);
    expect(events[0]).toMatch(/^error:(EPIPE|ECONNRESET)$/);
    expect(events[1]).toBe('close:true');
    loop.close();
  });

  test('half-close: the client ends first, the server still answers', async () => {
    const loop = new EventLoop(backend);
    let serverGot = '';
    let serverClosed: boolean | null = null;
    const server = listenTcp(loop, {}, (c) => {
      c.ondata = (d) => (serverGot += Buffer.from(d).toString());
      c.onend = () => {
        expect(c.readableEnded).toBe(true);
        c.write('answer to ' + serverGot); // writing after the peer's FIN is allowed
        c.end();
      };
      c.onclose = (hadError) => (serverClosed = hadError);
    });
    const c = connectTcp(loop, server.port);
    let clientGot = '';
    let clientEnded = false;
    let clientClosed: boolean | null = null;
    c.end('question');
    expect(() => c.write('more')).toThrow(/write after end/);
    c.ondata = (d) => (clientGot += Buffer.from(d).toString());
    c.onend = () => (clientEnded = true);
    c.onclose = (hadError) => {
      clientClosed = hadError;
      server.close();
    };
    const r = await runFor(loop);
    expect(r.timedOut).toBe(false);
    expect(serverGot).toBe('question');
    expect(clientGot).toBe('answer to question');
    expect(clientEnded).toBe(true);
    expect(clientClosed).toBe(false);
    expect(serverClosed).toBe(false);
    loop.close();
  });

  test('half-close: the server ends first, the client still answers', async () => {
    const loop = new EventLoop(backend);
    let serverGot = '';
    let serverEnded = false;
    let serverClosed: boolean | null = null;
    const server = listenTcp(loop, {}, (c) => {
      c.end('greeting');
      c.ondata = (d) => (serverGot += Buffer.from(d).toString());
      c.onend = () => (serverEnded = true);
      c.onclose = (hadError) => {
        serverClosed = hadError;
        server.close();
      };
    });
    const c = connectTcp(loop, server.port);
    let clientGot = '';
    let clientClosed: boolean | null = null;
    c.ondata = (d) => (clientGot += Buffer.from(d).toString());
    c.onend = () => {
      c.write('reply after FIN');
      c.end();
    };
    c.onclose = (hadError) => (clientClosed = hadError);
    const r = await runFor(loop);
    expect(r.timedOut).toBe(false);
    expect(clientGot).toBe('greeting');
    expect(serverGot).toBe('reply after FIN');
    expect(serverEnded).toBe(true);
    expect(clientClosed).toBe(false);
    expect(serverClosed).toBe(false);
    loop.close();
  });

  test('connect to a closed port: onerror ECONNREFUSED then onclose(true)', async () => {
    const loop = new EventLoop(backend);
    const probe = sys.listenTcp('127.0.0.1', 0);
    const port = sys.getsockname(probe).port!;
    sys.close(probe);
    const events: string[] = [];
    const c = connectTcp(loop, port);
    c.onconnect = () => events.push('connect');
    c.onerror = (e) => events.push(`error:${e.code}:${e.syscall}`);
    c.onclose = (hadError) => events.push(`close:${hadError}`);
    const r = await runFor(loop);
    expect(r.timedOut).toBe(false);
    expect(events).toEqual(['error:ECONNREFUSED:connect', 'close:true']);
    loop.close();
  });

  test('two loops serve one listening socket (options.fd, EXCLUSIVE where the backend has it)', () => {
    const lfd = sys.listenTcp('127.0.0.1', 0);
    const port = sys.getsockname(lfd).port!;
    const acceptMode = status.modes.exclusive === 'unsupported' ? Mode.LEVEL : Mode.EXCLUSIVE;
    const loops = [new EventLoop(backend), new EventLoop(backend)];
    const accepted = [0, 0];
    const servers = loops.map((loop, i) =>
      listenTcp(loop, { fd: lfd, acceptMode }, (c) => {
        accepted[i]++;
        c.destroy();
      }),
    );
    const clients = Array.from({ length: 20 }, () => {
      const fd = sys.socket('ipv4');
      sys.connect(fd, '127.0.0.1', port);
      return fd;
    });
    const deadline = Date.now() + 10_000;
    while (accepted[0] + accepted[1] < clients.length && Date.now() < deadline) {
      loops[0].runOnce(5);
      loops[1].runOnce(5);
    }
    expect(accepted[0] + accepted[1]).toBe(clients.length);
    for (const s of servers) s.close();
    expect(sys.fcntl(lfd, 'F_GETFD')).toBeGreaterThanOrEqual(0); // close() left the shared fd open
    for (const loop of loops) {
      loop.runOnce(0);
      loop.close();
    }
    for (const fd of clients) sys.close(fd);
    sys.close(lfd);
  });

  test('bad arguments: TypeError/RangeError naming the argument', () => {
    const loop = new EventLoop(backend);
    expect(() => listenTcp(loop, { host: 'localhost' })).toThrow(/host/);
    expect(() => listenTcp(loop, { port: 70000 })).toThrow(RangeError);
    expect(() => listenTcp({} as EventLoop)).toThrow(/loop must be an EventLoop/);
    expect(() => connectTcp(loop, 0)).toThrow(/port/);
    expect(() => connectTcp(loop, 80, 'example.com')).toThrow(/host/);
    const server = listenTcp(loop);
    const c = connectTcp(loop, server.port);
    expect(() => c.write(42 as unknown as string)).toThrow(/data must be/);
    c.destroy();
    c.destroy(); // twice is fine
    expect(c.closed).toBe(true);
    server.close();
    loop.runOnce(0);
    loop.close();
  });

  test('the <25-line echo server echoes 10,000 messages over 100 connections byte-for-byte', async () => {
    const { loop, server } = echoServer(name);
    loop.attach(); // Node's loop drives it: the clients below are Node's own net sockets
    const conns = 100;
    const perConn = 100;
    let verified = 0;
    let verifiedBytes = 0;
    const client = async (id: number): Promise<void> => {
      const sock = net.connect(server.port, '127.0.0.1');
      await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
      const reader = new Reader(sock);
      for (let i = 0; i < perConn; i++) {
        const len = 8 + crypto.randomInt(1, 3000);
        const msg = crypto.randomBytes(len);
        msg.writeUInt32BE(id, 0);
        msg.writeUInt32BE(i, 4);
        sock.write(msg);
        const back = await reader.read(len);
        if (!back.equals(msg)) throw new Error(`connection ${id} message ${i}: echo differs`);
        verified++;
        verifiedBytes += len;
      }
      sock.end();
      await new Promise((resolve) => sock.once('close', resolve));
    };
    await Promise.all(Array.from({ length: conns }, (_, id) => client(id)));
    expect(verified).toBe(conns * perConn);
    expect(verifiedBytes).toBeGreaterThan(conns * perConn * 8);
    // Every server-side connection saw its FIN and closed.
    for (let i = 0; i < 200 && server.connections > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(server.connections).toBe(0);
    server.close();
    loop.detach();
    loop.close();
  }, 60_000);

  test('owned mode: 50 iomux clients and the echo server on one loop', async () => {
    const { loop, server } = echoServer(name);
    let verified = 0;
    let closed = 0;
    const conns = 50;
    const perConn = 20;
    for (let id = 0; id < conns; id++) {
      const c: TcpConnection = connectTcp(loop, server.port);
      echoRandomRounds(c, perConn, 5000, () => verified++);
      c.onclose = () => {
        if (++closed === conns) server.close();
      };
    }
    const r = await runFor(loop, 30_000);
    expect(r.timedOut).toBe(false);
    expect(verified).toBe(conns * perConn);
    expect(server.connections).toBe(0);
    loop.close();
  });
});
