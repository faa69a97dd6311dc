// The small connection API shared by the readiness transport (lib/net.ts,
// TcpServer on an EventLoop) and the completion transport (lib/ring-net.ts,
// on a Ring). Servers in the lab are written once against these interfaces.
import type { ErrnoError } from './errors';

export interface Connection {
  readonly fd: number;
  /** Bytes accepted by write() and not yet taken by the kernel. */
  readonly writableLength: number;
  readonly closed: boolean;
  /** Incoming bytes. The chunk may be reused once the callback returns: copy what you keep. */
  ondata: ((chunk: Uint8Array) => void) | null;
  /** The peer half-closed (FIN). Writing is still allowed until end(). */
  onend: (() => void) | null;
  /** The write queue emptied after write() had returned false. */
  ondrain: (() => void) | null;
  /** A connection-level error (ECONNRESET, EPIPE, ...); onclose follows. */
  onerror: ((err: ErrnoError) => void) | null;
  /** The fd is closed; called exactly once. */
  onclose: ((hadError: boolean) => void) | null;
  /** Queues bytes; returns false when the queue is above the high-water mark (wait for ondrain). */
  write(data: Uint8Array | string): boolean;
  /** Flushes the queue, then shuts down the write side (half-close). */
  end(data?: Uint8Array | string): void;
  /** Closes now and drops anything queued. */
  destroy(): void;
}

export interface ServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  backlog?: number;
  reusePort?: boolean;
}

/** C: the connection type a transport hands out (its Connection plus extras). */
export interface Server<C extends Connection = Connection> {
  readonly address: { address: string; port: number };
  /** Open connections accepted by this server. */
  readonly connections: number;
  onconnection: ((conn: C) => void) | null;
  /** Accept-level errors (EMFILE, ...); the server keeps running. */
  onerror: ((err: ErrnoError) => void) | null;
  /** Stops accepting; open connections stay open. */
  close(): void;
}
