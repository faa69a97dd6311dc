import { parseArgs } from 'node:util';
import { BACKEND_NAMES, type BackendName } from '../poller';
import { benchSyscalls, type SyscallReport } from '../bench/syscalls';
import { benchDispatch, dispatchRunners, type DispatchReport } from '../bench/dispatch';
import '../bench/dispatch-loop'; // registers the EventLoop runner
import { fmt, type MachineInfo } from '../bench/measure';
import { table } from './backends';
import { ErrnoError } from '../errors';
import { UsageError, type Command } from './types';
import { benchEchoSubcommand, benchC10kSubcommand } from './bench-lab';

interface Sub {
  name: string;
  summary: string;
  help: string;
  run(argv: string[]): Promise<number>;
}

function intList(text: string | undefined, name: string, min: number, max: number): number[] | undefined {
  if (text === undefined) return undefined;
  const parts = text.split(',').map((s) => s.trim());
  const out = parts.map((s) => Number(s));
  if (parts.some((s) => s === '') || out.some((v) => !Number.isInteger(v) || v < min || v > max)) {
    throw new UsageError(`--${name} must be a comma-separated list of integers in [${min}, ${max}], got '${text}'`);
  }
  return out;
}

function intOpt(text: string | undefined, name: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (text.trim() === '' || !Number.isInteger(v) || v < min || v > max) throw new UsageError(`--${name} must be an integer in [${min}, ${max}], got '${text}'`);
  return v;
}

function numOpt(text: string | undefined, name: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v < min || v > max) throw new UsageError(`--${name} must be a number in [${min}, ${max}], got '${text}'`);
  return v;
}

function backendList(text: string | undefined): BackendName[] | undefined {
  if (text === undefined) return undefined;
  const names = text.split(',').map((s) => s.trim());
  for (const n of names) {
    if (!BACKEND_NAMES.includes(n as BackendName)) throw new UsageError(`--backend must name backends among ${BACKEND_NAMES.join(', ')}, got '${n}'`);
  }
  return names as BackendName[];
}

function machineLine(m: MachineInfo): string {
  return `${m.cpu}, ${m.cores} cores, running on CPU(s) ${m.affinity ?? '?'}, kernel ${m.kernel}, Node ${m.node}, load average ${m.loadavg.join(' ')}`;
}

// --- syscalls --------------------------------------------------------------

const syscalls: Sub = {
  name: 'syscalls',
  summary: 'ns per call of the multiplexer syscalls, from C and from JS, and the binding tax',
  help: `usage: iomux bench syscalls [--json] [--quick] [--clock wall|cpu] [--fds LIST]
                             [--backend LIST] [--target-ms MS] [--reps N]

Times one call of each operation with a C loop inside the addon and with the
same operation driven from JS through the addon, and prints ns per call for
both and the binding tax (JS / C):

  gettid               the bare syscall floor
  wait, nothing ready  select, poll, epoll_wait, kevent (where available) and
                       the io_uring poll backend over N idle fds, timeout 0:
                       "C raw" calls the syscall, "C backend" calls the
                       Backend object a Poller wraps, JS calls Poller.wait(0),
                       and "JS lean" the leanest wait N-API allows (events
                       array bound once, no unwrap): how much of the tax is
                       N-API itself and how much the Poller's binding
  io_uring NOP         one NOP submitted and waited for
  pipe ping-pong       one byte between two threads over blocking pipes,
                       per one-way trip (round trip / 2): a context switch
                       when both threads share a CPU (run under taskset -c 1)

Also an N-API call that does nothing (JS only): the fixed price of the
crossing. Each figure is the median of --reps timed batches; each batch is
auto-calibrated to last --target-ms and timed by the wall clock
(CLOCK_MONOTONIC) and by the thread's CPU time (CLOCK_THREAD_CPUTIME_ID),
which leaves out time other processes held the CPU (the steadier figure on a
shared machine; the JSON has both). Also prints the cost slope per idle fd
for each backend (least squares over the fd counts).

  --json           print one JSON object instead of the table
  --quick          fewer fd counts, shorter batches (finishes in seconds)
  --clock CLOCK    the table's figures: wall (default) or cpu
  --fds LIST       idle fd counts (default 1,10,100,1000; quick 1,100,1000);
                   select stops below FD_SETSIZE and says so
  --backend LIST   backends for the wait rows (default all)
  --target-ms MS   duration of one timed batch (default 50; quick 10)
  --reps N         batches per figure (default 5; quick 3)
`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        json: { type: 'boolean' },
        quick: { type: 'boolean' },
        fds: { type: 'string' },
        backend: { type: 'string' },
        'target-ms': { type: 'string' },
        reps: { type: 'string' },
        clock: { type: 'string' },
      },
      strict: true,
    });
    const quick = values.quick ?? false;
    const clock = values.clock ?? 'wall';
    if (clock !== 'wall' && clock !== 'cpu') throw new UsageError(`--clock must be 'wall' or 'cpu', got '${clock}'`);
    const report = await benchSyscalls({
      fdCounts: intList(values.fds, 'fds', 1, 10000) ?? (quick ? [1, 100, 1000] : [1, 10, 100, 1000]),
      backends: backendList(values.backend),
      targetMs: numOpt(values['target-ms'], 'target-ms', 0.001, 10000) ?? (quick ? 10 : 50),
      reps: intOpt(values.reps, 'reps', 1, 1000) ?? (quick ? 3 : 5),
      progress: true,
    });
    process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : syscallsText(report, clock));
    return 0;
  },
};

