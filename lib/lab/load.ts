// The typed surface of the native load generator (native/loadgen.cc):
// validates every option, runs the load in native threads and resolves with
// the verified result. `iomux load` is a thin CLI over runLoad().
import * as net from 'node:net';
import * as os from 'node:os';
import { native } from '../native';
import { ErrnoError } from '../errors';
import { intArg, typeOf } from '../validate';

export type LabProtocol = 'echo' | 'http';

export interface LoadOptions {
  /** Server address, an IPv4 or IPv6 literal. Default 127.0.0.1. */
  host?: string;
  port: number;
  /** Connections, opened before the measured run starts. Default 10. */
  conns?: number;
  /** echo: bytes per request (message). Default 64. Ignored for http. */
  size?: number;
  /** Requests in flight per connection (pipelining). Default 1. */
  depth?: number;
  /** Seconds of measured run. Default 5. */
  duration?: number;
  /** Seconds of traffic on the same connections before the measured run
   * (answers verified, not measured: not in requests, rps or latency). Default 0. */
  warmup?: number;
  /** Ends the warm-up early when aborted (e.g. once the server has accepted
   * every connection); `warmup` is then the longest it may last. */
  endWarmup?: AbortSignal;
  /** Open loop: total requests per second on a fixed schedule; latency is
   * measured from each request's intended send time. 0 (default) = closed loop. */
  rate?: number;
  /** http: the CPU-work request asks for this many microseconds. */
  workUs?: number;
  /** http: the fraction of requests that are /work?us=workUs (0..1). */
  workRatio?: number;
  /** The fraction of connections that send requests, (0..1]; the others are
   * opened and held idle for the whole run (e.g. 0.01: 1% active). The active
   * ones, ceil(ratio * conns) and at least one, are spread evenly. Default 1. */
  activeRatio?: number;
  protocol?: LabProtocol;
  /** Load-generator threads, each with its own epoll set. Default: 1 on <= 2 cores, else cores / 2 (max 8). */
  threads?: number;
  /** Source addresses 127.0.0.1 .. 127.0.0.N the connections are spread over
   * (loopback targets only). Default ceil(conns / 4000). */
  sources?: number;
  /** Seconds to wait for every connection before the run starts anyway. Default 10. */
  connectTimeout?: number;
  /** Seconds to wait for answers still in flight after the run. Default 2. */
  drain?: number;
  /** Called about every progressInterval ms from the JS thread. */
  onProgress?: (p: LoadProgress) => void;
  /** Default 1000. */
  progressInterval?: number;
  /** Aborting ends the run early; the result so far is still returned (cancelled: true). */
  signal?: AbortSignal;
  /**
   * Fault injection (echo, closed loop): this fraction of the connection
   * slots (0..1, evenly spread) misbehave; each connection in such a slot
   * runs normally for 0..faultDelayMs, then commits one of `faults` (taken in
   * turn), and a new connection takes the slot. Default 0: none.
   */
  faultRatio?: number;
  /** The faults to inject. Default: all four. */
  faults?: FaultKind[];
  /** A fault comes 0 .. this many ms after its connection starts. Default 1000. */
  faultDelayMs?: number;
  /** slow-read: how long the client does not read. Default 500. */
  faultStallMs?: number;
  /** slow-read: bytes the client sends while it does not read. Default 128 KiB. */
  faultFloodBytes?: number;
  /**
   * The first slow reader of each load thread, then every 32nd, sends this many instead: more than the server's own
   * socket buffers take, so that the server must stop reading it. Default 8 MiB.
   */
  faultDeepFloodBytes?: number;
  /** Seeds the fault delays. Default 1. */
  faultSeed?: number;
}

/**
 * reset: SO_LINGER 0 then close() (the server sees a RST); half-close:
 * shutdown(SHUT_WR) after one more message, then every byte must come back
 * before the server's FIN; slow-read: stops reading for faultStallMs while it
 * sends faultFloodBytes, then reads everything back; vanish: sends one more
 * message and closes without reading the reply.
 */
export type FaultKind = 'reset' | 'half-close' | 'slow-read' | 'vanish';
export const FAULT_KINDS: readonly FaultKind[] = ['reset', 'half-close', 'slow-read', 'vanish'];

export interface FaultResult {
  /** Faults injected, by kind. */
  reset: number;
  halfClose: number;
  slowRead: number;
  vanish: number;
  /** Replacement connections of the faulty slots that connected, and those that could not. */
  reconnects: number;
  reconnectErrors: number;
  /** Half-closes and slow readers that got every byte back; those that did not (data lost: must be 0). */
  completed: number;
  incomplete: number;
  /** Bytes verified on the faulty slots' connections. */
  bytesVerified: number;
  /** Slow readers with part of their flood still unsent when they started reading again: the server had stopped reading them (backpressure) or was behind. */
  slowBlocked: number;
}

export interface LoadProgress {
  elapsedS: number;
  phase: 'connect' | 'warmup' | 'run' | 'drain' | 'stop';
  connected: number;
  requests: number;
  errors: number;
  /** Requests per second since the previous report. */
  rps: number;
}

