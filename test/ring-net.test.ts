// TCP on a Ring (lib/ring-net.ts): the completion transport behind the shared
// Server/Connection interfaces. Clients are plain sockets driven by sys (in
// this thread, between ring iterations), Node's own net in a worker thread,
// or ring connections. Skipped, with the reason printed, without io_uring.
import { afterEach, describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import * as os from 'node:os';
import { ErrnoError, Ring, RingTcpServer, ringConnect, sys, type RingConnection } from '../lib/index';
import type { Connection } from '../lib/net-types';

const E = os.constants.errno;
const probe = Ring.probe();
const skip = !probe.available;
if (skip) console.log(`ring-net: skipping the Ring transport tests: ${probe.reason}`);

/** Runs ring iterations until done() (bounded: 15 s by default). */
function drive(ring: Ring, done: () => boolean, limitMs = 15_000): void {
  const deadline = Date.now() + limitMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('drive: condition not reached within the limit');
    const n = ring.submitAndWait(1, 5);
    if (n > 0) ring.oncompletions!(n);
  }
}

/** A non-blocking client socket connected to 127.0.0.1:port, driven by sys. */
function client(port: number, rcvbuf?: number): number {
  const fd = sys.socket('ipv4');
  if (rcvbuf) sys.setsockopt(fd, 'SO_RCVBUF', rcvbuf);
  const rc = sys.connect(fd, '127.0.0.1', port);
  expect([0, sys.EINPROGRESS]).toContain(rc);
  return fd;
}

/** Reads what is there now: bytes, 'eof', or null (nothing yet). */
function readSome(fd: number, max = 65536): Buffer | 'eof' | null {
  const buf = Buffer.alloc(max);
  const n = sys.read(fd, buf);
  if (n > 0) return buf.subarray(0, n);
  if (n === 0) return 'eof';
  if (n === sys.EAGAIN) return null;
  throw new ErrnoError(-n, 'read');
}

function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >>> 10)) & 0xff;
  return b;
}

