// epoll's fs.epoll.max_user_watches: a watch beyond it is an ErrnoError
// (ENOSPC, epoll_ctl) from Poller.add and EventLoop.watch, never a crash, and
// the same watch fits once the limit is back.
// The limit is machine-wide but counted per user: the child runs as a uid of
// its own (4242) and registers more watches than every process of the machine
// holds together plus 50,000; only then is the limit lowered, to exactly the
// child's count, for the few milliseconds its checks take, and restored in a
// finally. Any other user stays far below the lowered limit. Needs root and a
// writable /proc/sys; skipped with the reason otherwise.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TS_REGISTER, CHILDREN } from '../helpers/child';

const SYSCTL = '/proc/sys/fs/epoll/max_user_watches';
const UID = 4242;

function why(): string | null {
  if (process.platform !== 'linux') return 'not Linux';
  if (!fs.existsSync(SYSCTL)) return `${SYSCTL} does not exist`;
  if (process.getuid?.() !== 0) return 'needs root (to write the sysctl and to run the child as another uid)';
  try {
    fs.writeFileSync(SYSCTL, fs.readFileSync(SYSCTL, 'utf8').trim()); // the current value: no change
    return null;
  } catch (err) {
    return `${SYSCTL} cannot be written (${(err as Error).message})`;
  }
}
const skip = why();
if (skip) console.log(`[epoll-watches] skipped: ${skip}`);

/** Every epoll watch on the machine now (the tfd lines of every epoll fd's fdinfo): more than any one user holds. */
function watchesInUse(): number {
  let n = 0;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:[eventpoll]') continue;
        const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1');
        for (let i = info.indexOf('tfd:'); i >= 0; i = info.indexOf('tfd:', i + 4)) n++;
      } catch {
        // closed meanwhile
      }
    }
  }
  return n;
}

describe('epoll max_user_watches', () => {
  it.skipIf(!!skip)('a watch beyond the limit is ErrnoError ENOSPC (epoll_ctl); it fits once the limit is back', async () => {
    const target = watchesInUse() + 50_000;
    const child = spawn(process.execPath, ['-r', TS_REGISTER, path.join(CHILDREN, 'epoll-watches.ts'), String(target)], {
      uid: UID,
      gid: UID,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const waiters: Array<() => void> = [];
    child.stdout.on('data', (d) => {
      out += d;
      for (const w of waiters.splice(0)) w();
    });
    let gone = false;
    child.on('exit', () => {
      gone = true;
      for (const w of waiters.splice(0)) w();
    });
    /** Line n (from 0) of the child's stdout, once complete. */
    const line = async (n: number): Promise<string> => {
      for (;;) {
        const lines = out.split('\n').slice(0, -1);
        if (lines.length > n) return lines[n];
        if (gone) throw new Error(`child exited before line ${n}; stderr: ${err}`);
        await new Promise<void>((res) => waiters.push(res));
      }
    };
    const old = fs.readFileSync(SYSCTL, 'utf8').trim();
    let result: { watches: number; all: number; add: string; watch: string; existing: string };
    let windowMs = 0;
    let after: { afterRestore: string } = { afterRestore: 'not run' };
    try {
      const ready = await line(0);
      const m = /^ready (\d+) (\d+)$/.exec(ready);
      expect(Number(m?.[1]), ready).toBe(target);
      const all = Number(m![2]); // with Node's own
      expect(all).toBeGreaterThanOrEqual(target);
      const t0 = performance.now();
      try {
        fs.writeFileSync(SYSCTL, String(all));
        child.stdin.write('go\n');
        result = JSON.parse(await line(1));
      } finally {
        fs.writeFileSync(SYSCTL, old);
        windowMs = performance.now() - t0;
      }
      child.stdin.write('restored\n');
      after = JSON.parse(await line(2));
    } finally {
      if (fs.readFileSync(SYSCTL, 'utf8').trim() !== old) fs.writeFileSync(SYSCTL, old);
      child.stdin.end();
      if (child.exitCode === null) setTimeout(() => child.kill('SIGKILL'), 30_000).unref();
    }
    expect(await exited, err).toBe(0);
    console.log(`[epoll-watches] child (uid ${UID}) at ${result!.watches} watches, max_user_watches lowered to that for ${windowMs.toFixed(1)} ms (restored to ${old}): ${JSON.stringify(result!)}; after: ${JSON.stringify(after)}`);
    expect(result!.add).toBe('ErrnoError ENOSPC epoll_ctl');
    expect(result!.watch).toBe('ErrnoError ENOSPC epoll_ctl');
    expect(result!.existing).toBe('ErrnoError ENOSPC epoll_ctl');
    expect(after.afterRestore).toBe('ok');
    expect(fs.readFileSync(SYSCTL, 'utf8').trim()).toBe(old);
  }, 120_000);
});
