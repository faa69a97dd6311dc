// API fuzzer, run in a child process by test/fuzz-api.test.ts (a crash is a
// signal there). Calls every public function, constructor, method and getter
// of lib/poller.ts and lib/sys.ts with well-formed and malformed arguments and
// checks that each call returns, or throws a TypeError/RangeError naming an
// argument, or an ErrnoError with code/errno/syscall. Memory outside the
// buffers handed to a call is checked after every call (canaries).
//
//   node -r test/helpers/ts-register.cjs test/children/fuzz-api.ts CALLS SEED LOGFILE
//
// Prints one JSON line of statistics on success; exits 1 with the failing
// call on a contract violation. Before each call its description is appended
// to LOGFILE, so that after a crash or hang the parent can say which call it was.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import * as sys from '../../lib/sys';
import * as pollerModule from '../../lib/poller';
import { Poller, backends, defaultBackend, monotonicMs, UnsupportedModeError, BACKEND_NAMES } from '../../lib/poller';
import { ErrnoError } from '../../lib/errors';
import { native } from '../../lib/native';
import { newPoller } from '../helpers/backends';

const CALLS = Number(process.argv[2] ?? 20000);
const SEED = Number(process.argv[3] ?? 42);
const LOG = process.argv[4];
const logFd = LOG ? fs.openSync(LOG, 'w') : -1;

// Fuzzed fds live at BASE and above (below FD_SETSIZE, so select takes them):
// the kernel hands out the lowest free number, so Node's own fds and the fds
// the calls create stay below, and a call never closes an fd it does not own.
const BASE = 700;
const GUARD_FD = BASE + 90; // an always-readable eventfd that keeps wait() from blocking

class GetterError extends Error {}
const throwingOptions = new Proxy({}, {
  get() {
    throw new GetterError('a getter of the argument threw');
  },
});

// ---------------------------------------------------------------- buffers with canaries
const CANARY = 0xa5;
const arena = new ArrayBuffer(8192);
const arenaBytes = new Uint8Array(arena);
interface Window {
  start: number;
  end: number;
}
const windows: Window[] = [];
function arenaView<T>(make: (ab: ArrayBuffer, offset: number, len: number) => T, offset: number, len: number): T {
  windows.push({ start: offset, end: offset + len });
  return make(arena, offset, len);
}
const views = {
  u8: arenaView((ab, o, n) => new Uint8Array(ab, o, n), 64, 256),
  u8odd: arenaView((ab, o, n) => new Uint8Array(ab, o, n), 401, 33),
  u16: arenaView((ab, o, n) => new Uint16Array(ab, o, n / 2), 512, 128),
  f64: arenaView((ab, o, n) => new Float64Array(ab, o, n / 8), 704, 64),
  dv: arenaView((ab, o, n) => new DataView(ab, o, n), 833, 77),
  buf: arenaView((ab, o, n) => Buffer.from(ab, o, n), 1024, 1024),
  empty: arenaView((ab, o, n) => new Uint8Array(ab, o, n), 2112, 0),
};
function checkCanaries(what: string): void {
  let w = 0;
  const sorted = [...windows].sort((a, b) => a.start - b.start);
  for (let i = 0; i < arenaBytes.length; i++) {
    while (w < sorted.length && i >= sorted[w].end) w++;
    const inside = w < sorted.length && i >= sorted[w].start && i < sorted[w].end;
    if (!inside && arenaBytes[i] !== CANARY) fail(`${what}: byte ${i} of the arena, outside every buffer passed, was overwritten (${arenaBytes[i]})`);
  }
  arenaBytes.fill(CANARY);
}
arenaBytes.fill(CANARY);

