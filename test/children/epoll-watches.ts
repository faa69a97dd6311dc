// Run by test/isolated/epoll-watches.test.ts as an unprivileged uid of its
// own: registers argv[2] epoll watches (100 pipes in as many epoll Pollers as
// it takes), says "ready <ours> <all of the process's>", and once the parent
// has lowered fs.epoll.max_user_watches to the second and said "go", checks
// that one more watch is an ErrnoError ENOSPC (Poller.add, EventLoop.watch),
// prints one JSON line, and once the parent said the limit is restored, that
// the watch fits (a second line). It returns to Node's loop only then.
// Everything in between is synchronous: libuv aborts when an epoll_ctl of its
// own fails, so Node's loop must not run while the limit is down.
import * as fs from 'node:fs';
import { ErrnoError } from '../../lib/errors';
import { EventLoop } from '../../lib/loop';
import { Poller } from '../../lib/poller';
import * as sys from '../../lib/sys';

const target = Number(process.argv[2]);
const PER = 100;
const pipes: Array<[number, number]> = [];
for (let i = 0; i < PER; i++) pipes.push(sys.pipe());
const pollers: Poller[] = [];
let watches = 0;
while (watches < target) {
  const p = new Poller('epoll');
  pollers.push(p);
  for (let i = 0; i < PER && watches < target; i++, watches++) p.add(pipes[i][0], 1);
}
// The parent's lines arrive on stdin, waited for with a Poller of our own
// (registered now, before the limit comes down).
const stdin = new Poller('epoll');
stdin.add(0, 1);
const inBuf = Buffer.alloc(256);
let input = '';
function nextLine(): string {
  for (;;) {
    const nl = input.indexOf('\n');
    if (nl >= 0) {
      const line = input.slice(0, nl);
      input = input.slice(nl + 1);
      return line;
    }
    if (stdin.wait(30_000) === 0) throw new Error('no word from the parent in 30 s');
    const n = sys.read(0, inBuf);
    if (n === 0) throw new Error('stdin closed');
    if (n > 0) input += inBuf.toString('latin1', 0, n);
  }
}
let all = 0;
for (const fd of fs.readdirSync('/proc/self/fd')) {
  try {
    if (fs.readlinkSync(`/proc/self/fd/${fd}`) !== 'anon_inode:[eventpoll]') continue;
    all += fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1').split('\ntfd:').length - 1;
  } catch {
    // the fd of the readdir itself
  }
}
fs.writeSync(1, `ready ${watches} ${all}\n`);

function outcome(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (err) {
    if (err instanceof ErrnoError) return `ErrnoError ${err.code} ${err.syscall}`;
    return `${(err as Error).constructor.name}: ${(err as Error).message}`;
  }
}

nextLine(); // go
const fresh = new Poller('epoll'); // creating an epoll instance costs no watch
const [r, w] = sys.pipe();
const add = outcome(() => fresh.add(r, 1));
const loop = new EventLoop('epoll');
const watch = outcome(() => loop.watch(r, 1, () => {}));
const existing = outcome(() => pollers[0].add(r, 1));
fs.writeSync(1, JSON.stringify({ watches, all, add, watch, existing }) + '\n');
nextLine(); // restored
fs.writeSync(1, JSON.stringify({ afterRestore: outcome(() => fresh.add(r, 1)) }) + '\n');
loop.close();
fresh.close();
stdin.close();
for (const p of pollers) p.close();
for (const [a, b] of pipes) {
  sys.close(a);
  sys.close(b);
}
sys.close(r);
sys.close(w);
