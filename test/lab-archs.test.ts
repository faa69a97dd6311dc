// The JS architectures beyond the shared conformance suite (lab-serve.test.ts):
// the in-place HTTP parser against the reference parser, the signal pipe,
// reactor on every backend and mode, the proactor's syscall counters,
// reactor-pool's ordering and offloading, multi-reactor's spread over workers
// and its EPOLLEXCLUSIVE variant.
import { describe, expect, it } from 'vitest';
import * as net from 'node:net';
import { EventLoop } from '../lib/loop';
import { backends, defaultBackend } from '../lib/poller';
import { Ring } from '../lib/ring';
import { RingTcpServer, type RingConnection } from '../lib/ring-net';
import { runLoad } from '../lib/lab/load';
import { MAX_REQUEST_HEAD, RESPONSES, parseHttpRequest, type ParsedRequest } from '../lib/lab/protocol';
import { parseRequest } from '../lib/arch/http-parse';
import { SignalPipe } from '../lib/arch/signal-pipe';
import { findArch } from '../lib/arch';
import { exchange, serve } from './lab-helpers';

const linux = process.platform === 'linux';

/** Statuses of a stream of Content-Length framed responses. */
function statuses(raw: Buffer): number[] {
  const s = raw.toString('latin1');
  const out: number[] = [];
  let off = 0;
  for (;;) {
    const end = s.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const head = s.slice(off, end);
    const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (end + 4 + len > s.length) break;
    out.push(Number(head.split(' ')[1]));
    off = end + 4 + len;
  }
  return out;
}