function detachedBuffer(): ArrayBuffer {
  const ab = new ArrayBuffer(32);
  structuredClone(ab, { transfer: [ab] });
  return ab;
}
function viewOnDetached(): Uint8Array {
  const ab = new ArrayBuffer(32);
  const v = new Uint8Array(ab, 4, 16);
  structuredClone(ab, { transfer: [ab] });
  return v;
}
function shrunkResizable(): Uint8Array {
  const rab = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize(n: number): void })(64, { maxByteLength: 128 });
  const v = new Uint8Array(rab, 32, 16);
  rab.resize(8); // the view is now out of bounds
  return v;
}
function lengthTracking(): Uint8Array {
  const rab = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(48, { maxByteLength: 4096 });
  return new Uint8Array(rab);
}
const big = Buffer.alloc(4 << 20);
const bufferPool: Array<() => unknown> = [
  () => views.u8, () => views.u8odd, () => views.u16, () => views.f64, () => views.dv, () => views.buf, () => views.empty,
  () => Buffer.alloc(0), () => new ArrayBuffer(0), () => new ArrayBuffer(24), () => new BigInt64Array(3),
  () => detachedBuffer(), () => viewOnDetached(), () => shrunkResizable(), () => lengthTracking(),
  () => new Uint8Array(new SharedArrayBuffer(64)), () => new DataView(new SharedArrayBuffer(16), 4), () => new SharedArrayBuffer(8),
  () => big, () => big.subarray(1, 3),
];

// ---------------------------------------------------------------- junk values
const junk: Array<() => unknown> = [
  () => undefined, () => null, () => true, () => false, () => '', () => 'x', () => '7', () => '127.0.0.1',
  () => ({}), () => [], () => [1, 2], () => Symbol('s'), () => 10n, () => () => 3, () => NaN, () => Infinity,
  () => -Infinity, () => -1, () => 0.5, () => 1.5, () => -2.5, () => 2 ** 31, () => 2 ** 31 - 1, () => -(2 ** 31), () => 2 ** 32,
  () => 2 ** 53, () => -(2 ** 53), () => Number.MAX_VALUE, () => Number.MIN_VALUE, () => 1e6, () => new Date(0),
  () => /re/, () => ({ valueOf: () => BASE }), () => ({ toString: () => 'stream' }), () => throwingOptions,
  () => Object.create(null), () => new Number(BASE), () => new String('ipv4'), () => detachedBuffer(), () => 'a'.repeat(5000),
];

// ---------------------------------------------------------------- the fd pool (rebuilt for every run)
interface Pool {
  fds: number[]; // owned and foreign fds, all >= BASE
  closed: number[]; // numbers known to be closed
  listenerPort: number;
  pollers: Poller[];
  cleanup: number[]; // every fd to close at the end of the run
}
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iomux-fuzz-'));
process.chdir(tmp); // a relative Unix socket path lands here
const file = path.join(tmp, 'file');
fs.writeFileSync(file, 'some content for read()');

let nextHigh = BASE;
function high(fd: number): number {
  const n = native.sys.fcntl(fd, sys.constants.F_DUPFD_CLOEXEC, nextHigh);
  if (n < 0) throw new Error(`F_DUPFD_CLOEXEC failed: ${n}`);
  native.sys.close(fd);
  nextHigh = n + 1;
  return n;
}

