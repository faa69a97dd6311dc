// The connection engine of the readiness archs (reactor, reactor-pool,
// multi-reactor): listening sockets and connections on one EventLoop, raw fds,
// the lab protocols (docs/protocols.md), level- or edge-triggered.
//
// Hot path: one shared watcher callback looks the connection up by fd; bytes
// are read into one buffer per core, HTTP requests are parsed in place
// (http-parse.ts) and the responses copied into one output buffer per core,
// written with one write() per read. Nothing is allocated per event unless the
// kernel does not take everything (the rest is copied into the connection's
// queue) or a request is split across reads (kept until it is complete).
//
// Level-triggered: one read per readiness event; the watcher's interest
// follows the state (READABLE unless paused, WRITABLE while output waits).
// Edge-triggered: registered once for READABLE|WRITABLE; reads, writes and
// accepts go on until EAGAIN, because no new edge comes for what is left.
import { native } from '../native';
import type { EventLoop, Timer, Watcher } from '../loop';
import { Interest, Mode } from '../poller';
import * as sys from '../sys';
import { Route, burnMicros } from '../lab/protocol';
import type { LabProtocol } from './types';
import {
  REQ_CLOSE,
  REQ_ROUTE,
  REQ_WORK_US,
  RESPONSE_BYTES,
  RESP_BAD_REQUEST,
  RESP_HELLO,
  RESP_HELLO_CLOSE,
  gatherInput,
  parseRequest,
  responseCode,
  settleInput,
} from './http-parse';

const R = Interest.READABLE;
const W = Interest.WRITABLE;
const EAGAIN = sys.EAGAIN;
const EINTR = sys.EINTR;
const C = sys.constants;
const BUFFER_SIZE = 64 * 1024;
/** Queued output that stops reading from the connection (backpressure). */
const HIGH_WATER = 64 * 1024;
const ACCEPT_BATCH = 64;
const ACCEPT_PAUSE_MS = 50;
const MAX_IOV = 64;
/** After a closing response: how long to read and discard, waiting for the client's FIN, before closing anyway. */
const LINGER_MS = 2000;
/** Pipelined requests waiting behind CPU work before the connection stops being read. */
const MAX_HELD = 256;
/** Edge-triggered: reads of one connection per turn before the others go first. */
const EDGE_READS_PER_TURN = 16;

/** Indices into the counters array. */
export const COUNT_ACCEPTED = 0;
export const COUNT_ACTIVE = 1;
export const COUNT_REQUESTS = 2;
export const COUNTERS = 3;

/** Where /work requests go when CPU work is offloaded (reactor-pool). */
export interface WorkPool {
  /** Runs `us` of CPU work somewhere else; the owner then calls core.workDone(token) on the loop's thread. */
  submit(us: number, token: number): void;
}

export interface ReactorCoreOptions {
  loop: EventLoop;
  protocol: LabProtocol;
  edge: boolean;
  /** [accepted, active, requests], updated in place (may live in shared memory). */
  counters: Float64Array;
  graceMs: number;
  pool?: WorkPool | null;
}

class Conn {
  readonly fd: number;
  watcher: Watcher | null = null;
  /** Output the kernel did not take yet. */
  out: Uint8Array[] | null = null;
  outBytes = 0;
  /** An incomplete request (http), kept until the rest arrives. */
  inBuf: Buffer | null = null;
  inLen = 0;
  /** Not reading (backpressure). */
  paused = false;
  /** The peer's FIN arrived. */
  peerEnded = false;
  /** No more requests are answered; the write side is shut once everything is sent. */
  closing = false;
  writeShut = false;
  closed = false;
  /** Responses in order, behind CPU work that is still running: >= 0 a response code, < 0 job (-1 - slot). */
  held: number[] | null = null;
  heldHead = 0;
  linger: Timer | null = null;
  /** Edge-triggered: waiting in ReactorCore.again to be read on. */
  readLater = false;

  constructor(fd: number) {
    this.fd = fd;
  }

  get heldCount(): number {
    return this.held === null ? 0 : this.held.length - this.heldHead;
  }
}

interface Listener {
  fd: number;
  owned: boolean;
  watcher: Watcher | null;
  resume: Timer | null;
}

export class ReactorCore {
  readonly loop: EventLoop;
  readonly counters: Float64Array;
  /** Called once shutdown() has finished (every connection closed). */
  onstopped: (() => void) | null = null;

