// `node-net`: the baseline users know. Node's own `net` for echo and `http`
// for http (GET /, GET /work?us=N, 404, Connection: close; Node answers
// garbage with 400 and closes). Node adds Date and Keep-Alive headers; the
// load generator verifies status, Content-Length and body, so they pass.
import * as http from 'node:http';
import * as net from 'node:net';
import { HELLO_BODY, burnMicros, parseWorkTarget } from '../lab/protocol';
import type { Arch, RunningServer, ServeOptions } from './types';

function listen(server: net.Server, o: ServeOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: o.port, host: o.host, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function handle(req: http.IncomingMessage, res: http.ServerResponse, stats: { requests: number }): void {
  stats.requests++;
  const url = req.url ?? '';
  if (req.method !== 'GET') {
    res.writeHead(405, { Allow: 'GET', 'Content-Type': 'text/plain', 'Content-Length': 19 });
    res.end('Method Not Allowed\n');
    return;
  }
  if (url === '/work' || url.startsWith('/work?')) {
    const us = parseWorkTarget(url);
    if (us < 0) {
      res.writeHead(400, { 'Content-Type': 'text/plain', 'Content-Length': 12, Connection: 'close' });
      res.end('Bad Request\n');
      return;
    }
    burnMicros(us);
  } else if (url !== '/') {
    res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': 10 });
    res.end('Not Found\n');
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': 13 });
  res.end(HELLO_BODY);
}

async function start(o: ServeOptions): Promise<RunningServer> {
  const graceMs = o.graceMs ?? 2000;
  const stats = { accepted: 0, active: 0, requests: 0 };
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket) => {
    stats.accepted++;
    stats.active++;
    sockets.add(s);
    s.setNoDelay(true);
    s.on('close', () => {
      stats.active--;
      sockets.delete(s);
    });
  };
  let server: net.Server;
  if (o.protocol === 'echo') {
    server = net.createServer((s) => {
      track(s);
      s.on('error', () => {});  // resets are the client's business
      s.on('data', () => stats.requests++);
      s.pipe(s);
    });
  } else {
    const hs = http.createServer({ keepAlive: true }, (req, res) => handle(req, res, stats));
    hs.keepAliveTimeout = 60_000;  // keep-alive connections of a long load run stay up
    hs.on('connection', track);
    server = hs;
  }
  const port = await listen(server, o);
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | null = null;
      server.close(() => {
        if (timer) clearTimeout(timer);
        resolve();
      });
      if (server instanceof http.Server) {
        server.closeIdleConnections();
      } else {
        // echo: what was read has been written; finish it and half-close.
        for (const s of sockets) {
          s.unpipe(s);
          s.pause();
          s.end();
        }
      }
      timer = setTimeout(() => {
        for (const s of sockets) s.destroy();
      }, graceMs);
      timer.unref();
    }));
  return { host: o.host, port, close, stats: () => ({ ...stats }) };
}

export const nodeNetArch: Arch = {
  name: 'node-net',
  summary: "Node's own net (echo) and http (http) modules: the baseline",
  options: [],
  availability: () => ({ available: true }),
  start,
};