function buildPool(): Pool {
  nextHigh = BASE;
  fs.writeFileSync(file, 'some content for read()');
  const fds: number[] = [];
  const add = (fd: number) => fds.push(high(fd));
  const [pr, pw] = sys.pipe();
  sys.write(pw, Buffer.from('pipe data'));
  add(pr);
  add(pw);
  const [sa, sb] = sys.socketpair();
  sys.write(sa, Buffer.from('to b'));
  sys.write(sb, Buffer.from('to a'));
  add(sa);
  add(sb);
  const [da, db] = sys.socketpair('dgram');
  sys.write(da, Buffer.from('datagram'));
  add(da);
  add(db);
  const listener = sys.listenTcp('127.0.0.1', 0);
  const listenerPort = sys.getsockname(listener).port!;
  const client = sys.socket('ipv4');
  sys.connect(client, '127.0.0.1', listenerPort);
  const server = sys.accept(listener);
  if (server >= 0) {
    sys.write(server, Buffer.from('tcp data'));
    add(server);
  }
  add(client);
  add(listener);
  add(sys.socket('ipv4'));
  add(sys.socket('ipv6'));
  add(sys.socket('unix'));
  add(sys.eventfd(3));
  add(fs.openSync('/dev/null', 'r+')); // foreign fds: not made by iomux
  add(fs.openSync(file, 'r+'));
  add(fs.openSync(tmp, 'r'));
  // Numbers known to be closed: opened high, then closed.
  const closed: number[] = [];
  for (let i = 0; i < 3; i++) {
    const n = high(sys.eventfd());
    closed.push(n);
  }
  for (const n of closed) sys.close(n);
  // Pollers: one of each available backend with the guard registered, one closed.
  const efd = sys.eventfd(1);
  const guard = native.sys.fcntl(efd, sys.constants.F_DUPFD_CLOEXEC, GUARD_FD);
  native.sys.close(efd);
  const pollers: Poller[] = [];
  for (const b of backends()) {
    if (!b.available) continue;
    const p = newPoller(b.name);
    p.add(guard, 1);
    pollers.push(p);
  }
  const closedPoller = new Poller('poll');
  closedPoller.close();
  pollers.push(closedPoller);
  return { fds, closed, listenerPort, pollers, cleanup: [...fds, guard] };
}

function destroyPool(pool: Pool): void {
  for (const p of pool.pollers) p.close();
  for (const fd of pool.cleanup) native.sys.close(fd);
}

