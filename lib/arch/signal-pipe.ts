// SIGINT/SIGTERM for archs whose loop owns the thread (native/signal_pipe.cc):
// a pipe that receives one byte, the signal number, per signal. Watch `fd`
// for readability in the loop, then take() the signals.
//
// Open it after process.on('SIGINT'/'SIGTERM') handlers are set (as `iomux
// serve` does before run()): libuv installs its handler only for the first
// listener of a signal, and would replace ours. The previous handler (libuv's)
// is called first, so Node's listeners still run once Node's loop turns.
import * as os from 'node:os';
import { native } from '../native';
import { ErrnoError } from '../errors';

const SIGNUM = os.constants.signals as Record<string, number>;

export class SignalPipe {
  readonly fd: number;
  private isClosed = false;
  private readonly buf = Buffer.alloc(64);

  constructor(signals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM']) {
    const nums = signals.map((s) => {
      const n = SIGNUM[s];
      if (typeof n !== 'number') throw new RangeError(`signals: unknown signal ${String(s)}`);
      return n;
    });
    const rc: number = native.signalPipe(nums);
    if (rc < 0) throw new ErrnoError(-rc, 'sigaction');
    this.fd = rc;
  }

  /** The signals received since the last call, oldest first (empty when none). */
  take(): NodeJS.Signals[] {
    const out: NodeJS.Signals[] = [];
    if (this.isClosed) return out;
    for (;;) {
      const n: number = native.sys.read(this.fd, this.buf, 0, this.buf.length);
      if (n <= 0) break;
      for (let i = 0; i < n; i++) out.push(signalName(this.buf[i]));
      if (n < this.buf.length) break;
    }
    return out;
  }

  /** Puts the previous handlers back and closes the pipe. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    native.signalPipeClose(this.fd);
  }
}

function signalName(n: number): NodeJS.Signals {
  for (const [name, num] of Object.entries(SIGNUM)) if (num === n) return name as NodeJS.Signals;
  return `SIG${n}` as NodeJS.Signals;
}
