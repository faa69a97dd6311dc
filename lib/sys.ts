// fd primitives. Hot-path calls (read, write, readv, writev, accept, connect)
// return a negative errno for expected conditions, to be compared with the
// constants exported here (sys.EAGAIN === -11 on Linux); misuse throws an
// ErrnoError. Every fd made here is close-on-exec and, unless asked
// otherwise, non-blocking.
import * as net from 'node:net';
import * as os from 'node:os';
import { native } from './native';
import { ErrnoError, check } from './errors';
import { bytesArg, fdArg, intArg, typeOf } from './validate';

const E = os.constants.errno;
/** Negative errno values, as returned by the hot-path calls. */
export const EAGAIN = -E.EAGAIN;
export const EINTR = -E.EINTR;
export const ECONNRESET = -E.ECONNRESET;
export const EPIPE = -E.EPIPE;
export const EINPROGRESS = -E.EINPROGRESS;
export const ECONNREFUSED = -E.ECONNREFUSED;
export const ECONNABORTED = -E.ECONNABORTED;
export const ETIMEDOUT = -E.ETIMEDOUT;
export const EMFILE = -E.EMFILE;
export const ENFILE = -E.ENFILE;
export const ENOBUFS = -E.ENOBUFS;
export const ENOMEM = -E.ENOMEM;
export const EADDRNOTAVAIL = -E.EADDRNOTAVAIL;

const IO_EXPECTED = new Set([EAGAIN, EINTR, ECONNRESET, EPIPE, ETIMEDOUT]);
const ACCEPT_EXPECTED = new Set([EAGAIN, EINTR, ECONNABORTED, EMFILE, ENFILE, ENOBUFS, ENOMEM]);
const CONNECT_EXPECTED = new Set([EINPROGRESS, EAGAIN, EINTR, ECONNREFUSED, ETIMEDOUT, EADDRNOTAVAIL]);

/** Native constants: AF_*, SOCK_*, SO_*, F_*, SHUT_*, FD_SETSIZE … */
export const constants: Readonly<Record<string, number>> = Object.freeze({ ...native.sys.constants, FD_SETSIZE: native.FD_SETSIZE });
const C = constants;

function hot(rc: number, expected: Set<number>, syscall: string): number {
  if (rc < 0 && !expected.has(rc)) throw new ErrnoError(-rc, syscall);
  return rc;
}

function pair(rc: number | number[], syscall: string): [number, number] {
  if (typeof rc === 'number') throw new ErrnoError(-rc, syscall);
  return [rc[0], rc[1]];
}

/** table[key] for a string key the table itself has (not 'constructor', '__proto__' …). */
function own<T>(table: Record<string, T>, key: unknown): T | undefined {
  return typeof key === 'string' && Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
}

function boolArg(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${typeOf(value)}`);
  return value;
}

export interface FdOptions {
  /** O_NONBLOCK (default true). */
  nonblocking?: boolean;
}

function nonblockingOpt(options: FdOptions | undefined): boolean {
  if (options === undefined) return true;
  if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${typeOf(options)}`);
  return options.nonblocking === undefined ? true : boolArg(options.nonblocking, 'options.nonblocking');
}

/** A pipe: [readFd, writeFd]. */
export function pipe(options?: FdOptions): [number, number] {
  return pair(native.sys.pipe(nonblockingOpt(options)), 'pipe');
}

/** A connected pair of Unix sockets: [a, b]. */
export function socketpair(type: 'stream' | 'dgram' = 'stream', options?: FdOptions): [number, number] {
  return pair(native.sys.socketpair(sockType(type), nonblockingOpt(options)), 'socketpair');
}

export type Domain = 'ipv4' | 'ipv6' | 'unix';

/** A new socket (non-blocking, close-on-exec). */
export function socket(domain: Domain = 'ipv4', type: 'stream' | 'dgram' = 'stream'): number {
  const af = own({ ipv4: C.AF_INET, ipv6: C.AF_INET6, unix: C.AF_UNIX }, domain);
  if (af === undefined) throw new TypeError(`domain must be 'ipv4', 'ipv6' or 'unix', got ${typeOf(domain)}`);
  return check(native.sys.socket(af, sockType(type)), 'socket');
}

