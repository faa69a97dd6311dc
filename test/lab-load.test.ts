// The native load generator: it must catch servers that lie (a flipped echo
// byte, extra bytes, a wrong http body, status or length), count connect
// errors and resets, validate its options, and in open loop measure latency
// from the intended send time.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as net from 'node:net';
import { runLoad, validateLoadOptions } from '../lib/lab/load';
import { bin } from './lab-helpers';

const servers: net.Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** A tiny in-process server; `onConn` gets every accepted socket. */
async function tinyServer(onConn: (s: net.Socket) => void): Promise<number> {
  const srv = net.createServer((s) => {
    s.on('error', () => {});
    onConn(s);
  });
  servers.push(srv);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  srv.unref();
  return (srv.address() as net.AddressInfo).port;
}

/** Echo that flips one bit of stream byte `at` on every connection. */
function flippingEcho(at: number) {
  return (s: net.Socket) => {
    let seen = 0;
    s.on('data', (d) => {
      const out = Buffer.from(d);
      if (at >= seen && at < seen + out.length) out[at - seen] ^= 0x01;
      seen += d.length;
      s.write(out);
    });
  };
}

/** An http server that answers every request with `response`. */
function fixedHttp(response: string) {
  return (s: net.Socket) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\r\n\r\n')) >= 0) {
        buf = buf.slice(i + 4);
        s.write(response);
      }
    });
  };
}

