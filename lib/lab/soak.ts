// Soak with faults: one `iomux serve` process under N echo connections of the
// native load generator for a bounded time, while a fraction of the clients
// misbehave (reset, half-close, slow reader, vanish; native/loadgen.cc). The
// verdict: every byte of every healthy connection came back intact, every
// half-close and slow reader got all its bytes back, the server never exited,
// and its fd count went back to the baseline it had before the first
// connection. scripts/soak.js is the command line; test/soak.test.ts runs it
// at CI size.
import * as fs from 'node:fs';
import { FAULT_KINDS, runLoad, type FaultKind, type LoadOptions, type LoadResult } from './load';
import { spawnServe } from './serve-process';

export type SoakArch = 'reactor' | 'proactor';

/** The server each soak arch runs: the arch and its options for `iomux serve`. */
export const SOAK_SERVERS: Record<SoakArch, string[]> = {
  reactor: ['--arch', 'reactor', '--backend', 'epoll'],
  proactor: ['--arch', 'proactor'],
};

/** The fault options are the load generator's (lib/lab/load.ts), with their defaults, except the ratio. */
export interface SoakOptions
  extends Pick<LoadOptions, 'faults' | 'faultDelayMs' | 'faultStallMs' | 'faultFloodBytes' | 'faultDeepFloodBytes'> {
  arch: SoakArch;
  /** Connections (slots) of the load generator. Default 200. */
  conns?: number;
  /** Seconds of load. Default 5. */
  duration?: number;
  /** Fraction of the slots that misbehave. Default 0.05 (the load generator's own default is 0). */
  faultRatio?: number;
  /** Seeds the fault delays (the load generator's faultSeed). */
  seed?: number;
  /** Echo message size. Default 64. */
  size?: number;
  /** How long the server's fd count may take to come back to its baseline after the load. Default 30 s. */
  settleMs?: number;
  /** Progress lines (the load generator's, and the soak's own). */
  log?: (line: string) => void;
}

export interface SoakReport {
  arch: SoakArch;
  server: string;
  conns: number;
  durationS: number;
  faultRatio: number;
  faults: FaultKind[];
  load: LoadResult;
  serverPid: number;
  /** The server exited before it was told to (it must never). */
  serverExitedEarly: boolean;
  /** How it ended when stopped with SIGTERM after the run. */
  serverExit: { code: number | null; signal: string | null };
  fds: { baseline: number; peak: number; after: number; settleMs: number };
  rssKb: { baseline: number; peak: number; after: number };
  /** The server's last words on stderr (its stats line). */
  serverStderr: string;
  /** Empty when the soak passed; else what went wrong. */
  problems: string[];
  wallMs: number;
}

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