export interface LatencySummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export interface LoadResult {
  protocol: LabProtocol;
  host: string;
  port: number;
  conns: number;
  size: number;
  depth: number;
  rate: number;
  workUs: number;
  workRatio: number;
  threads: number;
  sources: number;
  /** Time until every connection was connected (or failed). */
  connectMs: number;
  /** The measured run (shorter when cancelled). */
  durationS: number;
  /** Every request answered and verified, including those answered while draining. */
  requests: number;
  requestsInWindow: number;
  /** requestsInWindow / durationS. */
  rps: number;
  connected: number;
  connectErrors: number;
  resets: number;
  /** Connections the server closed (end of file). */
  serverCloses: number;
  verifyErrors: number;
  /** Requests issued that never got an answer (server stalled, connection lost, drain timeout). */
  unanswered: number;
  /** Connections that sent requests and never got a single answer (e.g. queued in a thread pool). */
  idleConns: number;
  workRequests: number;
  warmupS: number;
  /** Requests answered (and verified) during the warm-up. */
  warmupRequests: number;
  /** Connections that send requests (all of them unless activeRatio < 1). */
  activeConns: number;
  activeRatio: number;
  bytesSent: number;
  bytesReceived: number;
  bytesVerified: number;
  cancelled: boolean;
  firstError: string | null;
  firstConnectError: string | null;
  /** Microseconds. */
  latencyUs: LatencySummary;
  /** Connections of the healthy (non-faulty) slots: one each for the whole run. */
  healthyConns: number;
  /** Healthy connections that ended before the run did (reset, closed by the server, verification error). */
  healthyFailed: number;
  healthyBytesVerified: number;
  /** Bytes sent on healthy connections that never came back. */
  healthyBytesLost: number;
  faults: FaultResult;
}

function numberOpt(v: unknown, name: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number') throw new TypeError(`${name} must be a number, got ${typeOf(v)}`);
  if (Number.isNaN(v) || v < min || v > max) throw new RangeError(`${name} must be in [${min}, ${max}], got ${v}`);
  return v;
}

function intOpt(v: unknown, name: string, min: number, max: number, dflt: number): number {
  return v === undefined ? dflt : intArg(v, name, min, max);
}

export function defaultLoadThreads(): number {
  const cores = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
  return cores <= 2 ? 1 : Math.min(8, Math.floor(cores / 2));
}

/** Lifts the soft open-file limit to the hard one; returns the limit now in force. */
export function raiseFileLimit(): number {
  const rc = native.raiseNofileLimit();
  if (rc < 0) throw new ErrnoError(-rc, 'setrlimit');
  return rc;
}

interface Validated {
  host: string;
  port: number;
  conns: number;
  size: number;
  depth: number;
  durationS: number;
  warmupS: number;
  rate: number;
  workUs: number;
  workRatio: number;
  activeRatio: number;
  protocol: LabProtocol;
  threads: number;
  sources: number;
  connectTimeoutS: number;
  drainS: number;
  progressMs: number;
  faultRatio: number;
  faultKinds: number;
  faultDelayMs: number;
  faultStallMs: number;
  faultFloodBytes: number;
  faultDeepFloodBytes: number;
  faultSeed: number;
}

