// TCP on a Ring: the completion (proactor) transport behind the same
// Server/Connection interfaces as the readiness transport (lib/net.ts).
// Accept and recv are multishot; received bytes are read in place from the
// Ring's buffer ring; each connection has one send in flight at a time and a
// queue behind it, so bytes leave in the order write() was called.
//
// Every request's userData is (endpoint id << 3 | operation); one router per
// Ring maps ids to servers and connections. The router is the Ring's
// `oncompletions`, so `ring.run()` or `ring.attach(loop)` drives everything.
import * as os from 'node:os';
import * as net from 'node:net';
import * as sys from './sys';
import { ErrnoError, InvalidStateError } from './errors';
import { bytesArg, intArg, typeOf } from './validate';
import { CompletionFlags, PollEvents, Ring } from './ring';
import type { Connection, Server, ServerOptions } from './net-types';

const E = os.constants.errno;
const MORE = CompletionFlags.MORE;

const OP_ACCEPT = 0;
const OP_RECV = 1;
const OP_SEND = 2;
const OP_SHUTDOWN = 3;
const OP_CLOSE = 4;
const OP_CANCEL = 5;
const OP_CONNECT = 6;
const OP_TIMER = 7;
const MAX_ID = 1 << 29;

/** Default high-water mark of a connection's write queue. */
export const DEFAULT_HIGH_WATER_MARK = 64 * 1024;
/** Queued chunks smaller than this are coalesced into one send. */
const COALESCE = 64 * 1024;
/** How long accept waits before trying again after EMFILE/ENFILE/ENOMEM. */
const ACCEPT_RETRY_MS = 50;

interface Endpoint {
  complete(op: number, res: number, flags: number, bid: number): void;
}

class Router {
  readonly ring: Ring;
  private readonly endpoints = new Map<number, Endpoint>();
  private nextId = 1;
  /** Connections whose recv ended with ENOBUFS, re-armed once buffers are back. */
  starved: RingConnection[] = [];

  constructor(ring: Ring) {
    this.ring = ring;
  }

  add(ep: Endpoint): number {
    while (this.endpoints.has(this.nextId)) this.nextId = this.nextId + 1 >= MAX_ID ? 1 : this.nextId + 1;
    const id = this.nextId;
    this.nextId = id + 1 >= MAX_ID ? 1 : id + 1;
    this.endpoints.set(id, ep);
    return id;
  }

  remove(id: number): void {
    this.endpoints.delete(id);
  }

  /** Hands a batch to its endpoints. A throwing callback does not cost the rest of the batch: the first error is rethrown after it. */
  dispatch = (count: number): void => {
    const c = this.ring.completions;
    let failed = false;
    let error: unknown;
    for (let i = 0; i < count; i++) {
      const ud = c[4 * i] >>> 0;
      const res = c[4 * i + 1];
      const flags = c[4 * i + 2];
      const bid = c[4 * i + 3];
      const ep = this.endpoints.get(ud >>> 3);
      try {
        if (ep) ep.complete(ud & 7, res, flags, bid);
        else if (bid >= 0 && !this.ring.closed) this.ring.returnBuffer(bid);
      } catch (err) {
        if (!failed) error = err;
        failed = true;
      }
    }
    if (this.starved.length > 0 && !this.ring.closed) {
      // Re-arm no more recvs than there are free buffers: each starved
      // connection has data waiting, so re-arming them all would mostly buy
      // another ENOBUFS each (a storm with thousands of connections).
      const free = this.ring.buffersFree;
      if (free > 0) {
        const list = free >= this.starved.length ? this.starved : this.starved.slice(0, free);
        this.starved = list === this.starved ? [] : this.starved.slice(free);
        for (const conn of list) conn.rearm();
      }
    }
    if (failed) throw error;
  };
}

const routers = new WeakMap<Ring, Router>();

