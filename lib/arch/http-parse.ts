// The lab's HTTP request parser for the JS architectures' hot path: the same
// decisions as parseHttpRequest in lib/lab/protocol.ts (the reference; a test
// compares the two on many thousands of generated and mutated requests), made
// on the bytes in place: no string, no array, no object per request.
import { MAX_REQUEST_BODY, MAX_REQUEST_HEAD, MAX_WORK_US, RESPONSES, Route } from '../lab/protocol';

const CR = 13;
const LF = 10;
const SP = 32;
const COLON = 58;
const COMMA = 44;

const TOKEN = new Uint8Array(256);
for (let c = 48; c <= 57; c++) TOKEN[c] = 1;
for (let c = 65; c <= 90; c++) TOKEN[c] = TOKEN[c + 32] = 1;
for (const ch of "!#$%&'*+-.^_`|~") TOKEN[ch.charCodeAt(0)] = 1;

// What String.prototype.trim() removes, among latin1 code points.
const TRIM = new Uint8Array(256);
for (const c of [9, 10, 11, 12, 13, 32, 0xa0]) TRIM[c] = 1;

/** Fields of the parse result array. */
export const REQ_ROUTE = 0;
export const REQ_WORK_US = 1;
export const REQ_CLOSE = 2;

/** Response codes: an index into RESPONSE_BYTES. */
export const RESP_HELLO = 0;
export const RESP_HELLO_CLOSE = 1;
export const RESP_NOT_FOUND = 2;
export const RESP_NOT_FOUND_CLOSE = 3;
export const RESP_NOT_ALLOWED = 4;
export const RESP_NOT_ALLOWED_CLOSE = 5;
export const RESP_BAD_REQUEST = 6;

export const RESPONSE_BYTES: readonly Buffer[] = [
  RESPONSES.hello,
  RESPONSES.helloClose,
  RESPONSES.notFound,
  RESPONSES.notFoundClose,
  RESPONSES.notAllowed,
  RESPONSES.notAllowedClose,
  RESPONSES.badRequest,
];

/** The response code for a parsed request (route and close flag). */
export function responseCode(route: number, close: number): number {
  const base = route === Route.Hello || route === Route.Work ? RESP_HELLO : route === Route.NotFound ? RESP_NOT_FOUND : RESP_NOT_ALLOWED;
  return close ? base + 1 : base;
}

function lowerIs(b: Uint8Array, s: number, e: number, lit: string): boolean {
  if (e - s !== lit.length) return false;
  for (let i = 0; i < lit.length; i++) {
    let c = b[s + i];
    if (c >= 65 && c <= 90) c |= 32;
    if (c !== lit.charCodeAt(i)) return false;
  }
  return true;
}

function bytesIs(b: Uint8Array, s: number, e: number, lit: string): boolean {
  if (e - s !== lit.length) return false;
  for (let i = 0; i < lit.length; i++) if (b[s + i] !== lit.charCodeAt(i)) return false;
  return true;
}

// Flags found in a Connection header value: 1 close, 2 keep-alive.
function connectionTokens(b: Uint8Array, s: number, e: number): number {
  let flags = 0;
  let t = s;
  while (t <= e) {
    let q = t;
    while (q < e && b[q] !== COMMA) q++;
    let a = t;
    let z = q;
    while (a < z && TRIM[b[a]]) a++;
    while (z > a && TRIM[b[z - 1]]) z--;
    if (lowerIs(b, a, z, 'close')) flags |= 1;
    else if (lowerIs(b, a, z, 'keep-alive')) flags |= 2;
    t = q + 1;
  }
  return flags;
}

/**
 * Parses the request at b[start, end). Returns the bytes it occupies (head
 * plus any Content-Length body) and fills out[REQ_ROUTE] (a Route),
 * out[REQ_WORK_US], out[REQ_CLOSE] (1 when the connection ends after the
 * response); 0 when more bytes are needed; -1 when the bytes can never form a
 * valid request (answer 400, then close).
 */
