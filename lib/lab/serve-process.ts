// `iomux serve` as a child process: spawned (pinned to a core, or under a
// lower fd limit, when asked), its listening line read, stopped with a
// signal. Every wait is bounded: a server that never listens, never stops or
// crashes is reported, never waited for. Used by the benchmarks, the soak and
// the tests.
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

/** bin/iomux.js of this package. */
export const BIN = path.join(__dirname, '..', '..', 'bin', 'iomux.js');

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServerProcess {
  pid: number;
  port: number;
  child: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<ExitStatus>;
  /** Set once it has exited. */
  exit: ExitStatus | null;
  /** The last few KiB of its stderr. */
  stderr(): string;
  /** Sends `signal` (SIGTERM), then SIGKILL after killAfterMs; resolves with how it ended (bounded). */
  stop(killAfterMs?: number, signal?: NodeJS.Signals): Promise<ExitStatus & { killed: boolean }>;
}

export interface SpawnServeOptions {
  /** Pin the server to this CPU (taskset). */
  cpu?: number | null;
  /** Run it with RLIMIT_NOFILE soft = hard = nofile (serve itself only lifts soft to hard). */
  nofile?: number;
  /** How long to wait for the listening line. Default 30 s. */
  timeoutMs?: number;
}

/** `iomux serve` did not come up: code 'ERR_IOMUX_SERVER_START', and the end of its stderr. */
export class ServerStartError extends Error {
  readonly code = 'ERR_IOMUX_SERVER_START';
  constructor(message: string, readonly stderr: string) {
    super(message);
    this.name = 'ServerStartError';
  }
}

const LISTENING = /^listening (\S+):(\d+) pid=(\d+)\s*$/;

export function tail(s: string, n = 2000): string {
  return s.length > n ? '…' + s.slice(s.length - n) : s;
}

export function describeExit(s: ExitStatus): string {
  if (s.signal) return `killed by ${s.signal}`;
  if (s.code === null) return 'could not be run';
  return `exit code ${s.code}`;
}

/**
 * Runs `iomux ARGS` (ARGS starting with 'serve') and resolves once its first
 * line, `listening HOST:PORT pid=PID`, has come; rejects with a
 * ServerStartError (the server killed) when another line comes first, when it
 * exits, or after timeoutMs.
 */
export function spawnServe(args: string[], o: SpawnServeOptions = {}): Promise<ServerProcess> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  let argv = [process.execPath, BIN, ...args];
  if (o.nofile !== undefined) argv = ['/bin/sh', '-c', 'ulimit -n "$0" && exec "$@"', String(o.nofile), ...argv];
  if (o.cpu !== undefined && o.cpu !== null) argv = ['taskset', '-c', String(o.cpu), ...argv];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (err = tail(err + d, 8000)));
  let exit: ExitStatus | null = null;
  const exited = new Promise<ExitStatus>((resolve) => {
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
    child.on('error', (e) => {
      err += `\n${e.message}`;
      exit = { code: null, signal: null };
      resolve(exit);
    });
  });
  const stop = async (killAfterMs = 8000, signal: NodeJS.Signals = 'SIGTERM'): Promise<ExitStatus & { killed: boolean }> => {
    if (exit) return { ...exit, killed: false };
    child.kill(signal);
    let killed = false;
    const t = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, killAfterMs);
    let giveUp: NodeJS.Timeout | undefined;
    const status = await Promise.race([exited, new Promise<ExitStatus>((r) => (giveUp = setTimeout(() => r({ code: null, signal: null }), killAfterMs + 5000)))]);
    clearTimeout(t);
    clearTimeout(giveUp);
    return { ...status, killed };
  };
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!exit) child.kill('SIGKILL');
      reject(new ServerStartError(`iomux ${args.join(' ')}: ${why}`, tail(err.trim(), 1000)));
    };
    const timer = setTimeout(() => fail(`no listening line within ${timeoutMs / 1000} s`), timeoutMs);
    void exited.then((s) => fail(`exited before listening (${describeExit(s)})${err.trim() ? ': ' + tail(err.trim(), 400) : ''}`));
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      if (settled) return;
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      const m = LISTENING.exec(out.slice(0, nl));
      if (!m) return fail(`unexpected first line ${JSON.stringify(out.slice(0, nl))}`);
      settled = true;
      clearTimeout(timer);
      child.stdout!.resume();
      resolve({
        pid: Number(m[3]),
        port: Number(m[2]),
        child,
        exited,
        get exit() {
          return exit;
        },
        stderr: () => tail(err.trim()),
        stop,
      });
    });
  });
}
