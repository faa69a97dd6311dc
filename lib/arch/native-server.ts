// The native lab servers (native/lab_*.cc) as archs: native threads do all the
// work; the JS thread only starts them and asks them to stop.
import * as os from 'node:os';
import { native } from '../native';
import { ErrnoError } from '../errors';
import { intArg } from '../validate';
import type { Arch, Availability, RunningServer, ServeOptionName, ServeOptions, ServerStats } from './types';

interface NativeHandle {
  readonly port: number;
  stats(): ServerStats;
  stop(): Promise<void>;
}

/** Availability of one native server as the addon reports it. */
export function nativeAvailability(name: string): Availability {
  const row = (native.labArchs() as Array<{ name: string; available: boolean; reason?: string }>).find((a) => a.name === name);
  if (!row) return { available: false, reason: `this build of the addon has no native '${name}' server` };
  return row.available ? { available: true } : { available: false, reason: row.reason };
}

/** Starts the native server `name`; throws ErrnoError when it cannot listen. */
export function startNative(name: string, o: ServeOptions): RunningServer {
  const config = {
    arch: name,
    protocol: o.protocol === 'http' ? 1 : 0,
    host: o.host,
    port: intArg(o.port, 'port', 0, 65535),
    threads: o.threads === undefined ? 0 : intArg(o.threads, 'threads', 1, 100_000),
    stackKb: o.stackKb === undefined ? 0 : intArg(o.stackKb, 'stackKb', 16, 1 << 20),
    graceMs: o.graceMs === undefined ? 2000 : intArg(o.graceMs, 'graceMs', 0, 3_600_000),
  };
  const h = native.labServe(config) as NativeHandle | { rc: number; syscall: string };
  if ('rc' in h) {
    const reason = nativeAvailability(name).reason;
    throw new ErrnoError(-h.rc, h.syscall, h.rc === -os.constants.errno.ENOSYS && reason ? reason : `${o.host}:${o.port}`);
  }
  let closing: Promise<void> | null = null;
  return {
    host: o.host,
    port: h.port,
    stats: () => h.stats(),
    close: () => (closing ??= h.stop()),
  };
}

/** An Arch backed by a native server. */
export function nativeArch(name: string, summary: string, options: readonly ServeOptionName[]): Arch {
  return {
    name,
    summary,
    options,
    availability: () => nativeAvailability(name),
    start: async (o) => startNative(name, o),
  };
}
