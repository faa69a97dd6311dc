// The readiness transport: TcpServer and TcpConnection on an EventLoop (any
// backend), implementing the Connection/Server interfaces of net-types.ts.
// Reads go into one buffer per loop (the chunk given to ondata is reused);
// writes go out at once when they can, and what the kernel does not take is
// copied into a queue that is flushed (writev when several chunks wait) when
// the socket becomes writable again. See docs/net.md.
import * as net from 'node:net';
import { native } from './native';
import { ErrnoError } from './errors';
import { EventLoop, Watcher } from './loop';
import { Interest } from './poller';
import * as sys from './sys';
import { fdArg, intArg, typeOf } from './validate';
import type { Connection, Server, ServerOptions } from './net-types';

export type { Connection, Server, ServerOptions } from './net-types';

const R = Interest.READABLE;
const W = Interest.WRITABLE;
const C = sys.constants;
const READ_BUFFER_SIZE = 64 * 1024;
const MAX_IOV = Math.min(64, C.IOV_MAX);
const READS_PER_EVENT = 4;
const EMFILE_PAUSE_MS = 50;

const readBuffers = new WeakMap<EventLoop, Uint8Array>();
function readBufferOf(loop: EventLoop): Uint8Array {
  let b = readBuffers.get(loop);
  if (!b) {
    // A Buffer, so that the chunks handed to ondata (views of it) are Buffers.
    b = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
    readBuffers.set(loop, b);
  }
  return b;
}

function loopArg(loop: unknown): EventLoop {
  if (!(loop instanceof EventLoop)) throw new TypeError(`loop must be an EventLoop, got ${typeOf(loop)}`);
  if (loop.closed) throw new ErrnoError(9, 'net', 'the EventLoop is closed');
  return loop;
}