function sockType(type: unknown): number {
  if (type === 'stream') return C.SOCK_STREAM;
  if (type === 'dgram') return C.SOCK_DGRAM;
  throw new TypeError(`type must be 'stream' or 'dgram', got ${typeOf(type)}`);
}

/** (address, port) for IPv4/IPv6, (path) for a Unix socket. */
function addrArgs(address: unknown, port: unknown): [number, string, number] {
  if (typeof address !== 'string') throw new TypeError(`address must be a string, got ${typeOf(address)}`);
  const family = net.isIP(address);
  if (family !== 0) {
    return [family, address, intArg(port, 'port', 0, 65535)];
  }
  if (port !== undefined) throw new TypeError(`address must be an IPv4 or IPv6 literal when a port is given, got '${address}'`);
  if (address.length === 0) throw new RangeError('address (a Unix socket path) must not be empty');
  if (Buffer.byteLength(address) >= 108) throw new RangeError(`address (a Unix socket path) must be shorter than 108 bytes`);
  return [0, address, 0];
}

export function bind(fd: number, address: string, port?: number): void {
  fdArg(fd);
  const [family, host, p] = addrArgs(address, port);
  check(native.sys.bind(fd, family, host, p), 'bind');
}

/** Non-blocking connect: 0, or EINPROGRESS / ECONNREFUSED / … (negative); wait for writable, then getsockopt(fd, 'SO_ERROR'). */
export function connect(fd: number, address: string, port?: number): number {
  fdArg(fd);
  const [family, host, p] = addrArgs(address, port);
  return hot(native.sys.connect(fd, family, host, p), CONNECT_EXPECTED, 'connect');
}

export function listen(fd: number, backlog = 511): void {
  fdArg(fd);
  intArg(backlog, 'backlog', 0, 0x7fffffff);
  check(native.sys.listen(fd, backlog), 'listen');
}

/** A new non-blocking, close-on-exec connection fd, or EAGAIN / EMFILE / ECONNABORTED … (negative). */
export function accept(fd: number): number {
  fdArg(fd);
  return hot(native.sys.accept(fd), ACCEPT_EXPECTED, 'accept');
}

function range(buf: Uint8Array, offset: unknown, length: unknown): [number, number] {
  const off = offset === undefined ? 0 : intArg(offset, 'offset', 0, buf.byteLength);
  const len = length === undefined ? buf.byteLength - off : intArg(length, 'length', 0, buf.byteLength - off);
  return [off, len];
}

/** Bytes read (0 at end of file), or EAGAIN / EINTR / ECONNRESET … (negative). */
export function read(fd: number, buffer: ArrayBufferView | ArrayBuffer, offset?: number, length?: number): number {
  fdArg(fd);
  const buf = bytesArg(buffer, 'buffer');
  const [off, len] = range(buf, offset, length);
  return hot(native.sys.read(fd, buf, off, len), IO_EXPECTED, 'read');
}

/** Bytes written, or EAGAIN / EPIPE / ECONNRESET … (negative). */
export function write(fd: number, buffer: ArrayBufferView | ArrayBuffer, offset?: number, length?: number): number {
  fdArg(fd);
  const buf = bytesArg(buffer, 'buffer');
  const [off, len] = range(buf, offset, length);
  return hot(native.sys.write(fd, buf, off, len), IO_EXPECTED, 'write');
}

function views(buffers: unknown): Uint8Array[] {
  if (!Array.isArray(buffers)) throw new TypeError(`buffers must be an array of Buffers or TypedArrays, got ${typeOf(buffers)}`);
  if (buffers.length > C.IOV_MAX) throw new RangeError(`buffers must hold at most IOV_MAX (${C.IOV_MAX}) entries, got ${buffers.length}`);
  return buffers.map((b, i) => bytesArg(b, `buffers[${i}]`));
}