const GET = (p: string, extra = '') => `GET ${p} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;

const JS_ARCHS = ['reactor', 'proactor', 'reactor-pool', 'multi-reactor', 'multi-reactor-exclusive'].filter((name) => {
  const av = findArch(name)!.availability();
  if (!av.available) console.log(`lab-archs: ${name} skipped: ${av.reason}`);
  return av.available;
});

describe.each(JS_ARCHS)('%s speaks the documented bytes', (arch) => {
  it('malformed requests get exactly the 400 and a close; pipelined answers are byte-exact; a body is skipped; POST is 405', async () => {
    const s = await serve(['--arch', arch, '--protocol', 'http']);
    try {
      const bad = ['GET / HTTP/2.0\r\n\r\n', 'GET nope HTTP/1.1\r\n\r\n', 'GET / HTTP/1.1\r\nBad Header\r\n\r\n',
        'GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n', 'GET /work?us=abc HTTP/1.1\r\n\r\n',
        'GET /work?us=99999999 HTTP/1.1\r\n\r\n', 'GET /work HTTP/1.1\r\n\r\n', ' GET / HTTP/1.1\r\n\r\n',
        'GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'GET /' + 'a'.repeat(9000), '\x00\x01garbage'];
      for (const req of bad) {
        const { data, closed } = await exchange(s.port, [req]);
        expect(closed, JSON.stringify(req.slice(0, 40))).toBe(true);
        expect(data.equals(RESPONSES.badRequest), JSON.stringify(req.slice(0, 40))).toBe(true);
      }
      const want = Buffer.concat([RESPONSES.notAllowed, RESPONSES.hello, RESPONSES.notFound, RESPONSES.hello, RESPONSES.helloClose]);
      const { data, closed } = await exchange(
        s.port,
        ['POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello' + GET('/') + GET('/x') + GET('/work?us=100'), GET('/', 'Connection: close\r\n') + GET('/')],
        { timeoutMs: 5000 },
      );
      expect(closed).toBe(true);
      expect(data.toString('latin1')).toBe(want.toString('latin1'));
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });
});

describe('http-parse: the same decisions as the reference parser (lib/lab/protocol.ts)', () => {
  // Deterministic pseudo-random numbers, so a failure can be replayed.
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const pick = <T>(a: readonly T[]): T => a[rnd(a.length)];

  const methods = ['GET', 'POST', 'HEAD', 'get', 'G-T', 'X'.repeat(32), 'X'.repeat(33), '', 'GE\tT', 'GÉT'];
  const targets = ['/', '/work?us=0', '/work?us=100', '/work?us=10000000', '/work?us=10000001', '/work?us=99999999', '/work?us=123456789',
    '/work', '/work?', '/work?us=', '/work?us=1x', '/workx', '/work/x', '/x', '', 'x', '/a b', '/\x7f', '/\x01', '/é'];
  const versions = ['HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'http/1.1', 'HTTP/1.1 ', ''];
  const headers = ['Host: x', 'Connection: close', 'connection: Keep-Alive', 'Connection: foo, CLOSE ,bar', 'Connection:\tclose\t',
    'Connection: keep-alive', 'Content-Length: 0', 'Content-Length: 5', 'content-length:  3 ', 'Content-Length: 1x',
    'Content-Length: 12345678901', 'Content-Length: 2000000', 'Transfer-Encoding: chunked', 'Bad Header', ': empty', 'X-A: \xa0v\xa0',
    'Na me: v', 'X: a:b', 'X-Long: ' + 'v'.repeat(300)];

  function request(): Buffer {
    const parts = [pick(methods), ' ', pick(targets), ' ', pick(versions), '\r\n'];
    const n = rnd(4);
    for (let i = 0; i < n; i++) parts.push(pick(headers), '\r\n');
    parts.push('\r\n');
    if (rnd(3) === 0) parts.push('hello'.slice(0, rnd(6)));
    let b = Buffer.from(parts.join(''), 'latin1');
    if (rnd(4) === 0) {
      // mutate: flip, insert or delete a byte
      b = Buffer.from(b);
      const at = rnd(b.length + 1);
      const what = rnd(3);
      const byte = pick([0, 9, 10, 13, 32, 58, 47, 0x7f, 0xa0, 0xff, 65]);
      if (what === 0 && at < b.length) b[at] = byte;
      else if (what === 1) b = Buffer.concat([b.subarray(0, at), Buffer.from([byte]), b.subarray(at)]);
      else b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
    }
    return b;
  }

  function compare(b: Buffer, start: number, end: number): void {
    const ref: ParsedRequest = { route: -1 as never, workUs: -1, close: false };
    const want = parseHttpRequest(b, start, end, ref);
    const out = new Int32Array([-1, -1, -1]);
    const got = parseRequest(b, start, end, out);
    const what = JSON.stringify(b.toString('latin1', start, end));
    expect(got, what).toBe(want);
    if (want > 0) expect([out[0], out[1], out[2] === 1], what).toEqual([ref.route, ref.workUs, ref.close]);
  }

  it('on 3000 generated and mutated requests, every prefix, at an offset', () => {
    for (let i = 0; i < 3000; i++) {
      const req = request();
      const b = Buffer.concat([Buffer.from('junk'), req, Buffer.from(GET('/'))]);
      for (let end = 4; end <= b.length; end++) compare(b, 4, end);
    }
    // A fixed amount of work: 29-34 s under npm run test:asan on a loaded 2-core machine.
  }, 180_000);

  it('on heads around the 8192-byte limit and random bytes', () => {
    for (const n of [MAX_REQUEST_HEAD - 40, MAX_REQUEST_HEAD - 30, MAX_REQUEST_HEAD - 20, MAX_REQUEST_HEAD, MAX_REQUEST_HEAD + 10]) {
      const b = Buffer.from(`GET / HTTP/1.1\r\nX: ${'a'.repeat(n)}\r\n\r\n`, 'latin1');
      compare(b, 0, b.length);
      compare(b, 0, Math.min(b.length, MAX_REQUEST_HEAD));
      const noEnd = Buffer.from(`GET /${'a'.repeat(n)}`, 'latin1');
      compare(noEnd, 0, noEnd.length);
    }
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.alloc(1 + rnd(60));
      for (let k = 0; k < b.length; k++) b[k] = rnd(4) === 0 ? pick([13, 10, 32, 58]) : rnd(256);
      compare(b, 0, b.length);
    }
  });
});

describe.skipIf(!linux)('SignalPipe', () => {
  it('hears a signal that Node listens to, and Node still hears it; close() puts Node\'s handler back', async () => {
    let nodeSaw = 0;
    const onUsr2 = () => nodeSaw++;
    process.on('SIGUSR2', onUsr2);
    try {
      const pipe = new SignalPipe(['SIGUSR2']);
      expect(pipe.take()).toEqual([]);
      process.kill(process.pid, 'SIGUSR2');
      await new Promise((r) => setTimeout(r, 50));
      expect(pipe.take()).toEqual(['SIGUSR2']);
      expect(nodeSaw).toBe(1);
      pipe.close();
      process.kill(process.pid, 'SIGUSR2');
      await new Promise((r) => setTimeout(r, 50));
      expect(nodeSaw).toBe(2);
      expect(pipe.take()).toEqual([]);
    } finally {
      process.off('SIGUSR2', onUsr2);
    }
  });

  it('rejects SIGKILL and unknown names', () => {
    expect(() => new SignalPipe(['SIGKILL'])).toThrow(/EINVAL/);
    expect(() => new SignalPipe(['SIGNOPE' as NodeJS.Signals])).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------

const available = backends().filter((b) => b.available);
const combos: Array<[string, string]> = [];
for (const b of available) {
  combos.push([b.name, 'level']);
  if (b.modes.edge !== 'unsupported') combos.push([b.name, 'edge']);
}
for (const b of backends()) if (!b.available) console.log(`lab-archs: reactor --backend ${b.name} skipped: ${b.reason}`);

describe.each(combos)('reactor --backend %s --mode %s', (backend, mode) => {
  it('http: pipelined load with CPU work verified; SIGTERM exits 0', async () => {
    const s = await serve(['--arch', 'reactor', '--protocol', 'http', '--backend', backend, '--mode', mode]);
    try {
      const r = await runLoad({ port: s.port, protocol: 'http', conns: 16, depth: 8, duration: 0.5, workUs: 50, workRatio: 0.05, threads: 1 });
      expect(r.firstError).toBeNull();
      expect(r.connected).toBe(16);
      expect(r.verifyErrors).toBe(0);
      expect(r.unanswered).toBe(0);
      expect(r.requests).toBeGreaterThan(0);
      const { data } = await exchange(s.port, [GET('/') + GET('/nope') + GET('/work?us=10'), 'GET / HT', 'TP/1.1\r\n\r\n'], {
        until: (d) => statuses(d).length >= 4,
      });
      expect(statuses(data)).toEqual([200, 404, 200, 200]);
    } finally {
      expect(await s.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    }
    expect(s.stderr()).toMatch(/SIGTERM: reactor stopped/);
  });

  it('echo: 64 KiB messages (partial writes, backpressure) verified byte for byte', async () => {
    const s = await serve(['--arch', 'reactor', '--protocol', 'echo', '--backend', backend, '--mode', mode]);
    try {
      const r = await runLoad({ port: s.port, conns: 8, size: 65536, depth: 4, duration: 0.5, threads: 1 });
      expect(r.firstError).toBeNull();
      expect(r.verifyErrors).toBe(0);
      expect(r.unanswered).toBe(0);
      expect(r.requests).toBeGreaterThan(0);
      expect(r.bytesVerified).toBe(r.requests * 65536);
    } finally {
      expect(await s.stop('SIGINT')).toEqual({ code: 0, signal: null });
    }
  });
});

describe('reactor options', () => {
  const noEdge = backends().find((b) => b.available && b.modes.edge === 'unsupported');
  it.skipIf(!noEdge)('--mode edge where the backend has none: a clear error, exit 1', async () => {
    const { spawnSync } = await import('node:child_process');
    const { bin } = await import('./lab-helpers');
    const r = spawnSync(process.execPath, [bin, 'serve', '--arch', 'reactor', '--port', '0', '--backend', noEdge!.name, '--mode', 'edge'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`--mode edge: the ${noEdge!.name} backend has no edge-triggered mode; use --mode level`));
    expect(r.stdout).toBe('');
  });

  it('rejects an unknown backend or mode before listening', async () => {
    const reactor = findArch('reactor')!;
    await expect(reactor.start({ protocol: 'http', host: '127.0.0.1', port: 0, backend: 'nope' })).rejects.toThrow(/--backend must be one of/);
    await expect(reactor.start({ protocol: 'http', host: '127.0.0.1', port: 0, mode: 'oneshot' })).rejects.toThrow(/--mode must be level or edge/);
  });

  it('in-process: close() without run() drives the loop until every connection is closed', async () => {
    const server = await findArch('reactor')!.start({ protocol: 'echo', host: '127.0.0.1', port: 0 });
    await server.close();
    await expect(new Promise((resolve, reject) => {
      const c = net.connect(server.port, '127.0.0.1', () => reject(new Error('still listening')));
      c.on('error', resolve);
    })).resolves.toBeDefined();
  });
});

describe.skipIf(!Ring.probe().available)('proactor', () => {
  it('counts its io_uring_enter calls: fewer than requests under concurrent pipelined load', async () => {
    const s = await serve(['--arch', 'proactor', '--protocol', 'http']);
    let requests = 0;
    try {
      const r = await runLoad({ port: s.port, protocol: 'http', conns: 32, depth: 4, duration: 0.5, threads: 1 });
      expect(r.verifyErrors).toBe(0);
      expect(r.unanswered).toBe(0);
      requests = r.requests;
    } finally {
      expect(await s.stop()).toEqual({ code: 0, signal: null });
    }
    const m = /(\d+) requests answered; .*ringEnters=(\d+) ringSubmitted=(\d+) ringReaped=(\d+)/.exec(s.stderr());
    expect(m, s.stderr()).not.toBeNull();
    const [answered, enters, submitted, reaped] = m!.slice(1).map(Number);
    expect(answered).toBeGreaterThanOrEqual(requests);
    expect(enters).toBeGreaterThan(0);
    expect(enters).toBeLessThan(answered);
    expect(submitted).toBeGreaterThan(0);
    expect(reaped).toBeGreaterThan(0);
  });

  it('echo: a client that stops reading for a while still gets every byte back, in order', async () => {
    const s = await serve(['--arch', 'proactor', '--protocol', 'echo']);
    try {
      const sent = Buffer.alloc(8 << 20);
      for (let i = 0; i < sent.length; i++) sent[i] = (i * 7 + (i >> 12)) & 0xff;
      const got: Buffer[] = [];
      let n = 0;
      await new Promise<void>((resolve, reject) => {
        const c = net.connect(s.port, '127.0.0.1');
        c.pause(); // read nothing for a while: the server must stop reading too
        let wrote = 0;
        const pump = () => {
          while (wrote < sent.length) {
            const chunk = sent.subarray(wrote, wrote + 65536);
            wrote += chunk.length;
            if (!c.write(chunk)) return;
          }
        };
        c.on('drain', pump);
        c.on('connect', () => {
          pump();
          setTimeout(() => c.resume(), 300);
        });
        c.on('data', (d) => {
          got.push(d);
          n += d.length;
          if (n === sent.length) {
            c.destroy();
            resolve();
          }
        });
        c.on('error', reject);
      });
      expect(Buffer.concat(got).equals(sent)).toBe(true);
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });
});

describe.skipIf(!Ring.probe().available)('RingConnection.pause()/resume() (lib/ring-net.ts)', () => {
  it('bound what an echo server queues for a client that does not read; nothing is lost or reordered', async () => {
    const loop = new EventLoop(defaultBackend()).attach();
    const ring = new Ring();
    const detach = ring.attach(loop);
    const server = new RingTcpServer(ring, { port: 0 });
    let maxQueued = 0;
    let pauses = 0;
    server.onconnection = (c) => {
      const conn = c as RingConnection;
      conn.ondata = (chunk) => {
        if (!conn.write(chunk)) {
          pauses++;
          conn.pause();
        }
        maxQueued = Math.max(maxQueued, conn.writableLength);
      };
      conn.ondrain = () => conn.resume();
    };
    const sent = Buffer.alloc(32 << 20);
    for (let i = 0; i < sent.length; i++) sent[i] = (i * 13 + (i >> 11)) & 0xff;
    let wroteWhilePaused = 0;
    try {
      const got = await new Promise<Buffer>((resolve, reject) => {
        const c = net.connect(server.address.port, '127.0.0.1');
        c.pause();
        const parts: Buffer[] = [];
        let n = 0;
        let wrote = 0;
        const pump = () => {
          while (wrote < sent.length) {
            const chunk = sent.subarray(wrote, wrote + 65536);
            wrote += chunk.length;
            if (!c.write(chunk)) return;
          }
          c.end();
        };
        c.on('drain', pump);
        c.on('connect', () => {
          pump();
          setTimeout(() => {
            wroteWhilePaused = wrote;
            c.resume();
          }, 300);
        });
        c.on('data', (d) => {
          parts.push(d);
          n += d.length;
        });
        c.on('end', () => resolve(Buffer.concat(parts, n)));
        c.on('error', reject);
      });
      expect(got.length).toBe(sent.length);
      expect(got.equals(sent)).toBe(true);
    } finally {
      server.close();
      await new Promise((r) => setTimeout(r, 20));
      detach();
      ring.close();
      loop.detach();
      loop.close();
    }
    // The client could not write everything while it was not reading: the
    // server stopped reading too, and its own queue stayed small.
    expect(pauses).toBeGreaterThan(0);
    expect(wroteWhilePaused).toBeLessThan(sent.length);
    expect(maxQueued).toBeLessThan(4 << 20);
  });
});

describe('reactor-pool', () => {
  it.each(['level', 'edge'])('answers pipelined requests in order when their CPU work finishes out of order (--mode %s)', async (mode) => {
    const s = await serve(['--arch', 'reactor-pool', '--protocol', 'http', '--workers', '3', '--mode', mode]);
    try {
      const batch = GET('/work?us=300000') + GET('/missing') + GET('/work?us=1000') + GET('/') + GET('/work?us=100000') + GET('/nope', 'Connection: close\r\n');
      const { data, closed } = await exchange(s.port, [batch], { timeoutMs: 10_000 });
      expect(closed).toBe(true);
      expect(statuses(data)).toEqual([200, 404, 200, 200, 200, 404]);
      const text = data.toString('latin1');
      expect(text.startsWith(RESPONSES.hello.toString('latin1') + RESPONSES.notFound.toString('latin1') + RESPONSES.hello.toString('latin1'))).toBe(true);
      expect(text.endsWith(RESPONSES.notFoundClose.toString('latin1'))).toBe(true);
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
    expect(s.stderr()).toMatch(/workDone=3\b/);
  });

  it("one connection's CPU work does not hold up another connection", async () => {
    const s = await serve(['--arch', 'reactor-pool', '--protocol', 'http', '--workers', '2']);
    try {
      const order: string[] = [];
      const slow = exchange(s.port, [GET('/work?us=1500000')], { until: (d) => statuses(d).length === 1, timeoutMs: 15_000 }).then(() => order.push('slow'));
      await new Promise((r) => setTimeout(r, 100)); // the slow request is in the pool
      const fast = exchange(s.port, [GET('/')], { until: (d) => statuses(d).length === 1, timeoutMs: 15_000 }).then(() => order.push('fast'));
      await Promise.all([slow, fast]);
      expect(order).toEqual(['fast', 'slow']);
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });
});

describe('multi-reactor', () => {
  it('SO_REUSEPORT: 64 connections are spread over more than one of 4 workers', async () => {
    const server = await findArch('multi-reactor')!.start({ protocol: 'http', host: '127.0.0.1', port: 0, workers: 4 });
    try {
      const r = await runLoad({ port: server.port, protocol: 'http', conns: 64, duration: 0.3, threads: 1 });
      expect(r.verifyErrors).toBe(0);
      expect(r.connected).toBe(64);
      const st = server.stats!();
      const per = [0, 1, 2, 3].map((i) => st[`accepted_w${i}`] ?? 0);
      expect(per.reduce((a, b) => a + b, 0)).toBe(64);
      expect(per.filter((n) => n > 0).length).toBeGreaterThan(1);
      expect(st.requests).toBeGreaterThanOrEqual(r.requests);
    } finally {
      await server.close();
    }
  });

  const excl = findArch('multi-reactor-exclusive')!;
  const av = excl.availability();
  if (!av.available) console.log(`lab-archs: multi-reactor-exclusive skipped: ${av.reason}`);
  it.skipIf(!av.available)('EPOLLEXCLUSIVE: one shared listening socket serves every connection, edge-triggered too', async () => {
    for (const mode of ['level', 'edge']) {
      const server = await excl.start({ protocol: 'echo', host: '127.0.0.1', port: 0, workers: 3, mode });
      try {
        const r = await runLoad({ port: server.port, conns: 30, size: 1000, depth: 2, duration: 0.3, threads: 1 });
        expect(r.verifyErrors).toBe(0);
        expect(r.connected).toBe(30);
        expect(r.bytesVerified).toBe(r.requests * 1000);
        const st = server.stats!();
        expect(st.accepted).toBe(30);
        expect([0, 1, 2].map((i) => st[`accepted_w${i}`] ?? 0).reduce((a, b) => a + b, 0)).toBe(30);
      } finally {
        await server.close();
      }
    }
  });

  it('a port in use fails start() with EADDRINUSE and leaves no worker behind', async () => {
    const holder = net.createServer().listen(0, '127.0.0.1');
    await new Promise((r) => holder.once('listening', r));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      for (const name of ['multi-reactor', 'multi-reactor-exclusive']) {
        const a = findArch(name)!;
        if (!a.availability().available) continue;
        await expect(a.start({ protocol: 'echo', host: '127.0.0.1', port, workers: 2 })).rejects.toMatchObject({ code: 'EADDRINUSE' });
      }
    } finally {
      holder.close();
    }
  });
});
