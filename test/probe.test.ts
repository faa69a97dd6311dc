import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.join(__dirname, '..');
const probe = (args: string[]) =>
  JSON.parse(execFileSync(process.execPath, ['bin/iomux.js', 'probe', 'threads', '--json', ...args], { cwd: root, encoding: 'utf8' }));

describe('iomux probe threads', () => {
  it('starts the threads and accounts at least their stacks as virtual memory', () => {
    const r = probe(['--n', '50', '--stack-kb', '256']);
    expect(r.started).toBe(50);
    expect(r.stackBytes).toBe(256 * 1024);
    expect(r.after.threads - r.before.threads).toBe(50);
    expect(r.vmKiBPerThread).toBeGreaterThanOrEqual(256);
    expect(r.rssKiBPerThread).toBeGreaterThanOrEqual(0);
    // Each started thread has at least the top page of its stack resident (its struct pthread and TLS live there).
    expect(r.rssKiBPerThread).toBeGreaterThanOrEqual(4);
  });

  it('reports the default stack size when none is asked for', () => {
    const r = probe(['--n', '2']);
    expect(r.stackBytes).toBe(r.defaultStackBytes);
    expect(r.defaultStackBytes).toBeGreaterThan(0);
  });

  it('rejects bad usage with exit code 2', () => {
    let status = 0;
    try {
      execFileSync(process.execPath, ['bin/iomux.js', 'probe', 'threads', '--n', '-3'], { cwd: root, stdio: 'pipe' });
    } catch (e) {
      status = (e as { status: number }).status;
    }
    expect(status).toBe(2);
  });
});
