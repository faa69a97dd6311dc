// The lab protocols in JS, byte for byte what the native servers speak
// (native/lab_proto.cc; docs/protocols.md): the fixed responses, the CPU-work
// burn, and an incremental HTTP/1.1 request handler for the JS architectures.
import type { Connection } from '../net-types';
import type { LabProtocol } from './load';

export const HELLO_BODY = 'Hello, World!';
/** The longest request head accepted; more bytes without "\r\n\r\n" is a 400. */
export const MAX_REQUEST_HEAD = 8192;
export const MAX_REQUEST_BODY = 1 << 20;
/** The most CPU one /work request may ask for (10 s). */
export const MAX_WORK_US = 10_000_000;

const head200 = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n';
const head404 = 'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n';
const head405 = 'HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n';
const closeHdr = 'Connection: close\r\n';

/** The exact response bytes. */
export const RESPONSES = {
  hello: Buffer.from(`${head200}\r\n${HELLO_BODY}`, 'latin1'),
  helloClose: Buffer.from(`${head200}${closeHdr}\r\n${HELLO_BODY}`, 'latin1'),
  notFound: Buffer.from(`${head404}\r\nNot Found\n`, 'latin1'),
  notFoundClose: Buffer.from(`${head404}${closeHdr}\r\nNot Found\n`, 'latin1'),
  notAllowed: Buffer.from(`${head405}\r\nMethod Not Allowed\n`, 'latin1'),
  notAllowedClose: Buffer.from(`${head405}${closeHdr}\r\nMethod Not Allowed\n`, 'latin1'),
  badRequest: Buffer.from(
    'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n',
    'latin1',
  ),
} as const;

/** Busy-waits `us` microseconds on the monotonic clock (the CPU-work request). */
export function burnMicros(us: number): void {
  if (!(us > 0)) return;
  const end = process.hrtime.bigint() + BigInt(Math.round(us * 1000));
  while (process.hrtime.bigint() < end) {
    /* burn */
  }
}

/** The N of "/work?us=N" (0..MAX_WORK_US), or -1 when the target is malformed. */
export function parseWorkTarget(target: string): number {
  const m = /^\/work\?us=(\d{1,8})$/.exec(target);
  if (!m) return -1;
  const us = Number(m[1]);
  return us <= MAX_WORK_US ? us : -1;
}

export enum Route {
  Hello = 0,
  Work = 1,
  NotFound = 2,
  MethodNotAllowed = 3,
}

/** Filled by parseHttpRequest (one reusable object, no allocation per request). */
export interface ParsedRequest {
  route: Route;
  workUs: number;
  close: boolean;
}

const CR = 13;
const LF = 10;
const SP = 32;

function isTokenChar(c: number): boolean {
  if ((c >= 48 && c <= 57) || ((c | 0x20) >= 97 && (c | 0x20) <= 122)) return true;
  return c !== 0 && "!#$%&'*+-.^_`|~".indexOf(String.fromCharCode(c)) >= 0;
}

function indexOfCrlf(b: Uint8Array, from: number, end: number): number {
  for (let i = from; i + 1 < end; i++) if (b[i] === CR && b[i + 1] === LF) return i;
  return -1;
}

function indexOfHeadEnd(b: Uint8Array, from: number, end: number): number {
  for (let i = from; i + 3 < end; i++) if (b[i] === CR && b[i + 1] === LF && b[i + 2] === CR && b[i + 3] === LF) return i;
  return -1;
}

function latin1(b: Uint8Array, s: number, e: number): string {
  return Buffer.from(b.buffer, b.byteOffset + s, e - s).toString('latin1');
}

/**
 * Parses the request at buf[start, end). Returns the bytes it occupies (head
 * plus any Content-Length body) and fills `out`; 0 when more bytes are needed;
 * -1 when the bytes can never form a valid request (answer 400, then close).
 */