export function readv(fd: number, buffers: Array<ArrayBufferView | ArrayBuffer>): number {
  fdArg(fd);
  return hot(native.sys.readv(fd, views(buffers)), IO_EXPECTED, 'readv');
}

export function writev(fd: number, buffers: Array<ArrayBufferView | ArrayBuffer>): number {
  fdArg(fd);
  return hot(native.sys.writev(fd, views(buffers)), IO_EXPECTED, 'writev');
}

export function shutdown(fd: number, how: 'read' | 'write' | 'both' = 'write'): void {
  fdArg(fd);
  const h = own({ read: C.SHUT_RD, write: C.SHUT_WR, both: C.SHUT_RDWR }, how);
  if (h === undefined) throw new TypeError(`how must be 'read', 'write' or 'both', got ${typeOf(how)}`);
  check(native.sys.shutdown(fd, h), 'shutdown');
}

export function close(fd: number): void {
  fdArg(fd);
  check(native.sys.close(fd), 'close');
}

export type SocketOption =
  | 'SO_REUSEADDR'
  | 'SO_REUSEPORT'
  | 'SO_KEEPALIVE'
  | 'TCP_NODELAY'
  | 'SO_LINGER'
  | 'SO_RCVBUF'
  | 'SO_SNDBUF'
  | 'SO_ERROR'
  | 'SO_TYPE';
const OPTIONS: Record<string, [string, string, 'bool' | 'int' | 'linger' | 'readonly']> = {
  SO_REUSEADDR: ['SOL_SOCKET', 'SO_REUSEADDR', 'bool'],
  SO_REUSEPORT: ['SOL_SOCKET', 'SO_REUSEPORT', 'bool'],
  SO_KEEPALIVE: ['SOL_SOCKET', 'SO_KEEPALIVE', 'bool'],
  TCP_NODELAY: ['IPPROTO_TCP', 'TCP_NODELAY', 'bool'],
  SO_LINGER: ['SOL_SOCKET', 'SO_LINGER', 'linger'],
  SO_RCVBUF: ['SOL_SOCKET', 'SO_RCVBUF', 'int'],
  SO_SNDBUF: ['SOL_SOCKET', 'SO_SNDBUF', 'int'],
  SO_ERROR: ['SOL_SOCKET', 'SO_ERROR', 'readonly'],
  SO_TYPE: ['SOL_SOCKET', 'SO_TYPE', 'readonly'],
};

function option(name: unknown): [number, number, string] {
  const o = own(OPTIONS, name);
  if (!o) throw new TypeError(`option must be one of ${Object.keys(OPTIONS).join(', ')}, got ${typeOf(name)}`);
  if (C[o[1]] === undefined) throw new ErrnoError(E.ENOPROTOOPT, 'setsockopt', `${o[1]} does not exist on this platform`);
  return [C[o[0]], C[o[1]], o[2]];
}

/**
 * Sets a socket option. Booleans for the on/off options; bytes for the
 * buffer sizes; SO_LINGER takes seconds (0 = reset on close) or false (off).
 */
export function setsockopt(fd: number, name: SocketOption, value: boolean | number): void {
  fdArg(fd);
  const [level, opt, kind] = option(name);
  let v: number;
  if (kind === 'readonly') throw new TypeError(`option ${name} can only be read`);
  if (kind === 'bool') v = boolArg(value, 'value') ? 1 : 0;
  else if (kind === 'linger') v = value === false ? -1 : intArg(value, 'value', 0, 0x7fffffff);
  else v = intArg(value, 'value', 0, 0x7fffffff);
  check(native.sys.setsockopt(fd, level, opt, v), 'setsockopt');
}

/** The option's value: a number (booleans as 0/1, SO_LINGER as seconds or -1 when off). */
export function getsockopt(fd: number, name: SocketOption): number {
  fdArg(fd);
  const [level, opt] = option(name);
  return check(native.sys.getsockopt(fd, level, opt), 'getsockopt');
}

export interface SocketAddress {
  family: 'IPv4' | 'IPv6' | 'unix' | 'unknown';
  address?: string;
  port?: number;
  path?: string;
}

