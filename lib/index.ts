// iomux: the OS I/O multiplexers from Node.js.
import * as sys from './sys';

export { sys };
export { Poller, Interest, Mode, backends, defaultBackend, UnsupportedModeError, BACKEND_NAMES } from './poller';
export type { BackendName, BackendStatus, ModeSupport, Support, PollerOptions } from './poller';
export { ErrnoError, errnoName } from './errors';
export { Ring, CompletionFlags, PollEvents } from './ring';
export type { RingOptions, RingStats, RingProbe } from './ring';
export { RingTcpServer, RingConnection, ringConnect } from './ring-net';
export type { RingServerOptions, RingConnectionOptions } from './ring-net';
export { EventLoop, Watcher, Timer, Immediate, LoopStats } from './loop';
export type { EventLoopOptions, RunOptions, LoopHooks, LoopStatsSnapshot, WatchCallback } from './loop';
export { monotonicMs } from './poller';
export { TcpServer, TcpConnection, listenTcp, connectTcp } from './net';
export type { TcpServerOptions, ConnectionOptions, Connection, Server, ServerOptions } from './net';