function routerFor(ring: unknown): Router {
  if (!(ring instanceof Ring)) throw new TypeError(`ring must be a Ring, got ${typeOf(ring)}`);
  if (ring.closed) throw new ErrnoError(E.EBADF, 'ring-net', 'this Ring is closed');
  if (!ring.buffers) throw new RangeError('ring must have receive buffers (options.bufferCount > 0) to carry TCP');
  let r = routers.get(ring);
  if (!r) {
    if (ring.oncompletions !== null) throw new InvalidStateError('ring.oncompletions is already taken: use a Ring of its own for ring-net');
    r = new Router(ring);
    routers.set(ring, r);
    ring.oncompletions = r.dispatch;
  }
  return r;
}

export interface RingConnectionOptions {
  /** write() returns false once this many bytes are queued. Default 64 KiB. */
  highWaterMark?: number;
}

/** A TCP connection driven by a Ring. */
export class RingConnection implements Connection {
  readonly fd: number;
  ondata: ((chunk: Uint8Array) => void) | null = null;
  onend: (() => void) | null = null;
  ondrain: (() => void) | null = null;
  onerror: ((err: ErrnoError) => void) | null = null;
  onclose: ((hadError: boolean) => void) | null = null;
  /** Client connections: called once connected (writes made before are queued). */
  onconnect: (() => void) | null = null;
  readonly highWaterMark: number;

  private readonly router: Router;
  private readonly ring: Ring;
  private readonly id: number;
  private readonly server: RingTcpServer | null;
  private queue: Uint8Array[] = [];
  private queued = 0;
  private inFlight: Uint8Array | null = null;
  private connecting: boolean;
  private connectError = 0;
  private reading = false;
  private readEnded = false;
  private writeEnded = false;
  private shutdownSent = false;
  private shutdownDone = false;
  private needDrain = false;
  private isClosed = false;
  private hadError = false;
  private paused = false;
  /** Chunks (and 0 for the FIN) that arrived after pause(), before the recv was cancelled. */
  private held: Array<Uint8Array | 0> | null = null;

  /** @internal Use RingTcpServer or ringConnect(). */
  constructor(router: Router, fd: number, server: RingTcpServer | null, connecting: boolean, options: RingConnectionOptions = {}) {
    this.router = router;
    this.ring = router.ring;
    this.fd = fd;
    this.server = server;
    this.connecting = connecting;
    this.highWaterMark =
      options.highWaterMark === undefined ? DEFAULT_HIGH_WATER_MARK : intArg(options.highWaterMark, 'options.highWaterMark', 0, 2 ** 31);
    this.id = router.add(this);
    if (!connecting) this.rearm();
  }

