// Every registered architecture (lib/arch/index.ts) that works here, run as
// `iomux serve` in a child process: echo and http verified by the native load
// generator and by Node's own clients, pipelining, partial and garbage
// requests, resets mid-request, and a clean exit 0 on SIGTERM.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { ARCHS } from '../lib/arch';
import { runLoad } from '../lib/lab/load';
import { RESPONSES } from '../lib/lab/protocol';
import { HELLO_RESPONSE, exchange, root, serve, type Served } from './lab-helpers';
import { ServerStartError, spawnServe } from '../lib/lab/serve-process';

const available = ARCHS.filter((a) => a.availability().available);
for (const a of ARCHS) {
  const av = a.availability();
  if (!av.available) console.log(`lab-serve: skipping arch ${a.name}: ${av.reason}`);
}
const NATIVE = new Set(['threads', 'thread-pool', 'c-epoll', 'c-uring']);

interface Parsed {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Splits a byte stream of HTTP/1.1 responses (Content-Length framed). */
function parseResponses(raw: Buffer): { responses: Parsed[]; rest: number } {
  const s = raw.toString('latin1');
  const out: Parsed[] = [];
  let off = 0;
  for (;;) {
    const end = s.indexOf('\r\n\r\n', off);
    if (end < 0) break;
    const [statusLine, ...lines] = s.slice(off, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const c = l.indexOf(':');
      headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
    }
    const len = Number(headers['content-length'] ?? 0);
    if (end + 4 + len > s.length) break;
    out.push({ status: Number(statusLine.split(' ')[1]), headers, body: s.slice(end + 4, end + 4 + len) });
    off = end + 4 + len;
  }
  return { responses: out, rest: s.length - off };
}

function httpGet(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
  });
}

