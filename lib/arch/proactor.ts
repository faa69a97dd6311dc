// `proactor`: io_uring as a completion engine (a Ring with the TCP transport
// of lib/ring-net.ts), the protocol handlers in JS, ring.run() owning the
// thread. Accept and recv are multishot, received bytes are parsed where the
// kernel put them (the Ring's buffer ring), responses are queued as sends, and
// every request queued in one batch goes to the kernel in the io_uring_enter
// that also waits for the next batch: stats() gives ringEnters (the syscalls)
// beside requests. CPU work runs inline, as in the reactor.
import * as os from 'node:os';
import { PollEvents, Ring } from '../ring';
import { RingTcpServer, type RingConnection } from '../ring-net';
import { burnMicros, Route } from '../lab/protocol';
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
import { BACKLOG, nodeLoopTurn } from './reactor';
import { SignalPipe } from './signal-pipe';
import type { Arch, RunningServer, ServeOptions, ServerStats } from './types';

const E = os.constants.errno;
// ring-net's userData is (endpoint id << 3 | op) with ids from 1: id 0 is ours.
const UD_SIGNAL = 0;
const UD_GRACE = 1;
const UD_LINGER = 2;
const UD_CANCEL = 3;
/** After a closing response: how long to wait for the client's FIN before closing anyway. */
const LINGER_MS = 2000;
const LINGER_SWEEP_MS = 500;
const MAX_BATCH = 1024;

class Peer {
  readonly conn: RingConnection;
  inBuf: Buffer | null = null;
  inLen = 0;
  closing = false;
  lingerUntil = 0;
  constructor(conn: RingConnection) {
    this.conn = conn;
  }
}

class Proactor implements RunningServer {
  readonly host: string;
  readonly port: number;
  readonly ring: Ring;
  private readonly server: RingTcpServer;
  private readonly http: boolean;
  private readonly graceMs: number;
  private readonly peers = new Set<Peer>();
  private readonly lingering: Peer[] = [];
  private lingerArmed = false;
  private accepted = 0;
  private requests = 0;
  private stopping = false;
  private finished = false;
  private listenerClosed = false;
  private signals = 0;
  private sig: SignalPipe | null = null;
  private running: Promise<void> | null = null;
  private readonly req = new Int32Array(3);
  private readonly batch = new Int32Array(MAX_BATCH);

  constructor(o: ServeOptions) {
    this.http = o.protocol === 'http';
    this.graceMs = o.graceMs ?? 2000;
    this.host = o.host;
    // Many small buffers: the lab's messages are small and a buffer is held only
    // while its ondata runs, but with thousands of connections many chunks land
    // in one batch (each missing buffer is an ENOBUFS and a re-armed recv).
    this.ring = new Ring({ entries: 1024, bufferCount: 4096, bufferSize: 2048 });
    try {
      this.server = new RingTcpServer(this.ring, { host: o.host, port: o.port, backlog: BACKLOG });
    } catch (err) {
      this.ring.close();
      throw err;
    }
    this.port = this.server.address.port;
    this.server.onconnection = (c) => this.onConnection(c as RingConnection);
    this.server.onclose = () => {
      this.listenerClosed = true;
      this.maybeFinish();
    };
  }

  run(): Promise<void> {
    if (this.running === null) this.running = this.runRing();
    return this.running;
  }

  close(): Promise<void> {
    this.shutdown();
    return this.run();
  }

  stats(): ServerStats {
    const s = this.ring.closed ? this.lastRing : this.ring.stats;
    return {
      accepted: this.accepted,
      active: this.peers.size,
      requests: this.requests,
      ringEnters: s.enters,
      ringSubmitted: s.submitted,
      ringReaped: s.reaped,
      ringNoBuffers: s.noBuffers,
    };
  }

  private lastRing = { enters: 0, submitted: 0, reaped: 0, noBuffers: 0 };

  private async runRing(): Promise<void> {
    try {
      if (!this.finished) {
        // Opened here, not in start(): `iomux serve` sets its process.on()
        // handlers in between, and libuv would replace ours.
        this.sig = new SignalPipe(['SIGINT', 'SIGTERM']);
        this.ring.poll(this.sig.fd, PollEvents.IN, UD_SIGNAL);
        // A signal that came before the pipe existed went to Node's own pipe
        // only: a full turn of Node's loop lets serve's listener see it (and
        // call close()) before the thread blocks.
        await nodeLoopTurn();
        if (!this.finished) this.ring.run(this.onCompletions);
      }
    } finally {
      if (this.sig !== null) this.sig.close();
      this.sig = null;
      if (!this.ring.closed) this.lastRing = this.ring.stats;
      this.ring.close();
    }
    // One turn of Node's loop: its own signal listeners (serve's) run now.
    await nodeLoopTurn();
  }

  private readonly onCompletions = (n: number): void => {
    this.ring.oncompletions!(n); // ring-net's router: every connection and the listener
    const c = this.ring.completions;
    for (let i = 0; i < n; i++) {
      const ud = c[4 * i] >>> 0;
      if (ud < 8) this.own(ud, c[4 * i + 1]);
    }
  };