export function syscallsText(r: SyscallReport, clock: 'wall' | 'cpu' = 'wall'): string {
  const cpu = clock === 'cpu';
  const rows = [['operation', 'fds', 'C raw ns', 'C backend ns', 'JS lean ns', 'JS ns', 'JS/C raw', 'JS/C backend', 'lean/C backend']];
  const notes: string[] = [];
  for (const row of r.rows) {
    if (row.skipped) {
      notes.push(`${row.label}${row.backend ? ` (${row.backend})` : ''}: not measured: ${row.skipped}`);
      continue;
    }
    const useCpu = cpu && row.op !== 'pingpong';
    rows.push([
      row.label + (cpu && !useCpu ? ' (wall)' : ''),
      row.fds === undefined ? '' : row.requestedFds ? `${row.fds}*` : String(row.fds),
      fmt(useCpu ? row.cCpuNs : row.cNs),
      fmt(useCpu ? row.cBackendCpuNs : row.cBackendNs),
      fmt(useCpu ? row.jsLeanCpuNs : row.jsLeanNs),
      fmt(useCpu ? row.jsCpuNs : row.jsNs),
      fmt(useCpu ? row.taxCpu : row.tax, 2),
      fmt(useCpu ? row.napiTaxCpu : row.napiTax, 2),
      fmt(useCpu ? row.leanTaxCpu : row.leanTax, 2),
    ]);
    if (row.requestedFds) notes.push(`* ${row.backend}: ${row.fds} fds instead of ${row.requestedFds}: ${row.note}`);
    else if (row.note && row.backend === 'io_uring' && !notes.some((n) => n.startsWith('io_uring'))) notes.push(`io_uring poll: ${row.note}`);
  }
  const slopes = [['cost per idle fd', 'C raw ns/fd', 'C backend ns/fd', 'JS ns/fd']];
  for (const s of r.slopes) {
    slopes.push(cpu ? [s.backend, fmt(s.cCpuNsPerFd, 2), fmt(s.cBackendCpuNsPerFd, 2), fmt(s.jsCpuNsPerFd, 2)] : [s.backend, fmt(s.cNsPerFd, 2), fmt(s.cBackendNsPerFd, 2), fmt(s.jsNsPerFd, 2)]);
  }
  return (
    `ns per call by the ${cpu ? "thread's CPU time (CLOCK_THREAD_CPUTIME_ID)" : 'wall clock (CLOCK_MONOTONIC)'}, median of ${r.params.reps} batches of >= ${r.params.targetMs} ms\n` +
    `${machineLine(r.machine)}\n` +
    `JS lean: the leanest wait N-API allows (events array bound once, no unwrap), beside the Poller's wait\n\n` +
    table(rows) +
    '\n' +
    table(slopes) +
    (notes.length ? '\n' + notes.join('\n') + '\n' : '')
  );
}

// --- dispatch --------------------------------------------------------------

