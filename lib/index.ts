// iomux: the OS I/O multiplexers from Node.js.
import * as sys from './sys';

export { sys };
export { Poller, Interest, Mode, backends, defaultBackend, UnsupportedModeError, BACKEND_NAMES } from './poller';
export type { BackendName, BackendStatus, ModeSupport, Support, PollerOptions } from './poller';
export { ErrnoError, InvalidStateError, errnoName } from './errors';
export { Ring, CompletionFlags, PollEvents } from './ring';
export type { RingOptions, RingStats, RingProbe } from './ring';
export { RingTcpServer, RingConnection, ringConnect } from './ring-net';
export type { RingServerOptions, RingConnectionOptions } from './ring-net';
export { EventLoop, Watcher, Timer, Immediate, LoopStats } from './loop';
export type { EventLoopOptions, RunOptions, LoopHooks, LoopStatsSnapshot, WatchCallback } from './loop';
export { monotonicMs } from './poller';
export { TcpServer, TcpConnection, listenTcp, connectTcp } from './net';
export type { TcpServerOptions, ConnectionOptions, Connection, Server, ServerOptions } from './net';
export { runLoad, validateLoadOptions, raiseFileLimit } from './lab/load';
export type { LoadOptions, LoadResult, LoadProgress, LatencySummary, LabProtocol } from './lab/load';
export { ProcessSampler, readProcess, deriveMetrics } from './lab/metrics';
export type { ProcSnapshot, SamplerReport, DerivedMetrics } from './lab/metrics';
export { ARCHS, findArch } from './arch';
export type { Arch, RunningServer, ServeOptions } from './arch';
export { HttpSession, parseHttpRequest, serveConnection, burnMicros, RESPONSES, HELLO_BODY } from './lab/protocol';