export function getsockname(fd: number): SocketAddress {
  fdArg(fd);
  const r = native.sys.getsockname(fd);
  if (typeof r === 'number') throw new ErrnoError(-r, 'getsockname');
  return r;
}

export function getpeername(fd: number): SocketAddress {
  fdArg(fd);
  const r = native.sys.getpeername(fd);
  if (typeof r === 'number') throw new ErrnoError(-r, 'getpeername');
  return r;
}

/** A duplicate (close-on-exec) of fd, at the lowest free number. */
export function dup(fd: number): number {
  fdArg(fd);
  return check(native.sys.dup(fd), 'dup');
}

export type FcntlCommand = 'F_DUPFD' | 'F_DUPFD_CLOEXEC' | 'F_GETFD' | 'F_SETFD' | 'F_GETFL' | 'F_SETFL';

/** fcntl for the integer commands; F_DUPFD(fd, min) duplicates at a number >= min. */
export function fcntl(fd: number, cmd: FcntlCommand, arg = 0): number {
  fdArg(fd);
  const c = typeof cmd === 'string' && cmd.startsWith('F_') ? own(C, cmd) : undefined;
  if (c === undefined) throw new TypeError(`cmd must be one of F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_SETFL, got ${typeOf(cmd)}`);
  intArg(arg, 'arg', 0, 0x7fffffff);
  return check(native.sys.fcntl(fd, c, arg), 'fcntl');
}

export function setNonBlocking(fd: number, on = true): void {
  const fl = fcntl(fd, 'F_GETFL');
  fcntl(fd, 'F_SETFL', on ? fl | C.O_NONBLOCK : fl & ~C.O_NONBLOCK);
}

/** An eventfd (Linux): non-blocking, close-on-exec. */
export function eventfd(initval = 0): number {
  if (typeof native.sys.eventfd !== 'function') throw new ErrnoError(E.ENOSYS, 'eventfd', 'eventfd exists only on Linux');
  intArg(initval, 'initval', 0, 0x7fffffff);
  return check(native.sys.eventfd(initval), 'eventfd');
}

export interface ListenOptions {
  backlog?: number;
  reuseAddr?: boolean;
  reusePort?: boolean;
}

/** socket + SO_REUSEADDR + bind + listen on host:port (127.0.0.1, port 0 = any). Returns the fd. */
export function listenTcp(host = '127.0.0.1', port = 0, options: ListenOptions = {}): number {
  if (typeof host !== 'string') throw new TypeError(`host must be a string, got ${typeOf(host)}`);
  const family = net.isIP(host);
  if (family === 0) throw new TypeError(`host must be an IPv4 or IPv6 literal, got '${host}'`);
  intArg(port, 'port', 0, 65535);
  if (options === null || typeof options !== 'object') throw new TypeError(`options must be an object, got ${typeOf(options)}`);
  const backlog = options.backlog === undefined ? 511 : intArg(options.backlog, 'options.backlog', 0, 0x7fffffff);
  const reuseAddr = options.reuseAddr === undefined ? true : boolArg(options.reuseAddr, 'options.reuseAddr');
  const reusePort = options.reusePort === undefined ? false : boolArg(options.reusePort, 'options.reusePort');
  const fd = socket(family === 6 ? 'ipv6' : 'ipv4');
  try {
    setsockopt(fd, 'SO_REUSEADDR', reuseAddr);
    if (reusePort) setsockopt(fd, 'SO_REUSEPORT', true);
    bind(fd, host, port);
    listen(fd, backlog);
  } catch (err) {
    native.sys.close(fd);
    throw err;
  }
  return fd;
}

/** Test helper: sends signal `signo` to the calling thread `count` times, every `ms`, from another thread. */
export function signalSelfAfter(ms: number, signo: number, count = 1): void {
  intArg(ms, 'ms', 0, 3_600_000);
  intArg(signo, 'signo', 1, 64);
  intArg(count, 'count', 1, 1_000_000);
  native.sys.signalSelfAfter(ms, signo, count);
}