  private readonly edge: boolean;
  private readonly http: boolean;
  private readonly connMode: number;
  private readonly graceMs: number;
  private readonly pool: WorkPool | null;
  private readonly conns: Array<Conn | undefined> = [];
  private open = 0;
  private readonly listeners: Listener[] = [];
  private readonly rbuf = Buffer.allocUnsafeSlow(BUFFER_SIZE);
  private readonly obuf = Buffer.allocUnsafeSlow(BUFFER_SIZE);
  private opos = 0;
  private readonly req = new Int32Array(3);
  private readonly jobConn: Array<Conn | null> = [];
  private readonly jobCode: number[] = [];
  private readonly jobFree: number[] = [];
  private again: Conn[] = [];
  private stopping = false;
  private finished = false;
  private graceTimer: Timer | null = null;
  private resolveDone!: () => void;
  /** Resolves once shutdown() has finished. */
  readonly done: Promise<void>;

  constructor(o: ReactorCoreOptions) {
    this.loop = o.loop;
    this.edge = o.edge;
    this.http = o.protocol === 'http';
    this.counters = o.counters;
    this.graceMs = o.graceMs;
    this.pool = o.pool ?? null;
    this.connMode = o.edge ? Mode.EDGE : Mode.LEVEL;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  get connections(): number {
    return this.open;
  }

  get isStopping(): boolean {
    return this.stopping;
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /** Accepts connections from a listening socket. owned: close() it at shutdown; exclusive: EPOLLEXCLUSIVE (a socket shared by several loops). */
  listen(fd: number, options: { owned: boolean; exclusive?: boolean }): void {
    const mode = (this.edge ? Mode.EDGE : Mode.LEVEL) | (options.exclusive ? Mode.EXCLUSIVE : 0);
    const l: Listener = { fd, owned: options.owned, watcher: null, resume: null };
    l.watcher = this.loop.watch(fd, R, () => this.accept(l), mode);
    this.listeners.push(l);
  }

  /**
   * Graceful stop: listeners close, every connection stops taking requests,
   * finishes what it owes (responses, CPU work in flight), shuts its write
   * side and closes at the client's FIN; whatever is left after graceMs is
   * cut. Resolves when every connection is closed.
   */
  shutdown(): Promise<void> {
    if (this.stopping) return this.done;
    this.stopping = true;
    for (const l of this.listeners) {
      if (l.resume) this.loop.clearTimer(l.resume);
      l.resume = null;
      if (l.watcher) l.watcher.close();
      l.watcher = null;
      if (l.owned) native.sys.close(l.fd);
    }
    for (const c of this.conns) {
      if (c === undefined || c.closing) continue;
      c.closing = true;
      c.inLen = 0;
      this.settle(c);
    }
    if (this.open === 0) this.finish();
    else this.graceTimer = this.loop.setTimeout(() => this.destroyAll(), this.graceMs);
    return this.done;
  }

  /** Closes every connection now. */
  destroyAll(): void {
    for (const c of this.conns) if (c !== undefined) this.close(c);
  }

  /** CPU work `token` (given to pool.submit) is done: its response goes out, in order. */
  workDone(token: number): void {
    const c = this.jobConn[token];
    this.jobConn[token] = null;
    this.jobFree.push(token);
    if (c === null || c === undefined || c.closed || c.held === null) return;
    const held = c.held;
    for (let i = c.heldHead; i < held.length; i++) {
      if (held[i] === -1 - token) {
        held[i] = this.jobCode[token];
        break;
      }
    }
    this.opos = 0;
    while (c.heldHead < held.length && held[c.heldHead] >= 0) this.append(c, held[c.heldHead++]);
    if (c.heldHead === held.length) {
      held.length = 0;
      c.heldHead = 0;
    }
    this.flushOut(c);
    if (c.closed) return;
    if (c.paused && c.outBytes < HIGH_WATER && c.heldCount < MAX_HELD / 2) this.resume(c);
    this.settle(c);
  }

  // ---- accepting ----------------------------------------------------------

  private accept(l: Listener): void {
    const limit = this.edge ? Infinity : ACCEPT_BATCH;
    for (let i = 0; i < limit && l.watcher !== null; i++) {
      const fd: number = native.sys.accept(l.fd);
      if (fd < 0) {
        if (fd === EAGAIN) return;
        if (fd === EINTR || fd === sys.ECONNABORTED) continue;
        // EMFILE, ENFILE, ENOBUFS, ENOMEM: the connection stays in the backlog and
        // the socket readable; stop watching for a moment instead of spinning.
        this.pauseAccepting(l);
        return;
      }
      native.sys.setsockopt(fd, C.IPPROTO_TCP, C.TCP_NODELAY, 1);
      const c = new Conn(fd);
      try {
        c.watcher = this.loop.watch(fd, this.edge ? R | W : R, this.onEvent, this.connMode);
      } catch {
        // select: an fd >= FD_SETSIZE cannot be watched; that is a full table.
        native.sys.close(fd);
        this.pauseAccepting(l);
        return;
      }
      while (this.conns.length <= fd) this.conns.push(undefined);
      this.conns[fd] = c;
      this.open++;
      this.counters[COUNT_ACCEPTED]++;
      this.counters[COUNT_ACTIVE]++;
    }
  }

  private pauseAccepting(l: Listener): void {
    if (l.watcher === null || l.resume !== null) return;
    l.watcher.stop();
    l.resume = this.loop.setTimeout(() => {
      l.resume = null;
      if (l.watcher) l.watcher.start(R);
    }, ACCEPT_PAUSE_MS);
  }

  // ---- connections --------------------------------------------------------

  private readonly onEvent = (fd: number, events: number): void => {
    const c = this.conns[fd];
    if (c === undefined) return;
    if ((events & W) !== 0 && c.outBytes > 0) {
      this.flushQueue(c);
      if (c.closed) return;
    }
    if ((events & R) !== 0) this.readable(c);
  };

  private readable(c: Conn): void {
    const buf = this.rbuf;
    let reads = 0;
    while (!c.paused && !c.closed && !c.peerEnded) {
      if (reads++ === EDGE_READS_PER_TURN) {
        // Edge-triggered and still not drained: the others get their turn
        // first; this one goes on from an immediate (no new edge will come).
        this.readLater(c);
        return;
      }
      const n: number = native.sys.read(c.fd, buf, 0, BUFFER_SIZE);
      if (n > 0) {
        if (!c.closing) {
          if (this.http) this.onHttp(c, n);
          else this.onEcho(c, n);
        }
        if (!this.edge) return;
      } else if (n === 0) {
        this.peerEnd(c);
        return;
      } else if (n === EAGAIN) {
        return;
      } else if (n !== EINTR) {
        this.close(c); // ECONNRESET and friends
        return;
      }
    }
  }

  private readLater(c: Conn): void {
    if (c.readLater) return;
    c.readLater = true;
    this.again.push(c);
    if (this.again.length === 1) this.loop.setImmediate(this.readAgain);
  }

  private readonly readAgain = (): void => {
    const list = this.again;
    this.again = [];
    for (const c of list) {
      c.readLater = false;
      if (!c.closed) this.readable(c);
    }
  };

  private onEcho(c: Conn, n: number): void {
    this.counters[COUNT_REQUESTS]++;
    this.send(c, this.rbuf, n);
  }

  private onHttp(c: Conn, n: number): void {
    const end = gatherInput(c, this.rbuf, n);
    const b: Uint8Array = c.inLen > 0 ? c.inBuf! : this.rbuf;
    const req = this.req;
    let off = 0;
    this.opos = 0;
    while (off < end) {
      const k = parseRequest(b, off, end, req);
      if (k === 0) break;
      if (k < 0) {
        this.respond(c, RESP_BAD_REQUEST);
        c.closing = true;
        break;
      }
      off += k;
      const close = req[REQ_CLOSE];
      if (req[REQ_ROUTE] === Route.Work) {
        if (this.pool !== null) this.submitWork(c, req[REQ_WORK_US], close);
        else {
          burnMicros(req[REQ_WORK_US]);
          this.respond(c, close ? RESP_HELLO_CLOSE : RESP_HELLO);
        }
      } else {
        this.respond(c, responseCode(req[REQ_ROUTE], close));
      }
      if (close) {
        c.closing = true;
        break;
      }
    }
    settleInput(c, b, off, end, c.closing);
    this.flushOut(c);
    if (c.closed) return;
    if (c.heldCount > MAX_HELD) this.pause(c);
    if (c.closing) this.settle(c);
  }

  private respond(c: Conn, code: number): void {
    this.counters[COUNT_REQUESTS]++;
    if (c.held !== null && c.heldHead < c.held.length) c.held.push(code);
    else this.append(c, code);
  }

  private append(c: Conn, code: number): void {
    const r = RESPONSE_BYTES[code];
    if (this.opos + r.length > BUFFER_SIZE) this.flushOut(c);
    r.copy(this.obuf, this.opos);
    this.opos += r.length;
  }

  private submitWork(c: Conn, us: number, close: number): void {
    this.counters[COUNT_REQUESTS]++;
    const slot = this.jobFree.length > 0 ? this.jobFree.pop()! : this.jobConn.length;
    this.jobConn[slot] = c;
    this.jobCode[slot] = close ? RESP_HELLO_CLOSE : RESP_HELLO;
    if (c.held === null) c.held = [];
    c.held.push(-1 - slot);
    this.pool!.submit(us, slot);
  }

  private flushOut(c: Conn): void {
    const n = this.opos;
    this.opos = 0;
    if (n > 0 && !c.closed) this.send(c, this.obuf, n);
  }

  /** Writes buf[0, n) now if nothing is queued, and queues a copy of what the kernel does not take. */
  private send(c: Conn, buf: Uint8Array, n: number): void {
    let off = 0;
    if (c.outBytes === 0) {
      const w: number = native.sys.write(c.fd, buf, 0, n);
      if (w === n) return;
      if (w >= 0) off = w;
      else if (w !== EAGAIN && w !== EINTR) {
        this.close(c);
        return;
      }
    }
    const rest = Buffer.allocUnsafe(n - off);
    rest.set(buf.subarray(off, n));
    if (c.out === null) c.out = [];
    c.out.push(rest);
    c.outBytes += n - off;
    if (c.outBytes >= HIGH_WATER) this.pause(c);
    else if (!this.edge) this.updateInterest(c);
  }

  private flushQueue(c: Conn): void {
    const q = c.out!;
    while (q.length > 0) {
      const w: number =
        q.length === 1 ? native.sys.write(c.fd, q[0], 0, q[0].byteLength) : native.sys.writev(c.fd, q.length > MAX_IOV ? q.slice(0, MAX_IOV) : q);
      if (w < 0) {
        if (w === EINTR) continue;
        if (w === EAGAIN) return;
        this.close(c);
        return;
      }
      c.outBytes -= w;
      let left = w;
      let i = 0;
      while (left > 0 && i < q.length) {
        const b = q[i];
        if (left >= b.byteLength) {
          left -= b.byteLength;
          i++;
        } else {
          q[i] = b.subarray(left);
          left = 0;
        }
      }
      if (i > 0) q.splice(0, i);
    }
    if (!this.edge) this.updateInterest(c);
    if (c.paused && c.heldCount < MAX_HELD / 2) this.resume(c);
    if (!c.closed) this.settle(c);
  }

  private pause(c: Conn): void {
    if (c.paused) return;
    c.paused = true;
    if (!this.edge) this.updateInterest(c);
  }

  private resume(c: Conn): void {
    if (!c.paused || c.closed) return;
    c.paused = false;
    // Edge-triggered: what arrived while paused produced its edge already.
    if (this.edge) this.readable(c);
    else this.updateInterest(c);
  }

  private updateInterest(c: Conn): void {
    const w = c.watcher;
    if (w === null) return;
    let want = 0;
    if (!c.paused && !c.peerEnded) want |= R;
    if (c.outBytes > 0) want |= W;
    if (want !== w.interest) w.modify(want);
  }

  private peerEnd(c: Conn): void {
    c.peerEnded = true;
    c.inLen = 0; // an incomplete request will never be complete
    if (!this.edge) this.updateInterest(c);
    this.settle(c);
  }

  /** Acts on a connection that may have nothing left to do: close it, or shut its write side. */
  private settle(c: Conn): void {
    if (c.closed || c.outBytes > 0 || c.heldCount > 0) return;
    if (c.peerEnded) {
      this.close(c);
    } else if (c.closing && !c.writeShut) {
      // Shut the write side, then read and discard until the client's FIN:
      // closing with unread input would reset the connection and could destroy
      // the response on its way.
      c.writeShut = true;
      if (native.sys.shutdown(c.fd, C.SHUT_WR) < 0) {
        this.close(c);
        return;
      }
      c.linger = this.loop.setTimeout(() => {
        c.linger = null;
        this.close(c);
      }, LINGER_MS);
    }
  }

  private close(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    if (c.linger !== null) this.loop.clearTimer(c.linger);
    c.linger = null;
    // The registration goes first: io_uring's pending poll would keep the socket open.
    if (c.watcher !== null) c.watcher.close();
    c.watcher = null;
    native.sys.close(c.fd);
    this.conns[c.fd] = undefined;
    c.out = null;
    c.outBytes = 0;
    c.inBuf = null;
    c.held = null;
    this.open--;
    this.counters[COUNT_ACTIVE]--;
    if (this.stopping && this.open === 0) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.graceTimer !== null) this.loop.clearTimer(this.graceTimer);
    this.graceTimer = null;
    this.resolveDone();
    const cb = this.onstopped;
    if (cb) cb();
  }
}