const dispatch: Sub = {
  name: 'dispatch',
  summary: "libevent's bench.c workload on every backend: TypeScript loop vs native C loop",
  help: `usage: iomux bench dispatch [--json] [--quick] [--sizes LIST] [--active A]
                             [--writes W] [--runs R] [--pipes]
                             [--backend LIST] [--runner LIST]

The workload of libevent's test/bench.c: n socketpairs, each with a read
callback that reads one byte and, while the write budget lasts, writes one
byte into the next pair (wrapping). A active pairs get the first byte; W
writes in all. Per run, registering all n read ends (setup) is timed apart
from the dispatch, which runs non-blocking waits until every byte written has
been read: A + W events. R runs; the median µs per run and per event are
reported, for each available backend and each runner, by the wall clock
and by the thread's CPU time:

${dispatchRunners()
  .map((r) => `  ${r.name.padEnd(8)} ${r.description}`)
  .join('\n')}

Each runner first does one untimed warm-up run; then the runs of the runners
are interleaved (run 1 of each, run 2 of each, ...) so a busy spell on a
shared machine falls on all of them alike, and each run removes its
registrations afterwards (untimed). select cannot watch fds >=
FD_SETSIZE; n pairs need 2n fds, so select stops at the largest n that fits,
and that n is then run on every backend as well.

  --json          print one JSON object instead of the table
  --quick         --sizes 100,1000 --runs 5 (finishes in seconds)
  --sizes LIST    pair counts (default 100,1000,9000)
  --active A      active pairs (default 100)
  --writes W      writes per run (default 1000)
  --runs R        runs per figure (default 25)
  --pipes         pipes instead of socketpairs (libevent's USE_PIPES)
  --backend LIST  backends (default: every available one)
  --runner LIST   runners (default: all: ${dispatchRunners()
    .map((r) => r.name)
    .join(', ')})
`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        json: { type: 'boolean' },
        quick: { type: 'boolean' },
        sizes: { type: 'string' },
        active: { type: 'string' },
        writes: { type: 'string' },
        runs: { type: 'string' },
        pipes: { type: 'boolean' },
        backend: { type: 'string' },
        runner: { type: 'string' },
      },
      strict: true,
    });
    const quick = values.quick ?? false;
    const active = intOpt(values.active, 'active', 1, 1_000_000) ?? 100;
    const sizes = intList(values.sizes, 'sizes', 1, 1_000_000) ?? (quick ? [100, 1000] : [100, 1000, 9000]);
    for (const n of sizes) if (n < active) throw new UsageError(`every size must be >= --active (${active}), got ${n}`);
    let runnerNames: string[] | undefined;
    if (values.runner !== undefined) {
      const known = dispatchRunners().map((r) => r.name);
      runnerNames = values.runner.split(',').map((s) => s.trim());
      for (const n of runnerNames) if (!known.includes(n)) throw new UsageError(`--runner must name runners among ${known.join(', ')}, got '${n}'`);
    }
    const report = benchDispatch({
      sizes,
      active,
      writes: intOpt(values.writes, 'writes', 0, 100_000_000) ?? 1000,
      runs: intOpt(values.runs, 'runs', 1, 10_000) ?? (quick ? 5 : 25),
      pipes: values.pipes ?? false,
      backends: backendList(values.backend),
      runners: runnerNames,
      progress: true,
    });
    process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : dispatchText(report));
    return 0;
  },
};

export function dispatchText(r: DispatchReport): string {
  const p = r.params;
  const rows = [['backend', 'n', 'runner', 'setup µs', 'run µs', 'µs/event', 'vs native', 'cpu µs/event', 'vs native', 'passes']];
  for (const row of r.rows) {
    const ratio = r.ratios.find((x) => x.backend === row.backend && x.n === row.n && x.runner === row.runner);
    rows.push([
      row.backend,
      String(row.n),
      row.runner,
      fmt(row.setupUs, 1),
      fmt(row.runUs, 1),
      fmt(row.perEventUs, 3),
      ratio ? `${fmt(ratio.perEventVsNative, 2)}x` : '',
      fmt(row.perEventCpuUs, 3),
      ratio ? `${fmt(ratio.perEventCpuVsNative, 2)}x` : '',
      String(row.passes),
    ]);
  }
  const notes = r.skipped.map((s) => `${s.backend}${s.n ? ` n=${s.n}` : ''}: not run: ${s.reason}`);
  return (
    `libevent bench.c workload: ${p.transport}s, a = ${p.a} active, w = ${p.w} writes, ${p.a + p.w} events per run; ` +
    `median of ${p.runs} runs\n${machineLine(r.machine)}\n` +
    `times by the wall clock, and "cpu" by the thread's CPU time (leaves out time other processes held the CPU);\n` +
    `"vs native": per-event cost of the runner / the C loop on the same backend and n, runs interleaved\n\n` +
    table(rows) +
    (notes.length ? '\n' + notes.join('\n') + '\n' : '')
  );
}

// --- the command -----------------------------------------------------------

const subs: Sub[] = [syscalls, dispatch, benchEchoSubcommand, benchC10kSubcommand];

export const benchCommand: Command = {
  name: 'bench',
  summary: 'benchmarks: syscall costs and the binding tax, event dispatch (libevent bench.c), echo, c10k',
  help: `usage: iomux bench <benchmark> [options]

${subs.map((s) => `  ${s.name.padEnd(10)} ${s.summary}`).join('\n')}

Every benchmark takes --json (one JSON object on stdout) and --quick; progress
lines go to stderr. The machine is shared and noisy: compare ratios taken in
one run, and pin with taskset (e.g. taskset -c 1 iomux bench syscalls).

${subs.map((s) => s.help).join('\n')}`,
  async run(argv) {
    const [name, ...rest] = argv;
    const sub = subs.find((s) => s.name === name);
    if (!sub) throw new UsageError(name === undefined ? 'which benchmark? one of ' + subs.map((s) => s.name).join(', ') : `unknown benchmark '${name}'; one of ${subs.map((s) => s.name).join(', ')}`);
    try {
      return await sub.run(rest);
    } catch (err) {
      // Running out of fds is the machine's limit, not a bug: say so plainly.
      if (err instanceof ErrnoError && (err.code === 'EMFILE' || err.code === 'ENFILE')) {
        process.stderr.write(`iomux bench ${name}: ${err.message}\n`);
        return 1;
      }
      throw err;
    }
  },
};