function rssKb(pid: number): number {
  const m = /\nVmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'));
  return m ? Number(m[1]) : 0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runSoak(o: SoakOptions): Promise<SoakReport> {
  const serverArgs = SOAK_SERVERS[o.arch];
  if (!serverArgs) throw new RangeError(`arch must be one of ${Object.keys(SOAK_SERVERS).join(', ')}, got '${String(o.arch)}'`);
  const conns = o.conns ?? 200;
  const duration = o.duration ?? 5;
  const faultRatio = o.faultRatio ?? 0.05;
  const faults = o.faults ?? [...FAULT_KINDS];
  const settleMs = o.settleMs ?? 30_000;
  const log = o.log ?? (() => {});
  const t0 = Date.now();
  const problems: string[] = [];

  const server = await spawnServe(['serve', '--port', '0', '--protocol', 'echo', ...serverArgs]);
  let exitedEarly = false;
  let stopping = false;
  void server.exited.then(() => {
    if (!stopping) exitedEarly = true;
  });
  try {
    // The baseline: the server as it is before any connection (listening socket, loop, signal pipe).
    await sleep(300);
    const fdBase = fdCount(server.pid);
    const rssBase = rssKb(server.pid);
    let fdPeak = fdBase;
    let rssPeak = rssBase;
    const sample = () => {
      if (exitedEarly) return;
      try {
        fdPeak = Math.max(fdPeak, fdCount(server.pid));
        rssPeak = Math.max(rssPeak, rssKb(server.pid));
      } catch {
        // gone: the exit handler records it
      }
    };
    const sampler = setInterval(sample, 500);
    log(`soak ${o.arch}: server pid ${server.pid} (iomux serve ${serverArgs.join(' ')}) on port ${server.port}: ${fdBase} fds, RSS ${rssBase} kB`);
    let load: LoadResult;
    try {
      load = await runLoad({
        port: server.port,
        conns,
        duration,
        size: o.size ?? 64,
        drain: 15,
        connectTimeout: 60,
        faultRatio,
        faults,
        faultDelayMs: o.faultDelayMs,
        faultStallMs: o.faultStallMs,
        faultFloodBytes: o.faultFloodBytes,
        faultDeepFloodBytes: o.faultDeepFloodBytes,
        faultSeed: o.seed,
        progressInterval: 5000,
        onProgress: (p) => {
          sample();
          log(`soak ${o.arch}: [${p.elapsedS.toFixed(1)} s] ${p.phase}: ${p.connected} connected, ${p.requests} requests, ${p.errors} errors`);
        },
      });
    } finally {
      clearInterval(sampler);
    }
    sample();

    // Every client socket is closed now: the server's fds must come back to the baseline.
    const settleStart = Date.now();
    let fdAfter = exitedEarly ? -1 : fdCount(server.pid);
    while (!exitedEarly && fdAfter !== fdBase && Date.now() - settleStart < settleMs) {
      await sleep(100);
      fdAfter = fdCount(server.pid);
    }
    const settled = Date.now() - settleStart;
    const rssAfter = exitedEarly ? 0 : rssKb(server.pid);

    const F = load.faults;
    const check = (bad: boolean, what: string) => {
      if (bad) problems.push(what);
    };
    check(exitedEarly, 'the server exited during the run');
    check(fdAfter !== fdBase, `server fds ${fdBase} before, ${fdAfter} ${settleMs} ms after the run`);
    check(load.verifyErrors > 0, `${load.verifyErrors} verification errors: ${load.firstError}`);
    check(load.healthyBytesLost > 0, `${load.healthyBytesLost} bytes lost on healthy connections`);
    check(load.healthyFailed > 0, `${load.healthyFailed} healthy connections failed: ${load.firstError}`);
    check(load.healthyConns !== conns - Math.floor(conns * faultRatio), `${load.healthyConns} healthy connections, expected ${conns - Math.floor(conns * faultRatio)}`);
    check(load.resets > 0, `${load.resets} unexpected resets: ${load.firstError}`);
    check(load.serverCloses > 0, `${load.serverCloses} connections closed by the server unasked: ${load.firstError}`);
    check(load.connectErrors > 0 || F.reconnectErrors > 0, `${load.connectErrors} connect errors, ${F.reconnectErrors} reconnect errors: ${load.firstConnectError}`);
    check(F.incomplete > 0, `${F.incomplete} half-closes or slow readers did not get every byte back: ${load.firstError}`);
    check(load.healthyBytesVerified === 0, 'no healthy byte verified');
    const injected: Record<FaultKind, number> = { reset: F.reset, 'half-close': F.halfClose, 'slow-read': F.slowRead, vanish: F.vanish };
    if (faultRatio > 0) for (const f of faults) check(injected[f] === 0, `no ${f} fault injected`);

    stopping = true;
    const { code, signal } = await server.stop(20_000);
    const exit = { code, signal };
    check(!exitedEarly && (exit.code !== 0 || exit.signal !== null), `the server did not stop cleanly on SIGTERM: ${exit.code ?? exit.signal}`);
    const report: SoakReport = {
      arch: o.arch,
      server: `iomux serve ${serverArgs.join(' ')}`,
      conns,
      durationS: duration,
      faultRatio,
      faults,
      load,
      serverPid: server.pid,
      serverExitedEarly: exitedEarly,
      serverExit: exit,
      fds: { baseline: fdBase, peak: fdPeak, after: fdAfter, settleMs: settled },
      rssKb: { baseline: rssBase, peak: rssPeak, after: rssAfter },
      serverStderr: server.stderr().trim().split('\n').slice(-3).join('\n'),
      problems,
      wallMs: Date.now() - t0,
    };
    return report;
  } finally {
    stopping = true;
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  }
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');

/** A human summary of one soak. */
export function formatSoak(r: SoakReport): string {
  const L = r.load;
  const F = L.faults;
  const faultsTotal = F.reset + F.halfClose + F.slowRead + F.vanish;
  return [
    `soak ${r.arch} (${r.server}): ${int(r.conns)} connections, ${r.durationS} s, ${r.faultRatio * 100}% faulty slots (${r.faults.join(', ')}): ${r.problems.length === 0 ? 'PASS' : 'FAIL'}`,
    `  requests   ${int(L.requests)} answered (${int(L.rps)} req/s), p99 ${L.latencyUs.p99.toFixed(0)} µs, max ${L.latencyUs.max.toFixed(0)} µs`,
    `  bytes      ${int(L.bytesSent)} sent, ${int(L.bytesVerified)} verified (healthy ${int(L.healthyBytesVerified)}, faulty ${int(F.bytesVerified)}), ${int(L.verifyErrors)} corrupt, ${int(L.healthyBytesLost)} lost on healthy connections`,
    `  healthy    ${int(L.healthyConns)} connections for the whole run, ${int(L.healthyFailed)} failed`,
    `  faults     ${int(faultsTotal)} injected: ${int(F.reset)} resets, ${int(F.halfClose)} half-closes, ${int(F.slowRead)} slow readers (${int(F.slowBlocked)} with their flood held back), ${int(F.vanish)} vanished; ${int(F.completed)} half-closes/slow readers got every byte back, ${int(F.incomplete)} did not; ${int(F.reconnects)} replacement connections, ${int(F.reconnectErrors)} failed`,
    `  server     pid ${r.serverPid}: fds ${r.fds.baseline} before, ${r.fds.peak} at peak, ${r.fds.after} after (back in ${r.fds.settleMs} ms); RSS ${int(r.rssKb.baseline)} -> ${int(r.rssKb.peak)} -> ${int(r.rssKb.after)} kB; ${r.serverExitedEarly ? 'EXITED during the run' : 'never exited'}; SIGTERM -> exit ${r.serverExit.code ?? r.serverExit.signal}`,
    `  server says: ${r.serverStderr}`,
    ...r.problems.map((p) => `  PROBLEM: ${p}`),
    `  wall time ${(r.wallMs / 1000).toFixed(1)} s`,
  ].join('\n');
}