function boolOpt(value: unknown, name: string, dflt: boolean): boolean {
  if (value === undefined) return dflt;
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${typeOf(value)}`);
  return value;
}

export interface ConnectionOptions {
  /** TCP_NODELAY (default true: small writes go out at once). */
  noDelay?: boolean;
  /** write() returns false once this many bytes wait in the queue; default 65536. */
  highWaterMark?: number;
}

function connectionOpts(options: ConnectionOptions | undefined, name: string): Required<ConnectionOptions> {
  if (options === undefined) return { noDelay: true, highWaterMark: 65536 };
  if (options === null || typeof options !== 'object') throw new TypeError(`${name} must be an object, got ${typeOf(options)}`);
  return {
    noDelay: boolOpt(options.noDelay, `${name}.noDelay`, true),
    highWaterMark: options.highWaterMark === undefined ? 65536 : intArg(options.highWaterMark, `${name}.highWaterMark`, 1, 0x7fffffff),
  };
}

/** A TCP connection on an EventLoop (accepted by a TcpServer, or made by connectTcp). */
export class TcpConnection implements Connection {
  ondata: ((chunk: Uint8Array) => void) | null = null;
  onend: (() => void) | null = null;
  ondrain: (() => void) | null = null;
  onerror: ((err: ErrnoError) => void) | null = null;
  onclose: ((hadError: boolean) => void) | null = null;
  /** Client side: the connection is established (after connectTcp). */
  onconnect: (() => void) | null = null;

  readonly loop: EventLoop;
  readonly highWaterMark: number;
  private sock: number;
  private watcher: Watcher | null = null;
  private readonly server: TcpServer | null;
  private readonly buf: Uint8Array;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private needDrain = false;
  private connecting: boolean;
  private paused = false;
  private readEnded = false;
  private ending = false;
  private writeShut = false;
  private isClosed = false;
  private closeEmitted = false;
  private autoEnded = false;

  /** @internal Use TcpServer (accept) or connectTcp (client). */
  constructor(loop: EventLoop, fd: number, server: TcpServer | null, opts: Required<ConnectionOptions>, connecting: boolean) {
    this.loop = loop;
    this.sock = fd;
    this.server = server;
    this.highWaterMark = opts.highWaterMark;
    this.connecting = connecting;
    this.buf = readBufferOf(loop);
    if (opts.noDelay) native.sys.setsockopt(fd, C.IPPROTO_TCP, C.TCP_NODELAY, 1);
    this.watcher = loop.watch(fd, connecting ? W : R, this.onready);
  }

  get fd(): number {
    return this.sock;
  }
  get writableLength(): number {
    return this.queued;
  }
  get closed(): boolean {
    return this.isClosed;
  }
  /** The peer's FIN arrived. */
  get readableEnded(): boolean {
    return this.readEnded;
  }
  /** end() was called. */
  get writableEnded(): boolean {
    return this.ending;
  }
  get isConnecting(): boolean {
    return this.connecting;
  }

  write(data: Uint8Array | string): boolean {
    const bytes = toBytes(data);
    if (this.isClosed) return false;
    if (this.ending) {
      throw new ErrnoError(32, 'write', this.autoEnded ? 'write after the peer ended (set onend to keep writing after its FIN)' : 'write after end()');
    }
    let off = 0;
    if (this.queued === 0 && !this.connecting && bytes.byteLength > 0) {
      const n = native.sys.write(this.sock, bytes, 0, bytes.byteLength);
      if (n >= 0) off = n;
      else if (n !== sys.EAGAIN && n !== sys.EINTR) {
        this.fail(n, 'write', true);
        return false;
      }
    }
    if (off < bytes.byteLength) {
      // The caller may reuse its buffer (an ondata chunk always is): keep a copy.
      this.queue.push(bytes.slice(off));
      this.queued += bytes.byteLength - off;
      this.updateInterest();
    }
    if (this.queued >= this.highWaterMark) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  end(data?: Uint8Array | string): void {
    if (this.isClosed || this.ending) return;
    if (data !== undefined) this.write(data);
    if (this.isClosed) return;
    this.ending = true;
    if (this.queued === 0 && !this.connecting) this.shutdownWrite(true);
  }

  destroy(): void {
    if (this.isClosed) return;
    this.closeFd();
    this.emitClose(null, true);
  }

  /** Stops reading (the kernel buffers, then the peer's writes block): flow control. */
  pause(): void {
    if (this.isClosed || this.paused) return;
    this.paused = true;
    this.updateInterest();
  }

  resume(): void {
    if (this.isClosed || !this.paused) return;
    this.paused = false;
    this.updateInterest();
  }

  // ---- internals ----------------------------------------------------------

  private readonly onready = (_fd: number, events: number): void => {
    if (this.connecting) {
      this.finishConnect();
      return;
    }
    if (events & W && this.queued > 0) this.flush();
    if (events & R && !this.isClosed && !this.paused && !this.readEnded) this.readSome();
  };

  private readSome(): void {
    const buf = this.buf;
    for (let k = 0; k < READS_PER_EVENT; k++) {
      const n = native.sys.read(this.sock, buf, 0, buf.byteLength);
      if (n > 0) {
        const cb = this.ondata;
        if (cb) cb(buf.subarray(0, n));
        if (this.isClosed || this.paused || n < buf.byteLength) return;
      } else if (n === 0) {
        this.gotEof();
        return;
      } else {
        if (n !== sys.EAGAIN && n !== sys.EINTR) this.fail(n, 'read', false);
        return;
      }
    }
  }

  private gotEof(): void {
    this.readEnded = true;
    this.updateInterest();
    const cb = this.onend;
    if (cb) cb();
    else if (!this.ending) {
      // No onend: end our side too, like Node's allowHalfOpen: false.
      this.ending = true;
      this.autoEnded = true;
      if (this.queued === 0) this.shutdownWrite(false);
    }
    if (!this.isClosed && this.writeShut) this.finish();
  }

  private flush(): void {
    while (this.queue.length > 0) {
      let n: number;
      let syscall: string;
      if (this.queue.length === 1) {
        const b = this.queue[0];
        n = native.sys.write(this.sock, b, 0, b.byteLength);
        syscall = 'write';
      } else {
        n = native.sys.writev(this.sock, this.queue.length > MAX_IOV ? this.queue.slice(0, MAX_IOV) : this.queue);
        syscall = 'writev';
      }
      if (n < 0) {
        if (n === sys.EINTR) continue;
        if (n !== sys.EAGAIN) this.fail(n, syscall, false);
        return;
      }
      this.consume(n);
    }
    this.updateInterest();
    if (this.needDrain) {
      this.needDrain = false;
      const cb = this.ondrain;
      if (cb) cb();
    }
    if (this.ending && !this.writeShut && !this.isClosed && this.queued === 0) this.shutdownWrite(false);
  }

  private consume(n: number): void {
    this.queued -= n;
    let i = 0;
    while (n > 0) {
      const b = this.queue[i];
      if (n >= b.byteLength) {
        n -= b.byteLength;
        i++;
      } else {
        this.queue[i] = b.subarray(n);
        n = 0;
      }
    }
    if (i > 0) this.queue.splice(0, i);
  }

  private shutdownWrite(fromUser: boolean): void {
    const rc = native.sys.shutdown(this.sock, C.SHUT_WR);
    if (rc < 0) {
      this.fail(rc, 'shutdown', fromUser);
      return;
    }
    this.writeShut = true;
    if (this.readEnded) {
      if (fromUser) {
        this.closeFd();
        this.emitClose(null, true);
      } else {
        this.finish();
      }
    }
  }

  private finishConnect(): void {
    let err = 0;
    try {
      err = sys.getsockopt(this.sock, 'SO_ERROR');
    } catch (e) {
      err = (e as ErrnoError).errno ?? 22;
    }
    if (err !== 0) {
      this.fail(-err, 'connect', false);
      return;
    }
    this.connecting = false;
    this.updateInterest();
    const cb = this.onconnect;
    if (cb) cb();
    if (this.isClosed) return;
    if (this.queued > 0) this.flush();
    else if (this.ending && !this.writeShut) this.shutdownWrite(false);
  }

  /** @internal connectTcp: the connect() call returned 0 at once. */
  _connectedNow(): void {
    this.connecting = false;
    this.updateInterest();
    this.loop.setImmediate(() => {
      if (this.isClosed) return;
      const cb = this.onconnect;
      if (cb) cb();
      if (!this.isClosed && this.queued === 0 && this.ending && !this.writeShut) this.shutdownWrite(false);
    });
  }

  /** @internal connectTcp: connect() failed at once. */
  _failNow(rc: number): void {
    this.fail(rc, 'connect', true);
  }

  private updateInterest(): void {
    const w = this.watcher;
    if (!w) return;
    let want = 0;
    if (this.connecting) want = W;
    else {
      if (!this.paused && !this.readEnded) want |= R;
      if (this.queued > 0) want |= W;
    }
    if (want !== w.interest) w.modify(want);
  }

  private fail(rc: number, syscall: string, deferred: boolean): void {
    if (this.isClosed) return;
    const err = new ErrnoError(-rc, syscall);
    this.closeFd();
    this.emitClose(err, deferred);
  }

  // Both directions are done (FIN received, our FIN sent): close.
  private finish(): void {
    this.closeFd();
    this.emitClose(null, false);
  }

  private closeFd(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    // The registration goes first: io_uring's pending poll would otherwise
    // keep the socket open (no FIN sent) after close().
    if (this.watcher) this.watcher.close();
    this.watcher = null;
    native.sys.close(this.sock);
    this.queue = [];
    this.queued = 0;
    if (this.server) this.server._release();
  }

  // onerror (if any) then onclose, exactly once. Deferred to an immediate
  // when we are inside a method the user called (write, end, destroy), so
  // that user callbacks never run re-entrantly inside those calls.
  private emitClose(err: ErrnoError | null, deferred: boolean): void {
    if (this.closeEmitted) return;
    this.closeEmitted = true;
    const emit = (): void => {
      if (err) {
        const onerror = this.onerror;
        if (onerror) onerror(err);
      }
      const onclose = this.onclose;
      if (onclose) onclose(err !== null);
    };
    if (deferred) this.loop.setImmediate(emit);
    else emit();
  }
}

function toBytes(data: unknown): Uint8Array {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(`data must be a string, Buffer or Uint8Array, got ${typeOf(data)}`);
}

export interface TcpServerOptions extends ServerOptions, ConnectionOptions {
  /** Serve an already listening socket instead of making one (it is not closed by close()). */
  fd?: number;
  /** Mode flags for the listening socket's watcher, e.g. Mode.EXCLUSIVE for a listener shared by several loops (epoll). */
  acceptMode?: number;
  /** Accepts per readiness event (default 64), so that one busy listener cannot starve the connections. */
  acceptBatch?: number;
}

/** A listening TCP socket on an EventLoop. */
export class TcpServer implements Server<TcpConnection> {
  onconnection: ((conn: TcpConnection) => void) | null;
  onerror: ((err: ErrnoError) => void) | null = null;
  readonly loop: EventLoop;
  readonly fd: number;
  private readonly ownsFd: boolean;
  private watcher: Watcher | null;
  private open = 0;
  private readonly connOpts: Required<ConnectionOptions>;
  private readonly batch: number;
  private resumeTimer: ReturnType<EventLoop['setTimeout']> | null = null;
  private cachedAddress: { address: string; port: number } | null = null;

  constructor(loop: EventLoop, options: TcpServerOptions = {}, onconnection: ((conn: TcpConnection) => void) | null = null) {
    loopArg(loop);
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${typeOf(options)}`);
    if (onconnection !== null && typeof onconnection !== 'function') throw new TypeError(`onconnection must be a function, got ${typeOf(onconnection)}`);
    this.loop = loop;
    this.connOpts = connectionOpts({ noDelay: options.noDelay, highWaterMark: options.highWaterMark }, 'options');
    this.batch = options.acceptBatch === undefined ? 64 : intArg(options.acceptBatch, 'options.acceptBatch', 1, 1 << 20);
    this.onconnection = onconnection;
    if (options.fd !== undefined) {
      this.fd = fdArg(options.fd, 'options.fd');
      this.ownsFd = false;
    } else {
      const host = options.host ?? '127.0.0.1';
      const port = options.port ?? 0;
      if (typeof host !== 'string') throw new TypeError(`options.host must be a string, got ${typeOf(host)}`);
      intArg(port, 'options.port', 0, 65535);
      const backlog = options.backlog === undefined ? 511 : intArg(options.backlog, 'options.backlog', 0, 0x7fffffff);
      this.fd = sys.listenTcp(host, port, { backlog, reusePort: boolOpt(options.reusePort, 'options.reusePort', false) });
      this.ownsFd = true;
    }
    try {
      this.watcher = loop.watch(this.fd, R, this.onacceptable, options.acceptMode ?? 0);
    } catch (err) {
      if (this.ownsFd) native.sys.close(this.fd);
      throw err;
    }
  }

  get address(): { address: string; port: number } {
    if (!this.cachedAddress) {
      const a = sys.getsockname(this.fd);
      this.cachedAddress = { address: a.address ?? '', port: a.port ?? 0 };
    }
    return this.cachedAddress;
  }

  get port(): number {
    return this.address.port;
  }

  get connections(): number {
    return this.open;
  }

  get listening(): boolean {
    return this.watcher !== null;
  }

  close(): void {
    if (!this.watcher) return;
    this.watcher.close();
    this.watcher = null;
    if (this.resumeTimer) this.loop.clearTimer(this.resumeTimer);
    this.resumeTimer = null;
    if (this.ownsFd) native.sys.close(this.fd);
  }

  /** @internal */
  _release(): void {
    this.open--;
  }

  private readonly onacceptable = (): void => {
    for (let i = 0; i < this.batch && this.watcher; i++) {
      const cfd = native.sys.accept(this.fd);
      if (cfd < 0) {
        if (cfd === sys.EAGAIN) return;
        if (cfd === sys.EINTR || cfd === sys.ECONNABORTED) continue;
        this.acceptError(new ErrnoError(-cfd, 'accept'));
        if (cfd === sys.EMFILE || cfd === sys.ENFILE || cfd === sys.ENOBUFS || cfd === sys.ENOMEM) this.pauseAccepting();
        return;
      }
      let conn: TcpConnection;
      try {
        conn = new TcpConnection(this.loop, cfd, this, this.connOpts, false);
      } catch (err) {
        native.sys.close(cfd);
        // select cannot watch an fd >= FD_SETSIZE: for it, that is a full table.
        const e = err instanceof ErrnoError ? err : new ErrnoError(24, 'accept', (err as Error).message);
        this.acceptError(e);
        this.pauseAccepting();
        return;
      }
      this.open++;
      const cb = this.onconnection;
      if (cb) cb(conn);
    }
  };

  private acceptError(err: ErrnoError): void {
    const cb = this.onerror;
    if (cb) cb(err);
  }

  // Out of fds: the pending connection stays in the backlog and the listener
  // stays readable; stop watching for a moment instead of spinning.
  private pauseAccepting(): void {
    if (!this.watcher || this.resumeTimer) return;
    this.watcher.stop();
    this.resumeTimer = this.loop.setTimeout(() => {
      this.resumeTimer = null;
      if (this.watcher) this.watcher.start(R);
    }, EMFILE_PAUSE_MS);
  }
}