export function parseHttpRequest(buf: Uint8Array, start: number, end: number, out: ParsedRequest): number {
  const len = end - start;
  let i = 0;
  while (i < len && i <= 32 && isTokenChar(buf[start + i])) i++;
  if (i < len && (i === 0 || i > 32 || buf[start + i] !== SP)) return -1;

  const scanEnd = start + Math.min(len, MAX_REQUEST_HEAD);
  const lineEnd = indexOfCrlf(buf, start, scanEnd);
  let method = '';
  let target = '';
  let http10 = false;
  if (lineEnd >= 0) {
    const parts = latin1(buf, start, lineEnd).split(' ');
    if (parts.length !== 3 || parts[0] === '' || parts[1] === '' || parts[1][0] !== '/') return -1;
    for (let k = 0; k < parts[1].length; k++) {
      const c = parts[1].charCodeAt(k);
      if (c <= 0x20 || c === 0x7f) return -1;
    }
    if (parts[2] === 'HTTP/1.0') http10 = true;
    else if (parts[2] !== 'HTTP/1.1') return -1;
    method = parts[0];
    target = parts[1];
  }
  const headEnd = indexOfHeadEnd(buf, start, scanEnd);
  if (headEnd < 0) return len >= MAX_REQUEST_HEAD ? -1 : 0;

  let close = false;
  let keepAlive = false;
  let body = -1;
  let p = lineEnd + 2;
  while (p < headEnd + 2) {
    const e = indexOfCrlf(buf, p, headEnd + 2);
    const line = latin1(buf, p, e);
    const colon = line.indexOf(':');
    if (colon <= 0) return -1;
    for (let k = 0; k < colon; k++) if (!isTokenChar(line.charCodeAt(k))) return -1;
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'connection') {
      for (const tok of value.split(',')) {
        const t = tok.trim().toLowerCase();
        if (t === 'close') close = true;
        if (t === 'keep-alive') keepAlive = true;
      }
    } else if (name === 'content-length') {
      if (!/^\d{1,10}$/.test(value)) return -1;
      const v = Number(value);
      if (v > MAX_REQUEST_BODY || (body >= 0 && v !== body)) return -1;
      body = v;
    } else if (name === 'transfer-encoding') {
      return -1;
    }
    p = e + 2;
  }
  const total = headEnd + 4 - start + Math.max(body, 0);
  if (len < total) return 0;

  out.close = close || (http10 && !keepAlive);
  out.workUs = 0;
  if (method !== 'GET') {
    out.route = Route.MethodNotAllowed;
  } else if (target === '/') {
    out.route = Route.Hello;
  } else if (target === '/work' || target.startsWith('/work?')) {
    const us = parseWorkTarget(target);
    if (us < 0) return -1;
    out.route = Route.Work;
    out.workUs = us;
  } else {
    out.route = Route.NotFound;
  }
  return total;
}

/**
 * One HTTP connection's state: feed() the bytes as they arrive, write what
 * it returns, in order. After a response that ends the connection (a 400, or
 * a request with Connection: close) `closing` is true and later input is
 * ignored: flush, then half-close.
 */
export class HttpSession {
  closing = false;
  /** Requests answered. */
  requests = 0;
  private pending: Buffer | null = null;
  private readonly req: ParsedRequest = { route: Route.Hello, workUs: 0, close: false };

  /** The responses for every complete request so far (null when none). */
  feed(chunk: Uint8Array): Buffer | null {
    if (this.closing) return null;
    let buf: Uint8Array;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    } else {
      buf = chunk;
    }
    let off = 0;
    let outs: Buffer[] | null = null;
    let one: Buffer | null = null;
    const push = (b: Buffer) => {
      if (!one) one = b;
      else (outs ??= [one]).push(b);
    };
    while (off < buf.length) {
      const n = parseHttpRequest(buf, off, buf.length, this.req);
      if (n === 0) break;
      if (n < 0) {
        push(RESPONSES.badRequest);
        this.closing = true;
        break;
      }
      off += n;
      const r = this.req;
      if (r.route === Route.Work) burnMicros(r.workUs);
      if (r.route === Route.Hello || r.route === Route.Work) push(r.close ? RESPONSES.helloClose : RESPONSES.hello);
      else if (r.route === Route.NotFound) push(r.close ? RESPONSES.notFoundClose : RESPONSES.notFound);
      else push(r.close ? RESPONSES.notAllowedClose : RESPONSES.notAllowed);
      this.requests++;
      if (r.close) {
        this.closing = true;
        break;
      }
    }
    if (!this.closing && off < buf.length) this.pending = Buffer.from(buf.subarray(off));
    if (outs) return Buffer.concat(outs);
    return one;
  }
}

/**
 * Serves `protocol` on a Connection (lib/net-types.ts), for the JS
 * architectures: echo writes every chunk back (pausing is the transport's
 * business: write() queues); http answers through an HttpSession and
 * half-closes after a closing response. The peer's FIN ends the connection
 * once everything queued is flushed.
 */
export function serveConnection(conn: Connection, protocol: LabProtocol): void {
  let ended = false;
  const end = () => {
    if (!ended) {
      ended = true;
      conn.end();
    }
  };
  if (protocol === 'echo') {
    conn.ondata = (chunk) => {
      if (!ended) conn.write(Buffer.from(chunk));
    };
  } else {
    const session = new HttpSession();
    conn.ondata = (chunk) => {
      if (session.closing) return;
      const out = session.feed(chunk);
      if (out) conn.write(out);
      if (session.closing) end();
    };
  }
  conn.onend = end;
}
