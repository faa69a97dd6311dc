// The JS side of the lab protocols (lib/lab/protocol.ts), used by the JS
// architectures: it must answer byte for byte like the native servers.
import { describe, expect, it } from 'vitest';
import { HttpSession, RESPONSES, Route, parseHttpRequest, parseWorkTarget, serveConnection, type ParsedRequest } from '../lib/lab/protocol';
import type { Connection } from '../lib/net-types';
import { HELLO_RESPONSE } from './lab-helpers';

const req = (target: string, headers = 'Host: x\r\n', version = 'HTTP/1.1') => `GET ${target} ${version}\r\n${headers}\r\n`;
const b = (s: string) => Buffer.from(s, 'latin1');

function parse(s: string): [number, ParsedRequest] {
  const out: ParsedRequest = { route: Route.Hello, workUs: -1, close: false };
  const buf = b(s);
  return [parseHttpRequest(buf, 0, buf.length, out), out];
}

describe('parseHttpRequest', () => {
  it('routes / , /work?us=N and the rest', () => {
    expect(parse(req('/'))).toEqual([req('/').length, { route: Route.Hello, workUs: 0, close: false }]);
    expect(parse(req('/work?us=250'))[1]).toEqual({ route: Route.Work, workUs: 250, close: false });
    expect(parse(req('/other'))[1].route).toBe(Route.NotFound);
    const post = 'POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc';
    expect(parse(post + 'GET')).toEqual([post.length, { route: Route.MethodNotAllowed, workUs: 0, close: false }]);
  });

  it('needs more bytes for a partial request, and for a body still on its way', () => {
    const full = req('/');
    for (let i = 0; i < full.length; i++) expect(parse(full.slice(0, i))[0]).toBe(0);
    expect(parse('POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab')[0]).toBe(0);
  });

  it('Connection: close, HTTP/1.0 and keep-alive', () => {
    expect(parse(req('/', 'Connection: keep-alive, Close\r\n'))[1].close).toBe(true);
    expect(parse(req('/', '', 'HTTP/1.0'))[1].close).toBe(true);
    expect(parse(req('/', 'connection: keep-alive\r\n', 'HTTP/1.0'))[1].close).toBe(false);
  });

  it('rejects garbage as early as it shows', () => {
    for (const bad of ['\x00', ' GET', 'GET\t/', 'GET / HTTP/2.0\r\n', 'GET nope HTTP/1.1\r\n', 'GET / HTTP/1.1\r\nBad Header\r\n\r\n',
      'GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n', req('/work?us=abc'), req('/work?us=99999999'), req('/work'),
      'GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n']) {
      expect(parse(bad)[0], JSON.stringify(bad)).toBe(-1);
    }
    expect(parse('G'.repeat(8192))[0]).toBe(-1);  // a method longer than any
    expect(parse('GET /' + 'a'.repeat(9000))[0]).toBe(-1);  // a head beyond 8 KiB
    expect(parseWorkTarget('/work?us=10000000')).toBe(10_000_000);
    expect(parseWorkTarget('/work?us=10000001')).toBe(-1);
  });
});

describe('HttpSession', () => {
  it('answers pipelined and split requests in order, with the exact native bytes', () => {
    const s = new HttpSession();
    expect(RESPONSES.hello.toString('latin1')).toBe(HELLO_RESPONSE);
    const out = s.feed(b(req('/') + req('/x') + req('/work?us=1') + 'GET / HT'));
    expect(out!.toString('latin1')).toBe(HELLO_RESPONSE + RESPONSES.notFound.toString('latin1') + HELLO_RESPONSE);
    expect(s.feed(b('TP/1.1\r\n'))).toBeNull();
    expect(s.feed(b('\r\n'))!.toString('latin1')).toBe(HELLO_RESPONSE);
    expect(s.requests).toBe(4);
    expect(s.closing).toBe(false);
  });

  it('closes after Connection: close or a 400, ignoring what follows', () => {
    const s = new HttpSession();
    expect(s.feed(b(req('/', 'Connection: close\r\n') + req('/')))!.equals(RESPONSES.helloClose)).toBe(true);
    expect(s.closing).toBe(true);
    expect(s.feed(b(req('/')))).toBeNull();
    const g = new HttpSession();
    expect(g.feed(b('\x16\x03\x01 tls hello'))!.equals(RESPONSES.badRequest)).toBe(true);
    expect(g.closing).toBe(true);
  });
});

describe('serveConnection', () => {
  function fake() {
    const written: Buffer[] = [];
    let ends = 0;
    const c = {
      fd: 3, writableLength: 0, closed: false,
      ondata: null, onend: null, ondrain: null, onerror: null, onclose: null,
      write: (d: Uint8Array | string) => (written.push(Buffer.from(d as Uint8Array)), true),
      end: () => void ends++,
      destroy: () => {},
    } as unknown as Connection;
    return { c, written, ends: () => ends };
  }

  it('echo: writes each chunk back (a copy), ends after the peer', () => {
    const f = fake();
    serveConnection(f.c, 'echo');
    const chunk = b('abc');
    f.c.ondata!(chunk);
    chunk[0] = 0x7a;  // the transport may reuse its buffer
    expect(Buffer.concat(f.written).toString()).toBe('abc');
    f.c.onend!();
    expect(f.ends()).toBe(1);
  });

  it('http: answers, half-closes once after a closing response', () => {
    const f = fake();
    serveConnection(f.c, 'http');
    f.c.ondata!(b(req('/') + req('/', 'Connection: close\r\n')));
    expect(Buffer.concat(f.written).toString('latin1')).toBe(HELLO_RESPONSE + RESPONSES.helloClose.toString('latin1'));
    expect(f.ends()).toBe(1);
    f.c.onend!();
    expect(f.ends()).toBe(1);
  });
});
