// Features particular to the native archs and to `iomux serve` itself:
// stack size, pool queueing, several reactor threads, start-up errors, usage.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { ErrnoError } from '../lib/errors';
import { findArch } from '../lib/arch';
import { runLoad } from '../lib/lab/load';
import { readProcess } from '../lib/lab/metrics';
import { bin, serve } from './lab-helpers';

const linux = process.platform === 'linux';

function connectN(port: number, n: number): Promise<net.Socket[]> {
  return Promise.all(
    Array.from({ length: n }, () => new Promise<net.Socket>((resolve, reject) => {
      const c = net.connect(port, '127.0.0.1', () => resolve(c));
      c.on('error', reject);
    })),
  );
}

function roundTrip(c: net.Socket, msg: string): Promise<string> {
  return new Promise((resolve) => {
    c.once('data', (d) => resolve(d.toString()));
    c.write(msg);
  });
}

describe.skipIf(!linux)('threads: --stack-kb sets the stack of every connection thread', () => {
  // glibc maps each thread stack as a rw region of the requested size below a
  // PROT_NONE guard page: count the new rw regions of exactly that size.
  // (VmSize is no measure here: glibc also reserves a 64 MiB malloc arena per
  // thread, up to 8 per core.)
  function stacksOf(pid: number, stackKb: number): number {
    const want = stackKb * 1024;
    let n = 0;
    for (const line of fs.readFileSync(`/proc/${pid}/maps`, 'latin1').split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) rw-p 00000000 00:00 0\s*$/.exec(line);
      if (m && parseInt(m[2], 16) - parseInt(m[1], 16) === want) n++;
    }
    return n;
  }

  // Sizes that are not powers of two: V8 maps its 256 KiB heap pages as
  // anonymous rw regions too, and those must not be counted as stacks.
  it.each([72, 264])('%i KiB: one stack of that size per connection', async (stackKb) => {
    const s = await serve(['--arch', 'threads', '--stack-kb', String(stackKb)]);
    try {
      const before = stacksOf(s.pid, stackKb);
      const socks = await connectN(s.port, 20);
      for (const c of socks) expect(await roundTrip(c, 'x')).toBe('x');  // every thread is running
      expect(stacksOf(s.pid, stackKb) - before).toBe(20);
      expect(readProcess(s.pid).threads).toBeGreaterThanOrEqual(21);
      for (const c of socks) c.destroy();
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });
});