describe.each(available.map((a) => a.name))('arch %s', (arch) => {
  // Small pools keep thread-pool honest without starving these few clients.
  const extra = arch === 'thread-pool' ? ['--threads', '16'] : arch === 'threads' ? ['--stack-kb', '128'] : [];

  describe('echo', () => {
    let s: Served;
    beforeAll(async () => {
      s = await serve(['--arch', arch, '--protocol', 'echo', ...extra]);
    });
    afterAll(async () => {
      const r = await s.stop();
      expect(r).toEqual({ code: 0, signal: null });
    });

    it('passes the load generator with every byte verified', async () => {
      const r = await runLoad({ port: s.port, conns: 8, size: 1000, depth: 4, duration: 0.5, threads: 2, sources: 2 });
      expect(r.firstError).toBeNull();
      expect(r.firstConnectError).toBeNull();
      expect(r.connected).toBe(8);
      expect(r.verifyErrors).toBe(0);
      expect(r.resets).toBe(0);
      expect(r.requests).toBeGreaterThan(0);
      expect(r.unanswered).toBe(0);
      expect(r.bytesVerified).toBe(r.requests * 1000);
    });

    it('echoes 1 MiB from a Node net client, in order, then closes after its FIN', async () => {
      const big = Buffer.alloc(1 << 20);
      for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 10)) & 0xff;
      const { data, closed } = await exchange(s.port, [big.subarray(0, 300_000), big.subarray(300_000)], { end: true, timeoutMs: 15_000 });
      expect(closed).toBe(true);
      expect(data.length).toBe(big.length);
      expect(data.equals(big)).toBe(true);
    });

    it('survives a client that resets mid-transfer', async () => {
      await new Promise<void>((resolve) => {
        const sock = net.connect(s.port, '127.0.0.1', () => {
          sock.write(Buffer.alloc(256 * 1024, 7));
          setTimeout(() => {
            sock.resetAndDestroy();
            resolve();
          }, 20);
        });
        sock.on('error', () => {});
      });
      const { data } = await exchange(s.port, ['still here'], { untilBytes: 10 });
      expect(data.toString()).toBe('still here');
    });
  });

  describe('http', () => {
    let s: Served;
    beforeAll(async () => {
      s = await serve(['--arch', arch, '--protocol', 'http', ...extra]);
    });
    afterAll(async () => {
      const r = await s.stop();
      expect(r).toEqual({ code: 0, signal: null });
    });

    it('passes the load generator, CPU-work requests included', async () => {
      const r = await runLoad({ port: s.port, protocol: 'http', conns: 8, depth: 2, duration: 0.5, workUs: 100, workRatio: 0.1, threads: 2 });
      expect(r.firstError).toBeNull();
      expect(r.connected).toBe(8);
      expect(r.verifyErrors).toBe(0);
      expect(r.resets).toBe(0);
      expect(r.requests).toBeGreaterThan(0);
      expect(r.workRequests).toBeGreaterThan(0);
      expect(r.unanswered).toBe(0);
    });

    it("answers Node's http client: GET /, /work?us=N, 404", async () => {
      const hello = await httpGet(s.port, '/');
      expect(hello.status).toBe(200);
      expect(hello.body).toBe('Hello, World!');
      expect(hello.headers['content-type']).toBe('text/plain');
      expect(hello.headers['content-length']).toBe('13');
      const t0 = performance.now();
      const work = await httpGet(s.port, '/work?us=20000');
      expect(performance.now() - t0).toBeGreaterThanOrEqual(19);  // it burned 20 ms first
      expect(work.status).toBe(200);
      expect(work.body).toBe('Hello, World!');
      const missing = await httpGet(s.port, '/nope');
      expect(missing.status).toBe(404);
      expect(missing.body.length).toBeGreaterThan(0);
    });

    it('answers pipelined requests in order, and a request split across writes', async () => {
      const req = (p: string) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`;
      const batch = req('/') + req('/missing') + req('/work?us=500') + req('/');
      const { data } = await exchange(s.port, [batch, 'GET / HT', 'TP/1.1\r\nHo', 'st: x\r\n', '\r\n'], {
        until: (d) => parseResponses(d).responses.length >= 5,
      });
      const { responses, rest } = parseResponses(data);
      expect(rest).toBe(0);
      expect(responses.map((r) => r.status)).toEqual([200, 404, 200, 200, 200]);
      expect(responses.filter((r) => r.status === 200).every((r) => r.body === 'Hello, World!')).toBe(true);
      if (NATIVE.has(arch)) {
        // The native servers send exactly the documented bytes.
        const s200 = data.toString('latin1').split(HELLO_RESPONSE).length - 1;
        expect(s200).toBe(4);
      }
    });

    it('honours Connection: close', async () => {
      const { data, closed } = await exchange(s.port, ['GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n']);
      expect(closed).toBe(true);
      const { responses } = parseResponses(data);
      expect(responses).toHaveLength(1);
      expect(responses[0].status).toBe(200);
      expect(responses[0].headers.connection).toBe('close');
    });

    it('answers garbage with 400 and closes', async () => {
      const { data, closed } = await exchange(s.port, ['\x00\x01\x02 garbage\r\n\r\n']);
      expect(closed).toBe(true);
      expect(data.toString('latin1')).toMatch(/^HTTP\/1\.1 400 /);
    });

    // Node's http parser (node-net) answers malformed requests its own way.
    (NATIVE.has(arch) ? it : it.skip)('answers every malformed request with 400 and closes (native parser)', async () => {
      const bad = ['GET / HTTP/2.0\r\n\r\n', 'GET nope HTTP/1.1\r\n\r\n', 'GET / HTTP/1.1\r\nBad Header\r\n\r\n',
        'GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n', 'GET /work?us=abc HTTP/1.1\r\n\r\n',
        'GET /work?us=99999999 HTTP/1.1\r\n\r\n', 'GET /work HTTP/1.1\r\n\r\n', ' GET / HTTP/1.1\r\n\r\n',
        'GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'GET /' + 'a'.repeat(9000)];
      for (const req of bad) {
        const { data, closed } = await exchange(s.port, [req]);
        expect(closed, JSON.stringify(req.slice(0, 40))).toBe(true);
        expect(data.toString('latin1')).toBe(
          'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n',
        );
      }
      // A body announced by Content-Length is skipped, and a non-GET gets 405.
      const { data } = await exchange(s.port, ['POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello', 'GET / HTTP/1.1\r\n\r\n'], { untilBytes: RESPONSES.notAllowed.length + RESPONSES.hello.length, timeoutMs: 5000 });
      expect(parseResponses(data).responses.map((r) => r.status)).toEqual([405, 200]);
    });

    it('survives a client that resets mid-request', async () => {
      await new Promise<void>((resolve) => {
        const sock = net.connect(s.port, '127.0.0.1', () => {
          sock.write('GET /work?us=20000 HTTP/1.1\r\nHost: x\r\n\r\nGET / HT');
          setTimeout(() => {
            sock.resetAndDestroy();
            resolve();
          }, 5);
        });
        sock.on('error', () => {});
      });
      const r = await httpGet(s.port, '/');
      expect(r.status).toBe(200);
      expect(r.body).toBe('Hello, World!');
    });
  });

  it('on SIGTERM lets an in-flight reply finish, then exits 0', async () => {
    const s = await serve(['--arch', arch, '--protocol', 'http', ...extra]);
    const sock = net.connect(s.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    let got = '';
    sock.on('data', (d) => (got += d.toString('latin1')));
    sock.on('error', () => {});
    const closed = new Promise((r) => sock.once('close', r));
    sock.write('GET /work?us=300000 HTTP/1.1\r\nHost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));  // the server is burning
    const exit = await s.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    await closed;
    expect(got).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nHello, World!$/);
    expect(s.stderr()).toMatch(/SIGTERM/);
  });

  it('exits 0 on SIGINT with connections open', async () => {
    const s = await serve(['--arch', arch, '--protocol', 'echo', ...extra]);
    const socks = await Promise.all(
      [1, 2, 3].map(
        () =>
          new Promise<net.Socket>((resolve) => {
            const c = net.connect(s.port, '127.0.0.1', () => resolve(c));
            c.on('error', () => {});
          }),
      ),
    );
    expect(await s.stop('SIGINT')).toEqual({ code: 0, signal: null });
    for (const c of socks) c.destroy();
  });
});

describe('iomux serve: a server that does not stop', () => {
  it('kills itself (SIGKILL) once the backstop after --grace-ms has passed, saying why', async () => {
    // A multi-reactor whose close() never settles stands for a worker stuck
    // in a native call: the process must not outlive its SIGTERM.
    const script = `
      const arch = require(${JSON.stringify(path.join(root, 'dist', 'arch'))}).ARCHS.find((a) => a.name === 'multi-reactor');
      const start = arch.start;
      arch.start = async (o) => Object.assign(await start(o), { close: () => new Promise(() => {}) });
      require(${JSON.stringify(path.join(root, 'dist', 'cli.js'))}).main(process.argv.slice(1));
    `;
    const child = spawn(process.execPath, ['-e', script, 'serve', '--arch', 'multi-reactor', '--workers', '1', '--port', '0', '--grace-ms', '0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, IOMUX_SERVE_BACKSTOP_MS: '500' },
    });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('exit', (c, s) => r([c, s])));
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d) => {
        out += d;
        if (out.includes('\n')) resolve();
      });
      child.on('exit', () => reject(new Error(`exited before listening: ${err}`)));
    });
    child.kill('SIGTERM');
    const [code, signal] = await exited;
    clearTimeout(guard);
    expect({ code, signal }).toEqual({ code: null, signal: 'SIGKILL' });
    expect(err).toMatch(/multi-reactor did not stop within 500 ms of SIGTERM \(grace 0 ms\): killing the process \(SIGKILL\)/);
  });
});

describe('spawnServe (lib/lab/serve-process.ts)', () => {
  it('a server that exits before listening is a ServerStartError with its code and stderr', async () => {
    let caught: unknown = null;
    try {
      await spawnServe(['serve', '--arch', 'no-such-arch', '--port', '0']);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ServerStartError);
    const e = caught as ServerStartError;
    expect(e.code).toBe('ERR_IOMUX_SERVER_START');
    expect(e.message).toMatch(/iomux serve --arch no-such-arch --port 0: exited before listening \(exit code 2\)/);
    expect(e.stderr).toMatch(/no-such-arch/);
  });
});