describe('load generator verification', () => {
  it('reports a corrupted echo (one flipped byte) as a verification error', async () => {
    const port = await tinyServer(flippingEcho(1000));
    const r = await runLoad({ port, conns: 4, size: 100, duration: 0.3, threads: 1 });
    expect(r.connected).toBe(4);
    expect(r.verifyErrors).toBe(4);  // every connection hit byte 1000
    expect(r.firstError).toMatch(/echo byte 1000: expected 0x[0-9a-f]{2}, got 0x[0-9a-f]{2}/);
    // Everything before the flipped byte verified.
    expect(r.bytesVerified).toBe(4 * 1000);
    expect(r.requests).toBe(4 * 10);
  });

  it('a correct echo server passes (the same harness, nothing flipped)', async () => {
    const port = await tinyServer((s) => s.pipe(s));
    const r = await runLoad({ port, conns: 4, size: 100, duration: 0.3, threads: 1 });
    expect(r.verifyErrors).toBe(0);
    expect(r.firstError).toBeNull();
    // Every request answered and every byte of it verified (no count that
    // depends on how fast this machine is).
    expect(r.requests).toBeGreaterThan(0);
    expect(r.unanswered).toBe(0);
    expect(r.bytesVerified).toBe(r.requests * 100);
  });

  it('reports an echo that returns more bytes than were sent', async () => {
    const port = await tinyServer((s) => s.on('data', (d) => s.write(Buffer.concat([d, Buffer.from('!')]))));
    const r = await runLoad({ port, conns: 2, size: 10, duration: 0.2 });
    expect(r.verifyErrors).toBe(2);
    expect(r.firstError).toMatch(/more bytes than were sent/);
  });

  it('reports an http server returning a wrong body', async () => {
    const port = await tinyServer(fixedHttp('HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World?'));
    const r = await runLoad({ port, protocol: 'http', conns: 3, duration: 0.2 });
    expect(r.verifyErrors).toBe(3);
    expect(r.requests).toBe(0);
    expect(r.firstError).toMatch(/http body byte 12: expected '!'/);
  });

  it('reports a wrong status, a wrong Content-Length, chunked encoding', async () => {
    const cases: Array<[string, RegExp]> = [
      ['HTTP/1.1 500 Oops\r\nContent-Length: 13\r\n\r\nHello, World!', /status 500/],
      ['HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nHello, World', /Content-Length 12, expected 13/],
      ['HTTP/1.1 200 OK\r\n\r\nHello, World!', /without Content-Length/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nHello, World!\r\n0\r\n\r\n', /Transfer-Encoding/],
      ['SMTP ready\r\n', /not an HTTP\/1.x status line/],
    ];
    for (const [response, why] of cases) {
      const port = await tinyServer(fixedHttp(response));
      const r = await runLoad({ port, protocol: 'http', conns: 1, duration: 0.1 });
      expect(r.verifyErrors, response).toBe(1);
      expect(r.firstError, response).toMatch(why);
    }
  });

  it('accepts extra headers (Date, Keep-Alive) and responses split anywhere', async () => {
    const response = 'HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\ncontent-length:  13 \r\n\r\nHello, World!';
    const port = await tinyServer((s) => {
      let buf = '';
      s.on('data', async (d) => {
        buf += d.toString('latin1');
        while (buf.includes('\r\n\r\n')) {
          buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
          // One byte per write, as slowly as Nagle-free TCP allows.
          for (let i = 0; i < response.length; i += 7) s.write(response.slice(i, i + 7));
        }
      });
      s.setNoDelay(true);
    });
    const r = await runLoad({ port, protocol: 'http', conns: 2, depth: 3, duration: 0.3 });
    expect(r.firstError).toBeNull();
    expect(r.verifyErrors).toBe(0);
    expect(r.requests).toBeGreaterThan(0);
    expect(r.bytesVerified).toBe(r.requests * response.length);
  });

  it('counts refused connections as connect errors', async () => {
    const port = await tinyServer(() => {});
    await new Promise((r) => servers.pop()!.close(r));
    const r = await runLoad({ port, conns: 5, duration: 0.1 });
    expect(r.connected).toBe(0);
    expect(r.connectErrors).toBe(5);
    expect(r.firstConnectError).toMatch(/ECONNREFUSED/);
  });

  it('counts resets and server closes, and unanswered requests', async () => {
    const port = await tinyServer((s) => {
      s.once('data', () => s.resetAndDestroy());
    });
    const r = await runLoad({ port, conns: 3, duration: 0.3, sources: 3 });
    expect(r.connected).toBe(3);
    expect(r.resets + r.serverCloses).toBe(3);
    expect(r.unanswered).toBe(3);
    expect(r.idleConns).toBe(3);
  });

  it('spreads connections over source addresses 127.0.0.1 .. 127.0.0.N', async () => {
    const seen = new Set<string>();
    const port = await tinyServer((s) => {
      seen.add(s.remoteAddress ?? '');
      s.pipe(s);
    });
    const r = await runLoad({ port, conns: 12, sources: 4, duration: 0.1 });
    expect(r.verifyErrors).toBe(0);
    expect(r.connected).toBe(12);
    expect([...seen].sort()).toEqual(['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4']);
  });

  it('pipelines: depth D keeps D requests in flight', async () => {
    let maxInFlight = 0;
    const port = await tinyServer((s) => {
      // Holds replies until 4 requests (of 10 bytes) are there, then echoes them.
      let pending: Buffer[] = [];
      let n = 0;
      s.on('data', (d) => {
        pending.push(d);
        n += d.length;
        maxInFlight = Math.max(maxInFlight, n / 10);
        if (n >= 40) {
          s.write(Buffer.concat(pending));
          pending = [];
          n = 0;
        }
      });
    });
    const r = await runLoad({ port, conns: 1, size: 10, depth: 4, duration: 0.2 });
    expect(r.verifyErrors).toBe(0);
    expect(r.requests).toBeGreaterThan(0);
    expect(r.requests % 4).toBe(0);
    expect(maxInFlight).toBe(4);
  });
});

/** Echo that, once `bytes` have come in, stops reading for `ms`. */
function stallAfter(bytes: number, ms: number) {
  return (s: net.Socket) => {
    let seen = 0;
    let stalled = false;
    s.on('data', (d) => {
      s.write(d);
      seen += d.length;
      if (!stalled && seen >= bytes) {
        stalled = true;
        s.pause();
        setTimeout(() => s.resume(), ms);
      }
    });
  };
}

describe('open loop', () => {
  it('measures latency from the intended send time: a stalled server shows as latency', async () => {
    // An echo server that stops reading for 400 ms after 100 requests
    // (200 ms into the run at 500/s), however slowly the run started.
    const port = await tinyServer(stallAfter(1600, 400));
    const r = await runLoad({ port, conns: 1, size: 16, duration: 1, rate: 500, connectTimeout: 5 });
    expect(r.verifyErrors).toBe(0);
    // Requests leave on schedule: never more than rate x duration.
    expect(r.requests).toBeLessThanOrEqual(500 + 1);
    expect(r.requests).toBeGreaterThan(0);
    // About 200 requests were due during the stall, each waiting up to 400 ms:
    // a closed loop would record one slow request; here tens of percent are slow.
    expect(r.latencyUs.max).toBeGreaterThanOrEqual(300_000);
    expect(r.latencyUs.p90).toBeGreaterThanOrEqual(50_000);
  });

  it('a closed loop against the same stall records one slow request per connection', async () => {
    const port = await tinyServer(stallAfter(1600, 400));
    const r = await runLoad({ port, conns: 1, size: 16, duration: 1 });
    expect(r.latencyUs.max).toBeGreaterThanOrEqual(300_000);
    // Hundreds of fast requests before and after, one stalled one: p90 stays small
    // compared with the 400 ms stall.
    expect(r.requests).toBeGreaterThan(20);
    expect(r.latencyUs.p90).toBeLessThan(r.latencyUs.max);
  });
});

describe('options', () => {
  it('validates with errors naming the option', () => {
    expect(() => validateLoadOptions({} as never)).toThrow(/port is required/);
    expect(() => validateLoadOptions({ port: 0 })).toThrow(RangeError);
    expect(() => validateLoadOptions({ port: 80, host: 'localhost' })).toThrow(/host must be an IPv4 or IPv6 literal/);
    expect(() => validateLoadOptions({ port: 80, conns: 0 })).toThrow(/conns/);
    expect(() => validateLoadOptions({ port: 80, conns: 1.5 })).toThrow(/conns/);
    expect(() => validateLoadOptions({ port: 80, size: '8' as never })).toThrow(TypeError);
    expect(() => validateLoadOptions({ port: 80, depth: 0 })).toThrow(/depth/);
    expect(() => validateLoadOptions({ port: 80, duration: -1 })).toThrow(/duration/);
    expect(() => validateLoadOptions({ port: 80, rate: NaN })).toThrow(/rate/);
    expect(() => validateLoadOptions({ port: 80, workUs: 10, workRatio: 0.5 })).toThrow(/need protocol http/);
    expect(() => validateLoadOptions({ port: 80, protocol: 'http', workRatio: 0.5 })).toThrow(/workUs > 0/);
    expect(() => validateLoadOptions({ port: 80, protocol: 'ftp' as never })).toThrow(/protocol/);
    expect(() => validateLoadOptions({ port: 80, host: '10.0.0.1', sources: 2 })).toThrow(/sources/);
    expect(validateLoadOptions({ port: 80, conns: 10000 }).sources).toBe(3);
    expect(validateLoadOptions({ port: 80, conns: 2, threads: 8 }).threads).toBe(2);
  });

  it('the CLI: bad usage exits 2; a corrupted echo exits 1 with the error in --json', async () => {
    const usage = spawnSync(process.execPath, [bin, 'load', '--port', 'x'], { encoding: 'utf8' });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/--port must be an integer/);
    const port = await tinyServer(flippingEcho(5));
    const run = await new Promise<{ status: number | null; stdout: string }>((resolve) => {
      const c = spawn(process.execPath, [bin, 'load', '--port', String(port), '--conns', '2', '--duration', '0.2', '--json', '--quiet']);
      let stdout = '';
      c.stdout.on('data', (d: Buffer) => (stdout += d));
      c.on('exit', (status) => resolve({ status, stdout }));
    });
    expect(run.status).toBe(1);
    const j = JSON.parse(run.stdout);
    expect(j.verifyErrors).toBe(2);
    expect(j.firstError).toMatch(/echo byte 5/);
  });
});

describe('progress and cancellation', () => {
  it('reports progress while it runs, and an abort ends the run early with the result so far', async () => {
    const port = await tinyServer((s) => s.pipe(s));
    const seen: string[] = [];
    const ac = new AbortController();
    const t0 = performance.now();
    const run = runLoad({
      port,
      conns: 2,
      duration: 30,
      progressInterval: 50,
      signal: ac.signal,
      onProgress: (p) => {
        seen.push(p.phase);
        expect(p.connected).toBeLessThanOrEqual(2);
        if (p.requests > 0 && seen.length >= 3) ac.abort();
      },
    });
    const r = await run;
    expect(performance.now() - t0).toBeLessThan(25_000);
    expect(seen).toContain('run');
    expect(r.cancelled).toBe(true);
    expect(r.durationS).toBeLessThan(30);
    expect(r.requests).toBeGreaterThan(0);
    expect(r.verifyErrors).toBe(0);
  });
});