describe.skipIf(skip)('Ring TCP transport', () => {
  const rings: Ring[] = [];
  const fds: number[] = [];
  const newRing = (o?: ConstructorParameters<typeof Ring>[0]) => {
    const r = new Ring(o);
    rings.push(r);
    return r;
  };
  const track = (fd: number) => {
    fds.push(fd);
    return fd;
  };
  afterEach(() => {
    for (const r of rings.splice(0)) r.close();
    for (const fd of fds.splice(0)) {
      try {
        sys.close(fd);
      } catch {
        /* already closed */
      }
    }
  });

  it('echoes a round trip; the server sees onend, and onclose once', () => {
    const ring = newRing();
    const server = new RingTcpServer(ring);
    expect(server.address.address).toBe('127.0.0.1');
    expect(server.address.port).toBeGreaterThan(0);
    const events: string[] = [];
    server.onconnection = (c) => {
      c.ondata = (d) => c.write(d);
      c.onend = () => {
        events.push('end');
        c.end();
      };
      c.onclose = (hadError) => events.push(`close:${hadError}`);
    };
    const fd = track(client(server.address.port));
    drive(ring, () => server.connections === 1);
    expect(sys.write(fd, Buffer.from('hello, ring'))).toBe(11);
    let got = Buffer.alloc(0);
    drive(ring, () => {
      const r = readSome(fd);
      if (r instanceof Buffer) got = Buffer.concat([got, r]);
      return got.length === 11;
    });
    expect(got.toString()).toBe('hello, ring');
    sys.shutdown(fd, 'write');
    let eof = false;
    drive(ring, () => (eof = readSome(fd) === 'eof') && events.length === 2);
    expect(eof).toBe(true);
    expect(events).toEqual(['end', 'close:false']);
    expect(server.connections).toBe(0);
    server.close();
  });

  it('connects through the ring (ringConnect) and echoes', () => {
    const ring = newRing();
    const server = new RingTcpServer(ring);
    server.onconnection = (c) => {
      c.ondata = (d) => c.write(d);
      c.onend = () => c.end();
    };
    const conn = ringConnect(ring, server.address.port);
    let connected = false;
    let got = '';
    let closed: boolean | null = null;
    conn.onconnect = () => (connected = true);
    conn.ondata = (d) => {
      got += Buffer.from(d).toString();
      if (got.length === 10) conn.end();
    };
    conn.onclose = (hadError) => (closed = hadError);
    conn.write('01234'); // queued until connected
    conn.write('56789');
    drive(ring, () => closed !== null);
    expect(connected).toBe(true);
    expect(got).toBe('0123456789');
    expect(closed).toBe(false);
    server.close();
  });

  it('reports a refused connect as onerror(ECONNREFUSED) then onclose(true)', () => {
    const ring = newRing();
    const lfd = sys.listenTcp('127.0.0.1', 0);
    const port = sys.getsockname(lfd).port!;
    sys.close(lfd); // nobody listens there now
    const conn = ringConnect(ring, port);
    const errors: string[] = [];
    let closed: boolean | null = null;
    conn.onerror = (e) => errors.push(e.code);
    conn.onclose = (hadError) => (closed = hadError);
    drive(ring, () => closed !== null);
    expect(errors).toEqual(['ECONNREFUSED']);
    expect(closed).toBe(true);
  });

  it('sends 1 MiB to a slow reader intact and in order, through backpressure (write() false, then ondrain)', () => {
    const ring = newRing();
    const server = new RingTcpServer(ring, { highWaterMark: 32 * 1024 });
    const data = pattern(1024 * 1024);
    let falses = 0;
    let drains = 0;
    let maxQueued = 0;
    let serverClosed: boolean | null = null;
    server.onconnection = (c) => {
      sys.setsockopt(c.fd, 'SO_SNDBUF', 8192);
      let off = 0;
      const pump = () => {
        while (off < data.length) {
          const chunk = data.subarray(off, off + 16 * 1024);
          off += chunk.length;
          const ok = c.write(chunk);
          maxQueued = Math.max(maxQueued, c.writableLength);
          if (!ok) {
            falses++;
            return; // wait for ondrain
          }
        }
        c.end();
      };
      c.ondrain = () => {
        drains++;
        pump();
      };
      c.onclose = (hadError) => (serverClosed = hadError);
      pump();
    };
    const fd = track(client(server.address.port, 4096));
    const parts: Buffer[] = [];
    let got = 0;
    let eof = false;
    drive(
      ring,
      () => {
        const r = readSome(fd, 4096); // at most 4 KiB per iteration: a slow reader
        if (r === 'eof') eof = true;
        else if (r) {
          parts.push(Buffer.from(r));
          got += r.length;
        }
        return eof;
      },
      30_000,
    );
    expect(got).toBe(data.length);
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    expect(falses).toBeGreaterThan(0);
    expect(drains).toBe(falses);
    expect(maxQueued).toBeLessThan(32 * 1024 + 16 * 1024);
    sys.close(fd);
    fds.splice(fds.indexOf(fd), 1);
    drive(ring, () => serverClosed !== null);
    expect(serverClosed).toBe(false);
  });

  it('turns a peer reset into onerror(ECONNRESET) and onclose(true), never a crash', () => {
    const ring = newRing();
    const server = new RingTcpServer(ring);
    const errors: ErrnoError[] = [];
    const closes: boolean[] = [];
    server.onconnection = (c) => {
      c.ondata = () => {};
      c.onerror = (e) => errors.push(e);
      c.onclose = (hadError) => closes.push(hadError);
    };
    const fd = client(server.address.port);
    drive(ring, () => server.connections === 1);
    sys.setsockopt(fd, 'SO_LINGER', 0); // close() now sends RST
    sys.close(fd);
    drive(ring, () => closes.length === 1);
    expect(errors.map((e) => [e.code, e.syscall])).toEqual([['ECONNRESET', 'recv']]);
    expect(errors[0]).toBeInstanceOf(ErrnoError);
    expect(closes).toEqual([true]);
    expect(server.connections).toBe(0);
  });

  it('survives a reset while sends are queued: one error, one close, later writes are dropped', () => {
    const ring = newRing();
    const server = new RingTcpServer(ring);
    let conn: Connection | null = null;
    const errors: string[] = [];
    const closes: boolean[] = [];
    server.onconnection = (c) => {
      conn = c;
      sys.setsockopt(c.fd, 'SO_SNDBUF', 4096);
      c.onerror = (e) => errors.push(e.code);
      c.onclose = (hadError) => closes.push(hadError);
      for (let i = 0; i < 64; i++) c.write(pattern(16 * 1024)); // far more than the peer will read
    };
    const fd = client(server.address.port, 4096);
    drive(ring, () => conn !== null);
    for (let i = 0; i < 5; i++) ring.submitAndWait(0, 0);
    sys.setsockopt(fd, 'SO_LINGER', 0);
    sys.close(fd);
    drive(ring, () => closes.length === 1);
    expect(errors).toHaveLength(1);
    expect(['ECONNRESET', 'EPIPE']).toContain(errors[0]);
    expect(closes).toEqual([true]);
    expect(conn!.closed).toBe(true);
    expect(conn!.writableLength).toBe(0);
    expect(conn!.write('late')).toBe(false); // dropped: the connection is gone
    for (let i = 0; i < 5; i++) ring.submitAndWait(0, 0);
    expect(closes).toEqual([true]);
  });

  it('half-closes: the client ends first, the server still replies, then ends', () => {
    const ring = newRing();
    const server = new RingTcpServer(ring);
    const log: string[] = [];
    server.onconnection = (c) => {
      let text = '';
      c.ondata = (d) => (text += Buffer.from(d).toString());
      c.onend = () => {
        log.push(`end:${text}`);
        c.write(`reply to ${text}`); // allowed: only the peer's direction is closed
        c.end();
      };
      c.onclose = (e) => log.push(`close:${e}`);
    };
    const fd = track(client(server.address.port));
    drive(ring, () => server.connections === 1);
    sys.write(fd, Buffer.from('question'));
    sys.shutdown(fd, 'write');
    let reply = '';
    let eof = false;
    drive(ring, () => {
      const r = readSome(fd);
      if (r === 'eof') eof = true;
      else if (r) reply += r.toString();
      return eof && log.length === 2;
    });
    expect(reply).toBe('reply to question');
    expect(log).toEqual(['end:question', 'close:false']);
  });

  it('half-closes: the server ends first, the client keeps writing until it ends too', () => {
    const ring = newRing();
    const server = new RingTcpServer(ring);
    const log: string[] = [];
    let received = '';
    server.onconnection = (c) => {
      c.ondata = (d) => (received += Buffer.from(d).toString());
      c.onend = () => log.push('end');
      c.onclose = (e) => log.push(`close:${e}`);
      c.end('bye');
      expect(() => c.write('more')).toThrow(/after end/);
    };
    const fd = track(client(server.address.port));
    let text = '';
    let eof = false;
    drive(ring, () => {
      const r = readSome(fd);
      if (r === 'eof') eof = true;
      else if (r) text += r.toString();
      return eof;
    });
    expect(text).toBe('bye');
    expect(sys.write(fd, Buffer.from('late words'))).toBe(10); // our side is still open
    drive(ring, () => received === 'late words');
    expect(log).toEqual([]);
    sys.shutdown(fd, 'write');
    drive(ring, () => log.length === 2);
    expect(log).toEqual(['end', 'close:false']);
  });

  it('destroy() closes at once, drops the queue, and calls onclose(false) once', () => {
    const ring = newRing();
    const server = new RingTcpServer(ring);
    let conn: Connection | null = null;
    const closes: boolean[] = [];
    server.onconnection = (c) => {
      conn = c;
      c.onclose = (e) => closes.push(e);
    };
    const fd = track(client(server.address.port));
    drive(ring, () => conn !== null);
    conn!.write('never sent');
    conn!.destroy();
    conn!.destroy();
    expect(conn!.closed).toBe(true);
    expect(conn!.writableLength).toBe(0);
    let eof = false;
    drive(ring, () => closes.length === 1 && (eof = eof || readSome(fd) === 'eof'));
    expect(closes).toEqual([false]);
    expect(server.connections).toBe(0);
  });

  it('close() stops accepting; open connections stay open', () => {
    const ring = newRing();
    const server = new RingTcpServer(ring);
    let conn: Connection | null = null;
    let listenerClosed = false;
    server.onconnection = (c) => {
      conn = c;
      c.ondata = (d) => c.write(d);
    };
    server.onclose = () => (listenerClosed = true);
    const fd = track(client(server.address.port));
    drive(ring, () => conn !== null);
    server.close();
    drive(ring, () => listenerClosed);
    const late = track(sys.socket('ipv4'));
    const rc = sys.connect(late, '127.0.0.1', server.address.port);
    if (rc === sys.EINPROGRESS) {
      const deadline = Date.now() + 5000;
      let err = 0;
      while (err === 0 && Date.now() < deadline) err = sys.getsockopt(late, 'SO_ERROR');
      expect(err).toBe(E.ECONNREFUSED);
    } else {
      expect(rc).toBe(sys.ECONNREFUSED);
    }
    sys.write(fd, Buffer.from('still here'));
    let got = '';
    drive(ring, () => {
      const r = readSome(fd);
      if (r instanceof Buffer) got += r.toString();
      return got === 'still here';
    });
    expect(conn!.closed).toBe(false);
  });

  it('reports EMFILE on accept through onerror and keeps accepting once fds are free', () => {
    const ring = newRing();
    const server = new RingTcpServer(ring);
    const errors: string[] = [];
    let accepted = 0;
    server.onerror = (e) => errors.push(e.code);
    server.onconnection = () => accepted++;
    track(client(server.address.port));
    // Use up every free fd so the pending accept fails.
    const filler: number[] = [];
    try {
      for (;;) {
        const rc = (() => {
          try {
            return sys.dup(0);
          } catch (err) {
            if ((err as ErrnoError).code === 'EMFILE') return -1;
            throw err;
          }
        })();
        if (rc < 0) break;
        filler.push(rc);
        if (filler.length > 100_000) throw new Error('no fd limit?');
      }
      drive(ring, () => errors.length > 0);
    } finally {
      for (const f of filler) sys.close(f);
    }
    expect(errors[0]).toBe('EMFILE');
    expect(accepted).toBe(0);
    drive(ring, () => accepted === 1); // retried after a pause, now with fds to spare
    expect(server.connections).toBe(1);
  });

  it('gives ondata a view into the ring buffer that is recycled after the callback', () => {
    const ring = newRing({ bufferCount: 4, bufferSize: 256 });
    const server = new RingTcpServer(ring);
    const views: Uint8Array[] = [];
    const copies: string[] = [];
    server.onconnection = (c) => {
      c.ondata = (d) => {
        expect(d.buffer).toBe(ring.buffers);
        views.push(d);
        copies.push(Buffer.from(d).toString());
      };
    };
    const fd = track(client(server.address.port));
    drive(ring, () => server.connections === 1);
    for (let i = 0; i < 20; i++) {
      sys.write(fd, Buffer.from(`message ${i};`));
      drive(ring, () => copies.join('').includes(`message ${i};`));
    }
    expect(copies.join('')).toBe(Array.from({ length: 20 }, (_, i) => `message ${i};`).join(''));
    expect(ring.buffersFree).toBe(4); // every buffer went back
  });

  it('rejects bad arguments with TypeError/RangeError naming them', () => {
    const ring = newRing();
    expect(() => new RingTcpServer({} as Ring)).toThrow(/ring must be a Ring/);
    expect(() => new RingTcpServer(ring, { port: -1 })).toThrow(RangeError);
    expect(() => new RingTcpServer(ring, { host: 'localhost' })).toThrow(/options\.host/);
    expect(() => new RingTcpServer(ring, { highWaterMark: -1 })).toThrow(/highWaterMark/);
    expect(() => ringConnect(ring, 0)).toThrow(/port/);
    expect(() => ringConnect(ring, 80, 'example.com')).toThrow(TypeError);
    const bare = newRing({ bufferCount: 0 });
    expect(() => new RingTcpServer(bare)).toThrow(/bufferCount/);
    const taken = newRing();
    taken.oncompletions = () => {};
    expect(() => new RingTcpServer(taken)).toThrow(/oncompletions/);
    const closed = new Ring();
    closed.close();
    expect(() => new RingTcpServer(closed)).toThrow(ErrnoError);
  });

  it('echoes 10,000 messages over 100 connections byte-for-byte (clients: node:net in a worker)', async () => {
    // The echo server, as a user would write it:
    const ring = newRing({ bufferCount: 1024, bufferSize: 4096 });
    const server = new RingTcpServer(ring);
    let closed = 0;
    server.onconnection = (c) => {
      c.ondata = (chunk) => c.write(chunk);
      c.onend = () => c.end();
      c.onclose = () => {
        if (++closed === 100) ring.stop();
      };
    };
    // Clients in a worker thread, with Node's own net: 100 connections, 100
    // messages each, every byte compared with what was sent.
    const worker = new Worker(
      `
      const net = require('node:net');
      const { parentPort, workerData } = require('node:worker_threads');
      const { port, conns, msgs } = workerData;
      let done = 0, ok = 0, bytes = 0;
      const failures = [];
      for (let c = 0; c < conns; c++) {
        const parts = [];
        for (let m = 0; m < msgs; m++) parts.push(Buffer.from('c' + c + ' m' + m + ' ' + 'x'.repeat((c * 7 + m * 13) % 300) + '\\n'));
        const expected = Buffer.concat(parts);
        const got = [];
        let n = 0;
        const s = net.connect(port, '127.0.0.1', () => {
          for (const p of parts) s.write(p);
        });
        s.on('data', (d) => {
          got.push(d);
          n += d.length;
          if (n >= expected.length) s.end();
        });
        s.on('error', (e) => failures.push(c + ': ' + e.message));
        s.on('close', () => {
          const all = Buffer.concat(got);
          if (all.equals(expected)) ok++;
          else failures.push(c + ': got ' + all.length + ' of ' + expected.length + ' bytes');
          bytes += all.length;
          if (++done === conns) parentPort.postMessage({ ok, bytes, failures });
        });
      }
      `,
      { eval: true, workerData: { port: server.address.port, conns: 100, msgs: 100 } },
    );
    const result = new Promise<{ ok: number; bytes: number; failures: string[] }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    ring.run(undefined, { timeout: 40_000 }); // owns the thread until all 100 are closed
    const r = await result;
    await worker.terminate();
    expect(r.failures).toEqual([]);
    expect(r.ok).toBe(100);
    expect(closed).toBe(100);
    expect(server.connections).toBe(0);
    const s = ring.stats;
    expect(s.lost).toBe(0);
    console.log(
      `ring-net: 10,000 messages, ${r.bytes} bytes echoed over 100 connections: ${s.enters} io_uring_enter calls, ` +
        `${s.submitted} SQEs, ${s.reaped} CQEs`,
    );
    server.close();
  }, 60_000);
});