export function parseRequest(b: Uint8Array, start: number, end: number, out: Int32Array): number {
  const len = end - start;
  // The method: a token of at most 32 characters and one space, checked at once.
  let i = 0;
  while (i < len && i <= 32 && TOKEN[b[start + i]] === 1) i++;
  if (i < len && (i === 0 || i > 32 || b[start + i] !== SP)) return -1;

  const scanEnd = start + (len < MAX_REQUEST_HEAD ? len : MAX_REQUEST_HEAD);
  let lineEnd = -1;
  for (let k = start + i; k + 1 < scanEnd; k++) {
    if (b[k] === CR && b[k + 1] === LF) {
      lineEnd = k;
      break;
    }
  }
  if (lineEnd < 0) return len >= MAX_REQUEST_HEAD ? -1 : 0;

  // METHOD SP /target SP HTTP/1.x, exactly two spaces.
  const sp1 = start + i;
  let sp2 = -1;
  for (let k = sp1 + 1; k < lineEnd; k++) {
    if (b[k] === SP) {
      sp2 = k;
      break;
    }
  }
  if (sp2 < 0 || sp2 === sp1 + 1 || b[sp1 + 1] !== 47 /* / */) return -1;
  for (let k = sp2 + 1; k < lineEnd; k++) if (b[k] === SP) return -1;
  for (let k = sp1 + 1; k < sp2; k++) {
    const c = b[k];
    if (c <= 0x20 || c === 0x7f) return -1;
  }
  let http10 = false;
  if (bytesIs(b, sp2 + 1, lineEnd, 'HTTP/1.0')) http10 = true;
  else if (!bytesIs(b, sp2 + 1, lineEnd, 'HTTP/1.1')) return -1;

  let headEnd = -1;
  for (let k = lineEnd; k + 3 < scanEnd; k++) {
    if (b[k] === CR && b[k + 1] === LF && b[k + 2] === CR && b[k + 3] === LF) {
      headEnd = k;
      break;
    }
  }
  if (headEnd < 0) return len >= MAX_REQUEST_HEAD ? -1 : 0;

  let conn = 0;
  let body = -1;
  let p = lineEnd + 2;
  const linesEnd = headEnd + 2;
  while (p < linesEnd) {
    let e = p;
    while (!(b[e] === CR && b[e + 1] === LF)) e++; // found at headEnd at the latest
    let colon = p;
    while (colon < e && b[colon] !== COLON) colon++;
    if (colon === e || colon === p) return -1;
    for (let k = p; k < colon; k++) if (TOKEN[b[k]] !== 1) return -1;
    let vs = colon + 1;
    let ve = e;
    while (vs < ve && TRIM[b[vs]]) vs++;
    while (ve > vs && TRIM[b[ve - 1]]) ve--;
    const nameLen = colon - p;
    if (nameLen === 10 && lowerIs(b, p, colon, 'connection')) {
      conn |= connectionTokens(b, vs, ve);
    } else if (nameLen === 14 && lowerIs(b, p, colon, 'content-length')) {
      const n = ve - vs;
      if (n < 1 || n > 10) return -1;
      let v = 0;
      for (let k = vs; k < ve; k++) {
        const d = b[k] - 48;
        if (d < 0 || d > 9) return -1;
        v = v * 10 + d;
      }
      if (v > MAX_REQUEST_BODY || (body >= 0 && v !== body)) return -1;
      body = v;
    } else if (nameLen === 17 && lowerIs(b, p, colon, 'transfer-encoding')) {
      return -1;
    }
    p = e + 2;
  }
  const total = headEnd + 4 - start + (body > 0 ? body : 0);
  if (len < total) return 0;

  const close = (conn & 1) !== 0 || (http10 && (conn & 2) === 0);
  let route: number;
  let us = 0;
  if (!bytesIs(b, start, sp1, 'GET')) {
    route = Route.MethodNotAllowed;
  } else if (sp2 === sp1 + 2) {
    route = Route.Hello; // the target is "/"
  } else if (sp2 - sp1 - 1 >= 5 && bytesIs(b, sp1 + 1, sp1 + 6, '/work') && (sp2 === sp1 + 6 || b[sp1 + 6] === 63 /* ? */)) {
    // /work?us=N, N 1-8 digits, at most MAX_WORK_US
    const ds = sp1 + 10;
    const n = sp2 - ds;
    if (!bytesIs(b, sp1 + 1, ds, '/work?us=') || n < 1 || n > 8) return -1;
    for (let k = ds; k < sp2; k++) {
      const d = b[k] - 48;
      if (d < 0 || d > 9) return -1;
      us = us * 10 + d;
    }
    if (us > MAX_WORK_US) return -1;
    route = Route.Work;
  } else {
    route = Route.NotFound;
  }
  out[REQ_ROUTE] = route;
  out[REQ_WORK_US] = us;
  out[REQ_CLOSE] = close ? 1 : 0;
  return total;
}

/** A connection's incomplete request: its bytes, kept until the rest arrives. */
export interface PartialInput {
  inBuf: Buffer | null;
  inLen: number;
}

/** Appends b[s, e) to c's incomplete request (the buffer doubles as needed). */
export function keepInput(c: PartialInput, b: Uint8Array, s: number, e: number): void {
  const need = c.inLen + (e - s);
  let ib = c.inBuf;
  if (ib === null || ib.length < need) {
    const grown = Buffer.allocUnsafe(Math.max(need, ib === null ? 1024 : ib.length * 2));
    if (ib !== null && c.inLen > 0) ib.copy(grown, 0, 0, c.inLen);
    c.inBuf = ib = grown;
  }
  ib.set(b.subarray(s, e), c.inLen);
  c.inLen = need;
}

/**
 * The input to parse: b itself, or, when part of a request is already kept,
 * b appended to it (then c.inBuf[0, c.inLen)). Returns the end of the bytes
 * in the buffer to parse, which is c.inBuf when c.inLen > 0 on return.
 */
export function gatherInput(c: PartialInput, b: Uint8Array, n: number): number {
  if (c.inLen === 0) return n;
  keepInput(c, b, 0, n);
  return c.inLen;
}

/**
 * After parsing b[0, end) up to off: a closing connection drops the rest;
 * otherwise the unparsed tail b[off, end) is what c keeps.
 */
export function settleInput(c: PartialInput, b: Uint8Array, off: number, end: number, closing: boolean): void {
  if (closing) {
    c.inLen = 0;
  } else if (b === c.inBuf) {
    if (off > 0) c.inBuf.copyWithin(0, off, end);
    c.inLen = end - off;
  } else if (off < end) {
    keepInput(c, b, off, end);
  }
}
