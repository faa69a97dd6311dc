// Shared by the lab tests: spawn `iomux serve` as a child process, read its
// listening line, stop it with a signal; small raw-socket clients.
import type { ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawnServe } from '../lib/lab/serve-process';

export const root = path.join(__dirname, '..');
export const bin = path.join(root, 'bin', 'iomux.js');

export interface Served {
  port: number;
  pid: number;
  child: ChildProcess;
  stderr: () => string;
  /** Sends the signal and resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function serve(args: string[], timeoutMs = 20_000): Promise<Served> {
  const p = await spawnServe(['serve', '--port', '0', ...args], { timeoutMs });
  return {
    port: p.port,
    pid: p.pid,
    child: p.child,
    stderr: () => p.stderr(),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const { code, signal: by } = await p.stop(15_000, signal);
      return { code, signal: by };
    },
  };
}

/** Connects, sends each chunk (with a pause between), collects everything until the server closes or `untilBytes` arrive. */
export function exchange(
  port: number,
  chunks: Array<string | Buffer>,
  opts: { untilBytes?: number; until?: (data: Buffer) => boolean; pauseMs?: number; timeoutMs?: number; end?: boolean } = {},
): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    let n = 0;
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(got), closed });
    };
    const timer = setTimeout(() => finish(false), opts.timeoutMs ?? 5000);
    sock.on('data', (d) => {
      got.push(d);
      n += d.length;
      if (opts.untilBytes !== undefined && n >= opts.untilBytes) finish(false);
      else if (opts.until && opts.until(Buffer.concat(got))) finish(false);
    });
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.on('error', (e) => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        reject(e);
      }
    });
    sock.on('connect', async () => {
      for (let i = 0; i < chunks.length; i++) {
        sock.write(chunks[i]);
        if (i + 1 < chunks.length) await new Promise((r) => setTimeout(r, opts.pauseMs ?? 20));
      }
      if (opts.end) sock.end();
    });
  });
}

export const HELLO_RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!';
