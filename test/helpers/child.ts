// Runs a TypeScript file (test/children/*.ts) in a child `node` process, so a
// crash is seen as a signal and an exit as an exit code. The environment is
// inherited: IOMUX_ADDON and LD_PRELOAD of the sanitizer run reach the child.
import { spawn } from 'node:child_process';
import * as path from 'node:path';

export const TS_REGISTER = path.join(__dirname, 'ts-register.cjs');
export const CHILDREN = path.join(__dirname, '..', 'children');

export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

export interface ChildOptions {
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

export function runChild(script: string, args: string[] = [], opts: ChildOptions = {}): Promise<ChildResult> {
  const file = path.isAbsolute(script) ? script : path.join(CHILDREN, script);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '-r', TS_REGISTER, file, ...args], {
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - started });
    });
  });
}

/** A one-line account of how a child ended, for assertion messages. */
export function describeExit(r: ChildResult): string {
  const how = r.timedOut ? 'timed out (killed)' : r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`;
  return `${how} after ${r.ms} ms\n--- stdout (tail)\n${r.stdout.slice(-3000)}\n--- stderr (tail)\n${r.stderr.slice(-6000)}`;
}