// ---------------------------------------------------------------- argument kinds
// A small seeded generator (mulberry32): each call's arguments come from its own seed.
class Rng {
  constructor(private s: number) {}
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  nextInt(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  nextBoolean(): boolean {
    return this.next() < 0.5;
  }
}
type Gen = (pool: Pool, r: Rng) => unknown;
const pick = <T>(r: Rng, xs: T[]): T => xs[r.nextInt(0, xs.length - 1)];
const K: Record<string, Gen> = {
  fd: (p, r) => {
    const roll = r.nextInt(0, 9);
    if (roll < 7) return pick(r, p.fds);
    if (roll < 8) return pick(r, p.closed);
    return pick(r, [-1, 1023, 1024, 19999, 20000, 65535, 1e6, 2 ** 31 - 1, 2 ** 31, 1.5, NaN, Infinity]);
  },
  buf: (_p, r) => pick(r, bufferPool)(),
  bufs: (p, r) => {
    const roll = r.nextInt(0, 7);
    if (roll === 0) return [];
    if (roll === 1) return new Array(sys.constants.IOV_MAX + 1).fill(views.u8);
    if (roll === 2) return [views.u8, , views.buf]; // a hole
    if (roll === 3) return [views.u8, pick(r, junk)()];
    const n = r.nextInt(1, 4);
    return Array.from({ length: n }, () => K.buf(p, r));
  },
  off: (_p, r) => pick(r, [undefined, 0, 1, 3, 16, 100, 255, 256, 4096, 2 ** 31]),
  fdopts: (_p, r) => pick(r, [undefined, {}, { nonblocking: true }, { nonblocking: false }, { nonblocking: 'yes' }, null, 7]),
  socktype: (_p, r) => pick(r, ['stream', 'dgram', 'seqpacket', 'STREAM', undefined]),
  domain: (_p, r) => pick(r, ['ipv4', 'ipv6', 'unix', 'inet', undefined]),
  addr: (_p, r) => pick(r, ['127.0.0.1', '::1', 'sock-a', 'sock-b', '\0iomux-fuzz', '', 'x'.repeat(120), '256.0.0.1', '127.0.0.1\0junk']),
  port: (p, r) => pick(r, [undefined, 0, p.listenerPort, 65535, 65536, -1, 1.5]),
  backlog: (_p, r) => pick(r, [undefined, 0, 1, 511, 2 ** 31 - 1]),
  how: (_p, r) => pick(r, ['read', 'write', 'both', 'rw', undefined]),
  optname: (_p, r) => pick(r, ['SO_REUSEADDR', 'SO_REUSEPORT', 'SO_KEEPALIVE', 'TCP_NODELAY', 'SO_LINGER', 'SO_RCVBUF', 'SO_SNDBUF', 'SO_ERROR', 'SO_TYPE', 'SO_NOPE', 'constructor', '__proto__']),
  optval: (_p, r) => pick(r, [true, false, 0, 1, 4096, 2 ** 31 - 1, -1]),
  cmd: (_p, r) => pick(r, ['F_GETFD', 'F_SETFD', 'F_GETFL', 'F_SETFL', 'F_DUPFD', 'F_DUPFD_CLOEXEC', 'F_NOPE', 'FD_CLOEXEC', 'F_', 'O_NONBLOCK']),
  fcntlarg: (_p, r) => pick(r, [undefined, 0, 1, 2048, 600, 2 ** 31 - 1]),
  initval: (_p, r) => pick(r, [undefined, 0, 1, 2 ** 31 - 1]),
  bool: (_p, r) => pick(r, [undefined, true, false]),
  host: (_p, r) => pick(r, [undefined, '127.0.0.1', '::1', 'localhost', '']),
  listenopts: (_p, r) => pick(r, [undefined, {}, { backlog: 1 }, { reuseAddr: false }, { reusePort: true }, { backlog: -1 }, { backlog: 'x' }, null]),
  ms: (_p, r) => pick(r, [0, 1, 5]),
  signo: () => 28, // SIGWINCH: ignored by default, so a valid call is harmless
  count: (_p, r) => pick(r, [1, 2]),
  backend: (_p, r) => pick(r, [...BACKEND_NAMES, 'EPOLL', 'iouring', '', undefined]),
  polleropts: (_p, r) => pick(r, [undefined, {}, { capacity: 1 }, { capacity: 1 << 20 }, { capacity: 0 }, { capacity: 1.5 }, { capacity: 2 ** 21 }, null]),
  interest: (_p, r) => pick(r, [undefined, 0, 1, 2, 3, 4, 8, 15, 16, -1]),
  mode: (_p, r) => pick(r, [undefined, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
  timeout: (_p, r) => pick(r, [undefined, 0, 0.1, 1, -1, Infinity, -Infinity, 2 ** 31, 1e12, NaN, -2]),
  any: (_p, r) => pick(r, junk)(),
};

// ---------------------------------------------------------------- the public surface
interface Spec {
  name: string;
  params: string[]; // argument names (as the error messages spell them)
  kinds: string[];
  call: (pool: Pool, args: unknown[], r: Rng) => unknown;
  /** Return false to skip a call whose valid form would be harmful here. */
  guard?: (args: unknown[]) => boolean;
}
const anyFn = (f: unknown) => f as (...a: unknown[]) => unknown;
const sysSpecs: Spec[] = [
  ['pipe', ['options'], ['fdopts']],
  ['socketpair', ['type', 'options'], ['socktype', 'fdopts']],
  ['socket', ['domain', 'type'], ['domain', 'socktype']],
  ['bind', ['fd', 'address', 'port'], ['fd', 'addr', 'port']],
  ['connect', ['fd', 'address', 'port'], ['fd', 'addr', 'port']],
  ['listen', ['fd', 'backlog'], ['fd', 'backlog']],
  ['accept', ['fd'], ['fd']],
  ['read', ['fd', 'buffer', 'offset', 'length'], ['fd', 'buf', 'off', 'off']],
  ['write', ['fd', 'buffer', 'offset', 'length'], ['fd', 'buf', 'off', 'off']],
  ['readv', ['fd', 'buffers'], ['fd', 'bufs']],
  ['writev', ['fd', 'buffers'], ['fd', 'bufs']],
  ['shutdown', ['fd', 'how'], ['fd', 'how']],
  ['close', ['fd'], ['fd']],
  ['setsockopt', ['fd', 'option', 'value'], ['fd', 'optname', 'optval']],
  ['getsockopt', ['fd', 'option'], ['fd', 'optname']],
  ['getsockname', ['fd'], ['fd']],
  ['getpeername', ['fd'], ['fd']],
  ['dup', ['fd'], ['fd']],
  ['fcntl', ['fd', 'cmd', 'arg'], ['fd', 'cmd', 'fcntlarg']],
  ['setNonBlocking', ['fd', 'on'], ['fd', 'bool']],
  ['eventfd', ['initval'], ['initval']],
  ['listenTcp', ['host', 'port', 'options'], ['host', 'port', 'listenopts']],
  ['signalSelfAfter', ['ms', 'signo', 'count'], ['ms', 'signo', 'count']],
].map(([name, params, kinds]) => ({
  name: `sys.${name as string}`,
  params: params as string[],
  kinds: kinds as string[],
  call: (_pool: Pool, args: unknown[]) => anyFn((sys as Record<string, unknown>)[name as string])(...args),
  // A valid signal number other than SIGWINCH would end this process: that is the helper's job.
  guard: name === 'signalSelfAfter' ? (args: unknown[]) => args[1] === 28 || typeof args[1] !== 'number' || !Number.isInteger(args[1]) || (args[1] as number) < 1 || (args[1] as number) > 64 : undefined,
}));

const livePoller = (pool: Pool, r: Rng) => pick(r, pool.pollers);
const pollerSpecs: Spec[] = [
  { name: 'backends', params: [], kinds: [], call: (_p, a) => anyFn(backends)(...a) },
  { name: 'defaultBackend', params: [], kinds: [], call: (_p, a) => anyFn(defaultBackend)(...a) },
  { name: 'monotonicMs', params: [], kinds: [], call: (_p, a) => anyFn(monotonicMs)(...a) },
  { name: 'new UnsupportedModeError', params: ['message'], kinds: ['any'], call: (_p, a) => new (UnsupportedModeError as unknown as new (...x: unknown[]) => unknown)(...a) },
  {
    name: 'new Poller', params: ['backend', 'options', 'options.capacity'], kinds: ['backend', 'polleropts'],
    call: (_p, a) => {
      const p = new (Poller as unknown as new (...x: unknown[]) => Poller)(...a);
      p.close();
      return p;
    },
  },
  { name: 'Poller#add', params: ['fd', 'interest', 'mode'], kinds: ['fd', 'interest', 'mode'], call: (p, a, r) => anyFn(Poller.prototype.add).apply(livePoller(p, r), a) },
  { name: 'Poller#modify', params: ['fd', 'interest', 'mode'], kinds: ['fd', 'interest', 'mode'], call: (p, a, r) => anyFn(Poller.prototype.modify).apply(livePoller(p, r), a) },
  { name: 'Poller#remove', params: ['fd'], kinds: ['fd'], call: (p, a, r) => anyFn(Poller.prototype.remove).apply(livePoller(p, r), a) },
  { name: 'Poller#wait', params: ['timeout'], kinds: ['timeout'], call: (p, a, r) => anyFn(Poller.prototype.wait).apply(livePoller(p, r), a) },
  { name: 'Poller#close', params: [], kinds: [], call: (p, a, r) => anyFn(Poller.prototype.close).apply(livePoller(p, r), a) },
  { name: 'Poller#fd', params: [], kinds: [], call: (p, _a, r) => livePoller(p, r).fd },
  { name: 'Poller#closed', params: [], kinds: [], call: (p, _a, r) => livePoller(p, r).closed },
  { name: 'Poller#interrupted', params: [], kinds: [], call: (p, _a, r) => livePoller(p, r).interrupted },
  {
    // Methods and getters called on something that is not a Poller.
    name: 'Poller#method on a foreign this', params: [], kinds: ['any', 'any'],
    call: (_p, a, r) => {
      const key = pick(r, ['add', 'modify', 'remove', 'wait', 'close', 'fd', 'closed', 'interrupted']);
      const desc = Object.getOwnPropertyDescriptor(Poller.prototype, key)!;
      const self = pick(r, [undefined, null, {}, { handle: null }, { handle: {} }, Object.create(Poller.prototype)]);
      return desc.get ? desc.get.call(self) : anyFn(desc.value).apply(self, a);
    },
  },
];
const specs = [...sysSpecs, ...pollerSpecs];

// Every exported function of the two modules is in the table.
const covered = new Set(specs.map((s) => s.name));
for (const [mod, prefix] of [[sys, 'sys.'], [pollerModule, '']] as const) {
  for (const [k, v] of Object.entries(mod)) {
    if (typeof v !== 'function') continue;
    const name = /^[A-Z]/.test(k) ? `new ${k}` : `${prefix}${k}`;
    if (!covered.has(name)) fail(`the fuzzer does not cover ${name}: add it to the table`);
  }
}

// ---------------------------------------------------------------- running calls
const stats = {
  calls: 0,
  runs: 0,
  ok: 0,
  typeError: 0,
  rangeError: 0,
  errno: {} as Record<string, number>,
  getterError: 0,
  skipped: 0,
  perFunction: {} as Record<string, number>,
};

function fail(message: string): never {
  process.stderr.write(`FUZZ FAILURE: ${message}\n`);
  process.exit(1);
}

function describeValue(v: unknown): string {
  if (typeof v === 'symbol' || typeof v === 'bigint' || typeof v === 'function') return String(v);
  if (v === throwingOptions) return '<object with a throwing getter>';
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${v.byteLength}${v.byteOffset ? ` @${v.byteOffset}` : ''})`;
  if (v instanceof ArrayBuffer) return `ArrayBuffer(${v.byteLength}${v.byteLength === 0 ? '' : ''})`;
  if (Array.isArray(v)) return v.length > 8 ? `[${v.length} items]` : `[${v.map(describeValue).join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

function restoreNonBlocking(pool: Pool): void {
  for (const fd of pool.fds) {
    const fl = native.sys.fcntl(fd, sys.constants.F_GETFL, 0);
    if (fl >= 0 && !(fl & sys.constants.O_NONBLOCK)) native.sys.fcntl(fd, sys.constants.F_SETFL, fl | sys.constants.O_NONBLOCK);
  }
}

/** The open fds (without the one used to list them, closed by then). */
function openFds(): Set<number> {
  return new Set(fs.readdirSync('/proc/self/fd').map(Number).filter((fd) => safeReadlink(`/proc/self/fd/${fd}`) !== '?'));
}

function runOne(pool: Pool, spec: Spec, args: unknown[], r: Rng, before: Set<number>): void {
  const text = `${spec.name}(${args.map(describeValue).join(', ')})`;
  if (spec.guard && !spec.guard(args)) {
    stats.skipped++;
    return;
  }
  if (logFd >= 0) fs.writeSync(logFd, text + '\n');
  stats.calls++;
  stats.perFunction[spec.name] = (stats.perFunction[spec.name] ?? 0) + 1;
  let result: unknown;
  try {
    result = spec.call(pool, args, r);
    stats.ok++;
  } catch (err) {
    if (err instanceof GetterError) {
      stats.getterError++;
    } else if (err instanceof ErrnoError) {
      if (typeof err.code !== 'string' || !/^E[A-Z0-9]+$/.test(err.code)) fail(`${text}: ErrnoError with code ${err.code}`);
      if (!Number.isInteger(err.errno) || err.errno <= 0) fail(`${text}: ErrnoError with errno ${err.errno}`);
      if (typeof err.syscall !== 'string' || err.syscall.length === 0) fail(`${text}: ErrnoError without a syscall`);
      stats.errno[err.code] = (stats.errno[err.code] ?? 0) + 1;
    } else if (err instanceof TypeError || err instanceof RangeError) {
      if (err instanceof TypeError) stats.typeError++;
      else stats.rangeError++;
      // Misused `this`, and an error class given a message that is no string (as Error itself does).
      const foreignThis = spec.name === 'Poller#method on a foreign this' || spec.name === 'new UnsupportedModeError';
      const names = [...spec.params, 'this'];
      const named = names.some((n) => err.message.includes(n)) || err instanceof UnsupportedModeError;
      if (!foreignThis && !named) fail(`${text}: ${err.name} does not name an argument: ${err.message}`);
    } else {
      fail(`${text}: threw ${err instanceof Error ? `${err.constructor.name}: ${err.message}` : String(err)}`);
    }
  }
  checkCanaries(text);
  // Close what the call created (fd numbers, listening sockets, accepted fds).
  if (typeof result === 'number' && result >= 0 && !before.has(result) && !pool.cleanup.includes(result) && !pool.pollers.some((p) => p.fd === result) && /socket|dup|accept|eventfd|listenTcp|fcntl/.test(spec.name)) {
    native.sys.close(result); // a new fd (or, for fcntl, a flags value that names no open fd: EBADF)
  }
  if (Array.isArray(result) && /pipe|socketpair/.test(spec.name)) for (const fd of result) native.sys.close(fd);
  if (/fcntl|setNonBlocking/.test(spec.name)) restoreNonBlocking(pool);
}

const callArb = fc.record({
  spec: fc.nat({ max: specs.length - 1 }),
  seed: fc.integer(),
  shape: fc.constantFrom('exact', 'exact', 'exact', 'junk', 'missing', 'extra'),
});

const started = Date.now();
const perRun = 25;
fc.assert(
  fc.property(fc.array(callArb, { minLength: perRun, maxLength: perRun }), (calls) => {
    stats.runs++;
    const before = openFds();
    const pool = buildPool();
    try {
      for (const c of calls) {
        const spec = specs[c.spec];
        const r = new Rng(c.seed);
        let args = spec.kinds.map((k) => K[k](pool, r));
        if (c.shape === 'junk' || r.nextInt(0, 9) === 0) args = args.map((a) => (r.nextInt(0, 2) === 0 ? pick(r, junk)() : a));
        if (c.shape === 'missing' && args.length > 0) args = args.slice(0, r.nextInt(0, args.length - 1));
        if (c.shape === 'extra') args = [...args, ...Array.from({ length: r.nextInt(1, 3) }, () => pick(r, junk)())];
        while (args.length > 0 && args[args.length - 1] === undefined && r.nextBoolean()) args.pop();
        runOne(pool, spec, args, r, before);
      }
    } finally {
      destroyPool(pool);
    }
    // Nothing a run created outlives it.
    const after = openFds();
    const leaked = [...after].filter((fd) => !before.has(fd));
    if (leaked.length > 0) {
      const links = leaked.map((fd) => `${fd} -> ${safeReadlink(`/proc/self/fd/${fd}`)}`);
      fail(`fds left open by the calls of run ${stats.runs}: ${links.join(', ')}`);
    }
  }),
  { numRuns: Math.max(1, Math.ceil(CALLS / perRun)), seed: SEED },
);

function safeReadlink(p: string): string {
  try {
    return fs.readlinkSync(p);
  } catch {
    return '?';
  }
}

fs.rmSync(tmp, { recursive: true, force: true });
process.stdout.write(JSON.stringify({ ...stats, seed: SEED, ms: Date.now() - started }) + '\n');
