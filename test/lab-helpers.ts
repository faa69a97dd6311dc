// Shared by the lab tests: spawn `iomux serve` as a child process, read its
// listening line, stop it with a signal; small raw-socket clients.
import { spawn, type ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';

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

const LISTENING = /^listening (\S+):(\d+) pid=(\d+)$/;

export function serve(args: string[], timeoutMs = 20_000): Promise<Served> {
  const child = spawn(process.execPath, [bin, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`iomux serve ${args.join(' ')}: no listening line in ${timeoutMs} ms; stderr: ${err}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`iomux serve ${args.join(' ')} exited with ${code} before listening; stderr: ${err}`));
    });
    child.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      const m = LISTENING.exec(out.slice(0, nl));
      if (!m) return reject(new Error(`unexpected first line: ${JSON.stringify(out.slice(0, nl))}`));
      resolve({
        port: Number(m[2]),
        pid: Number(m[3]),
        child,
        stderr: () => err,
        stop(signal: NodeJS.Signals = 'SIGTERM') {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          const guard = setTimeout(() => child.kill('SIGKILL'), 15_000);
          return exited.finally(() => clearTimeout(guard));
        },
      });
    });
  });
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
