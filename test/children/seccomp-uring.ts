// Installs a seccomp filter that fails io_uring_setup/enter/register with the
// errno named by argv[2] (EPERM or ENOSYS), then reports what backends() says
// and whether every other backend still works. Run by uring-unavailable.test.ts.
import * as os from 'node:os';
import { native } from '../../lib/native';
import { backends, Poller, type BackendName } from '../../lib/poller';
import { ErrnoError } from '../../lib/errors';
import * as sys from '../../lib/sys';

const errno = os.constants.errno[process.argv[2] as keyof typeof os.constants.errno];
const rc = native.sys.denyIoUringForTests(errno);
if (rc !== 0) {
  console.log(JSON.stringify({ installed: false, rc }));
  process.exit(0);
}

function works(name: BackendName): boolean {
  const p = new Poller(name);
  const [r, w] = sys.pipe();
  try {
    p.add(r, 1);
    if (p.wait(0) !== 0) return false;
    sys.write(w, Buffer.from('x'));
    return p.wait(1000) === 1 && p.events[0] === r && p.events[1] === 1;
  } finally {
    p.close();
    sys.close(r);
    sys.close(w);
  }
}

const list = backends();
let created: { code?: string; syscall?: string; message: string } | null = null;
try {
  new Poller('io_uring').close();
} catch (err) {
  created = err instanceof ErrnoError ? { code: err.code, syscall: err.syscall, message: err.message } : { message: String(err) };
}
const others = Object.fromEntries(list.filter((b) => b.name !== 'io_uring' && b.available).map((b) => [b.name, works(b.name)]));
console.log(JSON.stringify({ installed: true, uring: list.find((b) => b.name === 'io_uring'), created, others }));