/** new TcpServer(loop, options, onconnection): listens on options.host:options.port (127.0.0.1, any free port). */
export function listenTcp(loop: EventLoop, options: TcpServerOptions = {}, onconnection: ((conn: TcpConnection) => void) | null = null): TcpServer {
  return new TcpServer(loop, options, onconnection);
}

/**
 * Connects to host:port (127.0.0.1 by default) without blocking. The
 * connection can be written to at once (bytes wait until it is up);
 * onconnect fires when it is established, onerror + onclose if it fails.
 */
export function connectTcp(loop: EventLoop, port: number, host = '127.0.0.1', options?: ConnectionOptions): TcpConnection {
  loopArg(loop);
  intArg(port, 'port', 1, 65535);
  if (typeof host !== 'string') throw new TypeError(`host must be a string, got ${typeOf(host)}`);
  const family = net.isIP(host);
  if (family === 0) throw new TypeError(`host must be an IPv4 or IPv6 literal, got '${host}'`);
  const opts = connectionOpts(options, 'options');
  const fd = sys.socket(family === 6 ? 'ipv6' : 'ipv4');
  let rc: number;
  let conn: TcpConnection;
  try {
    rc = sys.connect(fd, host, port);
    conn = new TcpConnection(loop, fd, null, opts, true);
  } catch (err) {
    native.sys.close(fd);
    throw err;
  }
  if (rc === 0) conn._connectedNow();
  else if (rc !== sys.EINPROGRESS && rc !== sys.EAGAIN && rc !== sys.EINTR) conn._failNow(rc);
  return conn;
}
