import { parseArgs } from 'node:util';
import { probeThreads } from '../lab/thread-probe';
import { UsageError, type Command } from './types';

export const probeCommand: Command = {
  name: 'probe',
  summary: 'measure one resource directly (threads: what N idle threads cost)',
  help: `usage: iomux probe threads [--n N] [--stack-kb K] [--json]

Parks N idle native threads in this process (stack K KiB, default: the
system default, RLIMIT_STACK) and reports what each costs: address space
reserved (VmSize), memory actually resident (RSS) and the kernel stack
(system-wide KernelStack delta, so other activity on the machine adds noise).

  --n N         threads to start (default 1000, at most 100000)
  --stack-kb K  stack size per thread in KiB (default: the system default)
  --json        one JSON object

Example:
  $ iomux probe threads --n 10000
`,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { n: { type: 'string' }, 'stack-kb': { type: 'string' }, json: { type: 'boolean' } },
    });
    if (positionals[0] !== 'threads') throw new UsageError(`unknown probe '${positionals[0] ?? ''}' (known: threads)`);
    const n = values.n === undefined ? 1000 : Number(values.n);
    const stackKb = values['stack-kb'] === undefined ? 0 : Number(values['stack-kb']);
    if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new UsageError(`--n must be an integer in [1, 100000], got ${values.n}`);
    if (!Number.isInteger(stackKb) || stackKb < 0) throw new UsageError(`--stack-kb must be a non-negative integer, got ${values['stack-kb']}`);
    const r = probeThreads(n, stackKb * 1024);
    if (values.json) {
      process.stdout.write(JSON.stringify(r) + '\n');
      return 0;
    }
    process.stdout.write(
      `${r.started} of ${r.requested} threads, stack ${(r.stackBytes / 1024).toFixed(0)} KiB each (default ${(r.defaultStackBytes / 1024).toFixed(0)} KiB)\n` +
        `per thread: virtual ${r.vmKiBPerThread.toFixed(1)} KiB, resident ${r.rssKiBPerThread.toFixed(1)} KiB, kernel stack ${r.kernelStackKiBPerThread.toFixed(1)} KiB\n` +
        `process: VmSize ${r.before.vmSizeKiB} -> ${r.after.vmSizeKiB} KiB, RSS ${r.before.rssKiB} -> ${r.after.rssKiB} KiB, threads ${r.before.threads} -> ${r.after.threads}\n`,
    );
    return 0;
  },
};