  get writableLength(): number {
    return this.queued;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  write(data: Uint8Array | string): boolean {
    if (this.writeEnded && !this.isClosed) {
      throw new ErrnoError(E.EPIPE, 'write', 'write() after end()');
    }
    let chunk: Uint8Array;
    if (typeof data === 'string') chunk = Buffer.from(data);
    else {
      chunk = bytesArg(data, 'data');
      // A view into the Ring's own buffers (an echo of ondata's chunk) is
      // recycled as soon as ondata returns: copy it.
      if (chunk.buffer === this.ring.buffers) chunk = Buffer.from(chunk);
    }
    if (this.isClosed) return false;
    if (chunk.byteLength > 0) {
      this.queue.push(chunk);
      this.queued += chunk.byteLength;
      if (this.inFlight === null && !this.connecting) this.flush();
    }
    const ok = this.queued < this.highWaterMark;
    if (!ok) this.needDrain = true;
    return ok;
  }

  end(data?: Uint8Array | string): void {
    if (this.isClosed || this.writeEnded) return;
    if (data !== undefined) this.write(data);
    this.writeEnded = true;
    if (this.inFlight === null && this.queue.length === 0 && !this.connecting) this.sendShutdown();
  }

  destroy(): void {
    this.closeNow(false);
  }

  /**
   * Stops reading (flow control): the multishot recv is cancelled, so the
   * kernel buffers and then the peer's writes block. Bytes already on their
   * way are kept (copied) and delivered by resume(), in order.
   */
  pause(): void {
    if (this.isClosed || this.paused) return;
    this.paused = true;
    if (this.reading) this.ring.cancel(this.ud(OP_RECV), this.ud(OP_CANCEL));
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const held = this.held;
    this.held = null;
    if (held !== null) {
      for (let i = 0; i < held.length; i++) {
        if (this.isClosed) return;
        if (this.paused) {
          // paused again by ondata: keep the rest for the next resume()
          this.held = held.slice(i).concat(this.held ?? []);
          return;
        }
        const h = held[i];
        if (h === 0) this.gotEnd();
        else this.ondata?.(h);
      }
    }
    this.rearm();
  }

  /** @internal */
  rearm(): void {
    if (this.isClosed || this.readEnded || this.reading || this.connecting || this.paused) return;
    this.reading = true;
    this.ring.recv(this.fd, this.ud(OP_RECV));
  }

  /** @internal */
  startConnect(rc: number): void {
    if (rc === sys.EINPROGRESS || rc === sys.EAGAIN) {
      this.ring.poll(this.fd, PollEvents.OUT, this.ud(OP_CONNECT));
    } else {
      // Refused at once: report it from the next batch, once handlers are set.
      this.connectError = -rc;
      this.ring.nop(this.ud(OP_CONNECT));
    }
  }

  /** @internal */
  complete(op: number, res: number, flags: number, bid: number): void {
    switch (op) {
      case OP_RECV:
        return this.onRecv(res, flags, bid);
      case OP_SEND:
        return this.onSend(res);
      case OP_SHUTDOWN:
        this.shutdownDone = true;
        if (this.readEnded) this.closeNow(false);
        return;
      case OP_CLOSE:
        this.router.remove(this.id);
        this.onclose?.(this.hadError);
        return;
      case OP_CONNECT:
        return this.onConnect(res);
      default:
        return;
    }
  }

  private ud(op: number): number {
    return this.id * 8 + op;
  }

  private onRecv(res: number, flags: number, bid: number): void {
    if (!(flags & MORE)) this.reading = false;
    if (this.paused && !this.isClosed && res >= 0) {
      // Completions that were on their way when pause() cancelled the recv.
      if (bid >= 0) {
        if (res > 0) (this.held ??= []).push(Buffer.from(this.ring.buffer(bid, res)));
        if (!this.ring.closed) this.ring.returnBuffer(bid);
      }
      if (res === 0) (this.held ??= []).push(0);
      return;
    }
    if (bid >= 0) {
      try {
        if (res > 0 && !this.isClosed && this.ondata) this.ondata(this.ring.buffer(bid, res));
      } finally {
        if (!this.ring.closed) this.ring.returnBuffer(bid);
      }
    }
    if (this.isClosed) return;
    if (res > 0) {
      if (!this.reading) this.rearm(); // multishot ended early (e.g. CQ overflow): keep reading
    } else if (res === 0) {
      this.gotEnd();
    } else if (res === -E.ENOBUFS) {
      this.router.starved.push(this);
    } else if (res === -E.ECANCELED) {
      if (!this.reading) this.rearm(); // pause() cancelled it, and resume() came first
    } else {
      this.fail(-res, 'recv');
    }
  }

  private gotEnd(): void {
    this.readEnded = true;
    const cb = this.onend;
    if (cb) cb();
    else if (!this.closed) this.end(); // no onend: end our side too, as TcpConnection (and Node) do
    if (this.shutdownDone && !this.isClosed) this.closeNow(false);
  }

  private onSend(res: number): void {
    const chunk = this.inFlight!;
    this.inFlight = null;
    if (this.isClosed) return;
    if (res < 0) {
      if (res !== -E.ECANCELED) this.fail(-res, 'send');
      return;
    }
    this.queued -= res;
    if (res < chunk.byteLength) this.queue.unshift(chunk.subarray(res));
    if (this.queue.length > 0) {
      this.flush();
      if (this.needDrain && this.queued < this.highWaterMark) this.drained();
    } else {
      if (this.writeEnded) this.sendShutdown();
      if (this.needDrain) this.drained();
    }
  }

  private drained(): void {
    this.needDrain = false;
    this.ondrain?.();
  }

  private onConnect(res: number): void {
    if (this.isClosed) return;
    let err = this.connectError;
    if (err === 0 && res < 0) err = -res;
    if (err === 0) err = sys.getsockopt(this.fd, 'SO_ERROR');
    if (err !== 0) {
      this.fail(err, 'connect');
      return;
    }
    this.connecting = false;
    this.rearm();
    this.onconnect?.();
    if (this.isClosed) return;
    if (this.queue.length > 0 && this.inFlight === null) this.flush();
    else if (this.writeEnded && this.inFlight === null) this.sendShutdown();
  }

  private flush(): void {
    let chunk = this.queue.shift()!;
    if (this.queue.length > 0 && chunk.byteLength < COALESCE) {
      // Small writes go out together: one send, one completion.
      const parts = [chunk];
      let size = chunk.byteLength;
      while (this.queue.length > 0 && size + this.queue[0].byteLength <= COALESCE) {
        const next = this.queue.shift()!;
        parts.push(next);
        size += next.byteLength;
      }
      if (parts.length > 1) chunk = Buffer.concat(parts, size);
    }
    this.inFlight = chunk;
    this.ring.send(this.fd, chunk, this.ud(OP_SEND), true);
  }

  private sendShutdown(): void {
    if (this.shutdownSent || this.isClosed) return;
    this.shutdownSent = true;
    this.ring.shutdown(this.fd, 'write', this.ud(OP_SHUTDOWN));
  }

  private fail(errno: number, syscall: string): void {
    if (this.isClosed) return;
    this.hadError = true;
    const err = new ErrnoError(errno, syscall);
    try {
      this.onerror?.(err);
    } finally {
      this.closeNow(true);
    }
  }

  private closeNow(hadError: boolean): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.hadError = this.hadError || hadError;
    this.queue = [];
    this.queued = 0;
    this.server?.connectionClosed();
    if (this.ring.closed) {
      this.router.remove(this.id);
      sys.close(this.fd);
      this.onclose?.(this.hadError);
      return;
    }
    // Cancel what is in flight on the fd (hard-linked), then close it: the
    // close completion calls onclose.
    this.ring.closeFd(this.fd, this.ud(OP_CLOSE), true);
  }
}