export function validateLoadOptions(o: LoadOptions): Validated {
  if (o === null || typeof o !== 'object') throw new TypeError(`options must be an object, got ${typeOf(o)}`);
  const host = o.host ?? '127.0.0.1';
  if (typeof host !== 'string') throw new TypeError(`host must be a string, got ${typeOf(host)}`);
  if (net.isIP(host) === 0) throw new RangeError(`host must be an IPv4 or IPv6 literal, got '${host}'`);
  if (o.port === undefined) throw new TypeError('port is required');
  const port = intArg(o.port, 'port', 1, 65535);
  const protocol = o.protocol ?? 'echo';
  if (protocol !== 'echo' && protocol !== 'http') throw new RangeError(`protocol must be 'echo' or 'http', got '${String(protocol)}'`);
  const conns = intOpt(o.conns, 'conns', 1, 1_000_000, 10);
  const size = intOpt(o.size, 'size', 1, 1 << 20, 64);
  const depth = intOpt(o.depth, 'depth', 1, 4096, 1);
  const durationS = numberOpt(o.duration, 'duration', 0.01, 86_400, 5);
  const warmupS = numberOpt(o.warmup, 'warmup', 0, 86_400, 0);
  const rate = numberOpt(o.rate, 'rate', 0, 1e8, 0);
  const workUs = intOpt(o.workUs, 'workUs', 0, 10_000_000, 0);
  const workRatio = numberOpt(o.workRatio, 'workRatio', 0, 1, 0);
  if (protocol !== 'http' && (workRatio > 0 || workUs > 0)) throw new RangeError('workUs and workRatio need protocol http');
  if (workRatio > 0 && workUs === 0) throw new RangeError('workRatio > 0 needs workUs > 0');
  const activeRatio = numberOpt(o.activeRatio, 'activeRatio', 0, 1, 1);
  if (activeRatio === 0) throw new RangeError('activeRatio must be in (0, 1], got 0');
  const threads = Math.min(intOpt(o.threads, 'threads', 1, 256, defaultLoadThreads()), conns);
  const loopback = net.isIPv4(host) && host.startsWith('127.');
  const sources = intOpt(o.sources, 'sources', 1, 254, loopback ? Math.min(254, Math.ceil(conns / 4000)) : 1);
  if (sources > 1 && !loopback) throw new RangeError('sources > 1 needs a 127.x.x.x host (the sources are 127.0.0.1 .. 127.0.0.N)');
  const connectTimeoutS = numberOpt(o.connectTimeout, 'connectTimeout', 0, 600, 10);
  const drainS = numberOpt(o.drain, 'drain', 0, 600, 2);
  const progressMs = intOpt(o.progressInterval, 'progressInterval', 10, 3_600_000, 1000);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new TypeError(`onProgress must be a function, got ${typeOf(o.onProgress)}`);
  const faultRatio = numberOpt(o.faultRatio, 'faultRatio', 0, 1, 0);
  let faultKinds = 0;
  const faults = o.faults ?? FAULT_KINDS;
  if (!Array.isArray(faults)) throw new TypeError(`faults must be an array, got ${typeOf(faults)}`);
  for (const f of faults) {
    const k = FAULT_KINDS.indexOf(f as FaultKind);
    if (k < 0) throw new RangeError(`faults: unknown fault '${String(f)}' (one of: ${FAULT_KINDS.join(', ')})`);
    faultKinds |= 1 << k;
  }
  if (faultRatio > 0) {
    if (faultKinds === 0) throw new RangeError('faults must name at least one fault when faultRatio > 0');
    if (protocol !== 'echo') throw new RangeError('faultRatio > 0 needs protocol echo');
    if (rate > 0) throw new RangeError('faultRatio > 0 needs the closed loop (rate 0)');
  }
  const faultDelayMs = intOpt(o.faultDelayMs, 'faultDelayMs', 0, 3_600_000, 1000);
  const faultStallMs = intOpt(o.faultStallMs, 'faultStallMs', 0, 3_600_000, 500);
  const faultFloodBytes = intOpt(o.faultFloodBytes, 'faultFloodBytes', 0, 1 << 30, 128 * 1024);
  const faultDeepFloodBytes = intOpt(o.faultDeepFloodBytes, 'faultDeepFloodBytes', 0, 1 << 30, 8 * 1024 * 1024);
  const faultSeed = intOpt(o.faultSeed, 'faultSeed', 0, 0xffffffff, 1);
  return {
    host, port, conns, size, depth, durationS, warmupS, rate, workUs, workRatio, activeRatio, protocol, threads, sources, connectTimeoutS, drainS, progressMs,
    faultRatio, faultKinds, faultDelayMs, faultStallMs, faultFloodBytes, faultDeepFloodBytes, faultSeed,
  };
}

/**
 * Runs the native load generator against host:port and resolves with the
 * verified result. Rejects only when the run cannot start (bad options,
 * too few file descriptors); server misbehaviour is reported in the result
 * (connectErrors, resets, verifyErrors, firstError).
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const v = validateLoadOptions(options);
  const limit = raiseFileLimit();
  if (v.conns + 64 > limit) {
    throw new RangeError(`conns ${v.conns} needs more file descriptors than the limit allows (${limit}); raise it with ulimit -n`);
  }
  const signal = options.signal;
  if (signal?.aborted) throw signal.reason ?? new Error('aborted');
  const endWarmup = options.endWarmup;
  if (endWarmup !== undefined && !(endWarmup instanceof AbortSignal)) throw new TypeError(`endWarmup must be an AbortSignal, got ${typeOf(endWarmup)}`);
  const onProgress = options.onProgress;
  const handle = native.loadRun(
    { ...v, protocol: v.protocol === 'http' ? 1 : 0 },
    onProgress ? (p: LoadProgress) => onProgress(p) : undefined,
  );
  const abort = () => handle.cancel();
  signal?.addEventListener('abort', abort, { once: true });
  const warmedUp = () => handle.endWarmup();
  if (endWarmup?.aborted) warmedUp();
  else endWarmup?.addEventListener('abort', warmedUp, { once: true });
  try {
    const r = await handle.done;
    if (typeof r.rc === 'number') throw new ErrnoError(-r.rc, r.syscall);
    return {
      protocol: v.protocol,
      host: v.host,
      port: v.port,
      conns: v.conns,
      size: v.protocol === 'echo' ? v.size : 0,
      depth: v.depth,
      rate: v.rate,
      workUs: v.workUs,
      workRatio: v.workRatio,
      activeRatio: v.activeRatio,
      warmupS: v.warmupS,
      threads: v.threads,
      sources: v.sources,
      ...r,
    } as LoadResult;
  } finally {
    signal?.removeEventListener('abort', abort);
    endWarmup?.removeEventListener('abort', warmedUp);
  }
}