  private own(ud: number, res: number): void {
    if (ud === UD_SIGNAL) {
      const got = this.sig !== null ? this.sig.take().length : 0;
      if (!this.finished && this.sig !== null) this.ring.poll(this.sig.fd, PollEvents.IN, UD_SIGNAL);
      if (got === 0) return;
      const first = this.signals === 0;
      this.signals += got;
      if (first) this.shutdown();
      if (!first || got > 1) this.destroyAll();
    } else if (ud === UD_GRACE) {
      if (res === -E.ETIME) this.destroyAll();
    } else if (ud === UD_LINGER) {
      this.lingerArmed = false;
      if (res === -E.ETIME) this.sweepLinger();
    }
  }

  private onConnection(conn: RingConnection): void {
    if (this.stopping) {
      conn.destroy();
      return;
    }
    this.accepted++;
    const p = new Peer(conn);
    this.peers.add(p);
    if (this.http) {
      conn.ondata = (chunk) => this.onHttp(p, chunk);
    } else {
      conn.ondata = (chunk) => {
        if (p.closing) return;
        this.requests++;
        if (!conn.write(chunk)) conn.pause(); // write() copies a view of the Ring's buffers
      };
    }
    conn.ondrain = () => conn.resume();
    // The peer's FIN: send what is owed, then our FIN; ring-net closes once both are done.
    conn.onend = () => {
      p.closing = true;
      p.inLen = 0;
      conn.end();
    };
    conn.onerror = () => {}; // a reset is the client's business; onclose follows
    conn.onclose = () => {
      this.peers.delete(p);
      p.inBuf = null;
      this.maybeFinish();
    };
  }

  private onHttp(p: Peer, chunk: Uint8Array): void {
    if (p.closing) return;
    const end = gatherInput(p, chunk, chunk.length);
    const b: Uint8Array = p.inLen > 0 ? p.inBuf! : chunk;
    const req = this.req;
    const codes = this.batch;
    let count = 0;
    let bytes = 0;
    let off = 0;
    while (off < end) {
      const k = parseRequest(b, off, end, req);
      if (k === 0) break;
      let code: number;
      if (k < 0) {
        code = RESP_BAD_REQUEST;
        p.closing = true;
      } else {
        off += k;
        const close = req[REQ_CLOSE];
        if (req[REQ_ROUTE] === Route.Work) {
          burnMicros(req[REQ_WORK_US]);
          code = close ? RESP_HELLO_CLOSE : RESP_HELLO;
        } else {
          code = responseCode(req[REQ_ROUTE], close);
        }
        if (close) p.closing = true;
      }
      if (count === MAX_BATCH) {
        this.emit(p, count, bytes);
        count = bytes = 0;
      }
      codes[count++] = code;
      bytes += RESPONSE_BYTES[code].length;
      if (p.closing) break;
    }
    settleInput(p, b, off, end, p.closing);
    if (count > 0) this.emit(p, count, bytes);
    if (p.closing) this.closeAfterResponse(p);
  }

  /** Queues the responses batch[0, count) as one send (one constant buffer needs no copy). */
  private emit(p: Peer, count: number, bytes: number): void {
    this.requests += count;
    const conn = p.conn;
    if (conn.closed) return;
    let ok: boolean;
    if (count === 1) {
      ok = conn.write(RESPONSE_BYTES[this.batch[0]]);
    } else {
      const out = Buffer.allocUnsafe(bytes);
      let pos = 0;
      for (let i = 0; i < count; i++) {
        const r = RESPONSE_BYTES[this.batch[i]];
        r.copy(out, pos);
        pos += r.length;
      }
      ok = conn.write(out);
    }
    if (!ok) conn.pause();
  }

  /** After a closing response: our FIN once it is sent, then read (and drop) until the client's FIN, or LINGER_MS. */
  private closeAfterResponse(p: Peer): void {
    p.conn.end();
    p.conn.resume(); // the FIN must be seen even when reading was paused
    p.lingerUntil = performance.now() + LINGER_MS;
    this.lingering.push(p);
    if (!this.lingerArmed && !this.finished) {
      this.lingerArmed = true;
      this.ring.timeout(LINGER_SWEEP_MS, UD_LINGER);
    }
  }

  private sweepLinger(): void {
    const now = performance.now();
    let j = 0;
    for (const p of this.lingering) {
      if (p.conn.closed) continue;
      if (p.lingerUntil <= now) p.conn.destroy();
      else this.lingering[j++] = p;
    }
    this.lingering.length = j;
    if (j > 0 && !this.finished) {
      this.lingerArmed = true;
      this.ring.timeout(LINGER_SWEEP_MS, UD_LINGER);
    }
  }

  private shutdown(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.server.close();
    for (const p of this.peers) {
      if (p.closing) continue;
      p.closing = true;
      p.inLen = 0;
      p.conn.end(); // flush what is owed, then FIN; closed at the client's FIN
      p.conn.resume();
    }
    if (!this.maybeFinish()) this.ring.timeout(this.graceMs, UD_GRACE);
  }

  private destroyAll(): void {
    for (const p of this.peers) p.conn.destroy();
  }

  private maybeFinish(): boolean {
    if (this.finished) return true;
    if (!this.stopping || this.peers.size > 0 || !this.listenerClosed) return false;
    this.finished = true;
    if (!this.ring.closed) {
      this.ring.cancel(UD_GRACE, UD_CANCEL);
      this.ring.stop();
    }
    return true;
  }
}

export const proactorArch: Arch = {
  name: 'proactor',
  summary: 'io_uring completions (Ring + ring-net: multishot accept/recv, provided buffers), handlers in JS, one thread',
  options: [],
  availability: () => Ring.probe(),
  start: async (o: ServeOptions) => new Proactor(o),
};