export interface RingServerOptions extends ServerOptions, RingConnectionOptions {}

/** A listening TCP socket accepting through multishot accept on a Ring. */
export class RingTcpServer implements Server {
  readonly address: { address: string; port: number };
  onconnection: ((conn: Connection) => void) | null = null;
  onerror: ((err: ErrnoError) => void) | null = null;
  /** Called once the listening socket is closed. */
  onclose: (() => void) | null = null;
  readonly fd: number;

  private readonly router: Router;
  private readonly ring: Ring;
  private readonly id: number;
  private readonly connOptions: RingConnectionOptions;
  private open = 0;
  private accepting = false;
  private retrying = false;
  private isClosed = false;
  private fdClosed = false;

  constructor(ring: Ring, options: RingServerOptions = {}) {
    this.router = routerFor(ring);
    this.ring = ring;
    if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${typeOf(options)}`);
    const host = options.host ?? '127.0.0.1';
    if (typeof host !== 'string' || net.isIP(host) === 0) throw new TypeError(`options.host must be an IPv4 or IPv6 literal, got ${typeOf(host)}`);
    const port = options.port === undefined ? 0 : intArg(options.port, 'options.port', 0, 65535);
    const backlog = options.backlog === undefined ? 511 : intArg(options.backlog, 'options.backlog', 0, 0x7fffffff);
    if (options.reusePort !== undefined && typeof options.reusePort !== 'boolean') {
      throw new TypeError(`options.reusePort must be a boolean, got ${typeOf(options.reusePort)}`);
    }
    this.connOptions = { highWaterMark: options.highWaterMark };
    if (options.highWaterMark !== undefined) intArg(options.highWaterMark, 'options.highWaterMark', 0, 2 ** 31);
    this.fd = sys.listenTcp(host, port, { backlog, reusePort: options.reusePort ?? false });
    const a = sys.getsockname(this.fd);
    this.address = { address: a.address ?? host, port: a.port ?? port };
    this.id = this.router.add(this);
    this.arm();
  }

  get connections(): number {
    return this.open;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    if (this.ring.closed) {
      this.closeFd();
      return;
    }
    if (this.accepting) this.ring.cancel(this.ud(OP_ACCEPT), this.ud(OP_CANCEL));
    if (this.retrying) this.ring.cancel(this.ud(OP_TIMER), this.ud(OP_CANCEL));
    if (!this.accepting && !this.retrying) this.closeFd();
  }

  /** @internal */
  connectionClosed(): void {
    this.open--;
  }

  /** @internal */
  complete(op: number, res: number, flags: number): void {
    if (op === OP_TIMER) {
      this.retrying = false;
      if (this.isClosed) this.closeFd();
      else this.arm();
      return;
    }
    if (op !== OP_ACCEPT) return;
    if (!(flags & MORE)) this.accepting = false;
    if (res >= 0) {
      if (this.isClosed) {
        sys.close(res);
      } else {
        const conn = new RingConnection(this.router, res, this, false, this.connOptions);
        this.open++;
        this.onconnection?.(conn);
      }
    } else if (res !== -E.ECANCELED && !this.isClosed) {
      this.onerror?.(new ErrnoError(-res, 'accept'));
    }
    if (this.accepting) return;
    if (this.isClosed) {
      this.closeFd();
    } else if (res === -E.EMFILE || res === -E.ENFILE || res === -E.ENOMEM || res === -E.ENOBUFS) {
      // The pending connection stays in the backlog; trying again at once would spin.
      this.retrying = true;
      this.ring.timeout(ACCEPT_RETRY_MS, this.ud(OP_TIMER));
    } else {
      this.arm();
    }
  }

  private ud(op: number): number {
    return this.id * 8 + op;
  }

  private arm(): void {
    if (this.isClosed || this.accepting) return;
    this.accepting = true;
    this.ring.accept(this.fd, this.ud(OP_ACCEPT));
  }

  private closeFd(): void {
    if (this.fdClosed) return;
    this.fdClosed = true;
    this.router.remove(this.id);
    sys.close(this.fd);
    this.onclose?.();
  }
}

/**
 * A client connection through the Ring: a non-blocking connect, completed by
 * a poll for writability. Writes made before it connects are queued.
 */
export function ringConnect(ring: Ring, port: number, host = '127.0.0.1', options: RingConnectionOptions = {}): RingConnection {
  const router = routerFor(ring);
  intArg(port, 'port', 1, 65535);
  if (typeof host !== 'string' || net.isIP(host) === 0) throw new TypeError(`host must be an IPv4 or IPv6 literal, got ${typeOf(host)}`);
  if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${typeOf(options)}`);
  const fd = sys.socket(net.isIP(host) === 6 ? 'ipv6' : 'ipv4');
  let conn: RingConnection;
  try {
    const rc = sys.connect(fd, host, port);
    conn = new RingConnection(router, fd, null, true, options);
    conn.startConnect(rc === 0 ? sys.EINPROGRESS : rc);
  } catch (err) {
    sys.close(fd);
    throw err;
  }
  return conn;
}
