import { parseArgs } from 'node:util';
import { CLAIM_IDS, verify, verifyText } from '../bench/verify';
import { makeProgress } from '../bench/progress';
import { UsageError, type Command } from './types';

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'measure each claim of the threads vs event-driven story here: value, verdict, command',
  get help() {
    return `usage: iomux verify [--json] [--quick] [--only LIST] [--quiet]

Measures each quantitative claim of the thread-per-connection vs event-driven
story on this machine and prints one row per claim: the claim, what was
measured, the threshold that turns the measurement into a verdict, the
verdict (holds / does not hold / holds only for virtual memory / not measured
here, with the reason) and the command that measures it alone.

Claims (--only takes these names):
${CLAIM_IDS.map((id) => `  ${id}`).join('\n')}

How they are measured:
  threads      \`iomux probe threads --n 1000\` and \`--n 10000\` in child processes:
               the default stack size, virtual vs resident memory per thread
  syscalls     \`iomux bench syscalls\`: the pipe ping-pong between two threads
               (a context switch) and the cost slope per idle fd of select,
               poll and epoll
  FD_SETSIZE   Poller('select').add() of an fd >= FD_SETSIZE, shown, not assumed
  CPU work     open-loop HTTP (\`iomux load --rate R --work-us U --work-ratio F\`)
               against threads, reactor --backend epoll and reactor-pool, each an
               \`iomux serve\` child, without and with the CPU work; not pinned,
               so threads can use every core
  REUSEPORT    multi-reactor with 4 workers: the connections each worker accepted
  io_uring     every syscall the server process makes during an echo run
               (perf stat -e raw_syscalls:sys_enter -p PID), per request,
               proactor vs reactor --backend epoll, beside the servers' own
               counters (Ring enters, loop waits)
  10k          threads and reactor --backend epoll holding 10,000 connections
               (one active): memory per connection once the server holds them

Options:
  --json        print one JSON object ({ rows: [...] }) instead of the text
  --quick       shorter runs (about a minute); the sizes the claims name stay
  --only LIST   comma-separated claim names
  --quiet       no progress on stderr

Exit status: 0 whatever the verdicts (a claim that could not be measured says
why in its row), 2 for bad usage.
`;
  },
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        json: { type: 'boolean' },
        quick: { type: 'boolean' },
        tiny: { type: 'boolean' }, // hidden: tiny sizes, for tests
        only: { type: 'string' },
        quiet: { type: 'boolean' },
      },
    });
    let only: string[] | undefined;
    if (values.only !== undefined) {
      only = values.only.split(',').map((s) => s.trim());
      for (const id of only) if (!CLAIM_IDS.includes(id)) throw new UsageError(`--only: unknown claim '${id}' (one of: ${CLAIM_IDS.join(', ')})`);
    }
    const report = await verify({ quick: values.quick ?? false, tiny: values.tiny ?? false, only, progress: makeProgress(process.stderr, !values.quiet) });
    process.stdout.write(values.json ? JSON.stringify(report) + '\n' : verifyText(report));
    return 0;
  },
};