describe('thread-pool: connections beyond the pool wait for a worker', () => {
  it('a third connection is served only when one of two workers is free', async () => {
    const s = await serve(['--arch', 'thread-pool', '--threads', '2']);
    try {
      const [a, b, c] = await connectN(s.port, 3);
      expect(await roundTrip(a, 'a')).toBe('a');
      expect(await roundTrip(b, 'b')).toBe('b');
      let got = '';
      c.on('data', (d) => (got += d));
      c.write('c');
      // Both workers are held by a and b: nothing can answer c.
      await new Promise((r) => setTimeout(r, 300));
      expect(got).toBe('');
      a.end();  // its worker finishes and takes c from the queue
      await new Promise<void>((r) => {
        const check = () => (got === 'c' ? r() : setTimeout(check, 10));
        check();
      });
      b.destroy();
      c.destroy();
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });
});

describe('several reactor threads (SO_REUSEPORT)', () => {
  for (const arch of ['c-epoll', 'c-uring']) {
    const av = findArch(arch)!.availability();
    if (!av.available) console.log(`lab-native: skipping ${arch} --threads 2: ${av.reason}`);
    it.skipIf(!av.available)(`${arch} --threads 2 serves echo and http`, async () => {
      for (const protocol of ['echo', 'http'] as const) {
        const s = await serve(['--arch', arch, '--threads', '2', '--protocol', protocol]);
        try {
          if (linux) expect(readProcess(s.pid).perThread!.size).toBeGreaterThanOrEqual(3);
          const r = await runLoad({ port: s.port, protocol, conns: 16, depth: 2, duration: 0.3 });
          expect(r.firstError).toBeNull();
          expect(r.verifyErrors).toBe(0);
          expect(r.connected).toBe(16);
          expect(r.requests).toBeGreaterThan(0);
        } finally {
          expect((await s.stop()).code).toBe(0);
        }
      }
    });
  }
});

describe('start-up errors', () => {
  it('a port in use is an ErrnoError EADDRINUSE from bind, for every native arch', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      for (const name of ['threads', 'thread-pool', 'c-epoll', 'c-uring']) {
        const arch = findArch(name)!;
        if (!arch.availability().available) continue;
        let err: unknown;
        try {
          const s = await arch.start({ protocol: 'echo', host: '127.0.0.1', port });
          await s.close();
        } catch (e) {
          err = e;
        }
        expect(err, name).toBeInstanceOf(ErrnoError);
        expect((err as ErrnoError).code).toBe('EADDRINUSE');
        expect((err as ErrnoError).syscall).toBe('bind');
      }
    } finally {
      holder.close();
    }
  });

  it('bad options are TypeError/RangeError naming the option', async () => {
    const arch = findArch('threads')!;
    await expect(arch.start({ protocol: 'echo', host: '127.0.0.1', port: 70000 })).rejects.toThrow(/port/);
    await expect(arch.start({ protocol: 'echo', host: '127.0.0.1', port: 0, stackKb: 4 })).rejects.toThrow(/stackKb/);
    await expect(findArch('thread-pool')!.start({ protocol: 'echo', host: '127.0.0.1', port: 0, threads: 0 })).rejects.toThrow(/threads/);
  });

  it('in-process: start, serve, close twice', async () => {
    const s = await findArch('c-epoll')!.start({ protocol: 'echo', host: '127.0.0.1', port: 0 });
    const [c] = await connectN(s.port, 1);
    expect(await roundTrip(c, 'hi')).toBe('hi');
    c.destroy();
    await Promise.all([s.close(), s.close()]);
    expect(s.stats!().accepted).toBe(1);
  });
});

describe('iomux serve usage', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [bin, 'serve', ...args], { encoding: 'utf8', timeout: 20_000 });

  it('rejects bad usage with exit 2 and a message naming the option', () => {
    const cases: Array<[string[], RegExp]> = [
      [[], /--arch is required/],
      [['--arch', 'nope'], /unknown --arch 'nope'/],
      [['--arch', 'c-epoll', '--stack-kb', '64'], /does not take --stack-kb/],
      [['--arch', 'node-net', '--threads', '2'], /does not take --threads/],
      [['--arch', 'threads', '--port', '99999'], /--port must be in \[0, 65535\]/],
      [['--arch', 'threads', '--protocol', 'ftp'], /--protocol must be echo or http/],
      [['--arch', 'threads', '--host', 'localhost'], /--host must be an IPv4 or IPv6 literal/],
      [['--arch', 'threads', '--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [args, why] of cases) {
      const r = run(...args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(why);
    }
    // Eight CLI processes one after the other: 33 s under npm run test:asan on a loaded machine.
  }, 180_000);

  it('--help has examples; --list shows every arch', () => {
    const help = run('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/listening HOST:PORT pid=PID/);
    expect(help.stdout).toMatch(/Examples:/);
    const list = run('--list');
    expect(list.status).toBe(0);
    for (const a of ['threads', 'thread-pool', 'c-epoll', 'c-uring', 'node-net']) expect(list.stdout).toMatch(new RegExp(`^${a}\\s`, 'm'));
  });

  it('a port in use: exit 1 with the reason', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    try {
      const port = String((holder.address() as net.AddressInfo).port);
      // spawnSync would block this process's loop, which must accept nothing here: fine.
      const r = run('--arch', 'c-epoll', '--port', port);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/EADDRINUSE/);
    } finally {
      holder.close();
    }
  });
});
