// `iomux bench echo` and `iomux bench c10k`: argument parsing only; the
// benchmarks are lib/bench/echo.ts and lib/bench/c10k.ts. Until they are
// wired into `iomux bench`, they run as `iomux bench-lab echo|c10k`.
import { parseArgs } from 'node:util';
import { ARCHS } from '../arch';
import { benchC10k, c10kDefaults, c10kMarkdown, C10K_ARCHS } from '../bench/c10k';
import { benchEcho, echoDefaults, echoMarkdown } from '../bench/echo';
import { parseVariants } from '../bench/lab-run';
import { makeProgress } from '../bench/progress';
import { UsageError, type Command } from './types';

export interface BenchSubcommand {
  name: string;
  summary: string;
  help: string;
  run(argv: string[]): Promise<number>;
}

function list(text: string | undefined, flag: string): string[] | undefined {
  if (text === undefined) return undefined;
  const parts = text.split(',').map((s) => s.trim());
  if (parts.some((p) => p === '')) throw new UsageError(`${flag} must be a comma-separated list, got '${text}'`);
  return parts;
}

function intList(text: string | undefined, flag: string, min: number, max: number): number[] | undefined {
  const parts = list(text, flag);
  if (!parts) return undefined;
  const out = parts.map(Number);
  if (out.some((v, i) => !/^\d+$/.test(parts[i]) || v < min || v > max)) {
    throw new UsageError(`${flag} must be a comma-separated list of integers in [${min}, ${max}], got '${text}'`);
  }
  return out;
}

function numOpt(text: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || v < min || v > max) throw new UsageError(`${flag} must be a number in [${min}, ${max}], got '${text}'`);
  return v;
}

function archSpecs(text: string | undefined): string[] | undefined {
  const specs = list(text, '--archs');
  if (!specs) return undefined;
  try {
    parseVariants(specs);
  } catch (err) {
    throw new UsageError(`--archs: ${(err as Error).message}`);
  }
  return specs;
}

// The file limit is 20,000 here: leave room for the sockets' other fds.
const MAX_CONNS = 19_000;

export const benchEchoSubcommand: BenchSubcommand = {
  name: 'echo',
  summary: 'echo servers side by side: req/s, latency, CPU µs per request, memory per connection, ratios to c-epoll and node-net',
  get help() {
    const d = echoDefaults(false);
    const q = echoDefaults(true);
    return `usage: iomux bench echo [--archs LIST] [--conns LIST] [--size B] [--duration S]
                        [--warmup S] [--quick] [--json] [--no-pin] [--quiet]

Runs every architecture × connection count × message size. Each cell starts
a fresh server as a child process (iomux serve --port 0, pinned with taskset
to the first CPU this process may use), pins this process, whose native
threads are the load generator, to the second, and runs the load generator
once on the cell's connections: a warm-up (--warmup seconds, and at least
until the server has accepted every connection, which a thread-per-connection
server at 10,000 connections takes a while to do), then the measured run
while the server process is sampled from /proc. Closed loop, depth 1, every
byte verified.

Per cell: requests/s, p50/p99 latency, the server's CPU µs per request
(user + system / requests answered), server cores used, how busy each CPU
was (other processes included), RSS/PSS/VmSize per connection (peak during
the run − the idle server after the warm-up), threads, context switches per
request; and the ratios of CPU per request, req/s and p99 to c-epoll and to
node-net at the same connection count, taken in this run. c-epoll and
node-net are always run (they are the baselines). On a shared machine
compare the CPU per request and the ratios, not absolute req/s.

A failing architecture (does not start, crashes, nothing connects) is
reported as failed, with the reason; the others still run.

Options:
  --archs LIST      architectures (default: every registered one:
                    ${ARCHS.map((a) => a.name).join(', ')});
                    NAME:BACKEND for archs that take --backend (reactor:poll),
                    NAME:* for each available backend
  --conns LIST      connection counts (default ${d.conns.join(',')}; --quick ${q.conns.join(',')})
  --size B          message size in bytes (default 64)
  --duration S      seconds of the measured run (default ${d.duration}; --quick ${q.duration})
  --warmup S        seconds of warm-up with the same connections (default ${d.warmup}; --quick ${q.warmup})
  --quick           the quick defaults above (well under a minute)
  --json            print one JSON object instead of the tables
  --no-pin          do not pin server and load generator to separate CPUs
  --quiet           no progress on stderr

Example:
  iomux bench echo --archs c-epoll,c-uring,threads,node-net --conns 100,1000 --duration 3
`;
  },
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        archs: { type: 'string' },
        conns: { type: 'string' },
        size: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        quick: { type: 'boolean' },
        json: { type: 'boolean' },
        'no-pin': { type: 'boolean' },
        quiet: { type: 'boolean' },
      },
    });
    const size = numOpt(values.size, '--size', 1, 65536);
    if (size !== undefined && !Number.isInteger(size)) throw new UsageError(`--size must be an integer, got '${values.size}'`);
    const report = await benchEcho({
      archs: archSpecs(values.archs),
      conns: intList(values.conns, '--conns', 1, MAX_CONNS),
      size,
      duration: numOpt(values.duration, '--duration', 0.1, 3600),
      warmup: numOpt(values.warmup, '--warmup', 0, 3600),
      quick: values.quick ?? false,
      pin: !values['no-pin'],
      progress: makeProgress(process.stderr, !values.quiet),
    });
    process.stdout.write(values.json ? JSON.stringify(report) + '\n' : echoMarkdown(report));
    return 0;
  },
};

export const benchC10kSubcommand: BenchSubcommand = {
  name: 'c10k',
  summary: 'ramp to 10,000 connections: connect rate, memory per connection (RSS, PSS, VmSize), threads, p99 with 1% active, what fails first',
  get help() {
    const d = c10kDefaults(false);
    const q = c10kDefaults(true);
    return `usage: iomux bench c10k [--archs LIST] [--steps LIST] [--active-ratio F]
                        [--duration S] [--connect-timeout S] [--quick] [--json]
                        [--no-pin] [--quiet]

Ramps each architecture up to 10,000 connections. One server per arch (iomux
serve, pinned to one CPU; the load generator on the other); at each step the
load generator opens every connection, waits until the server has accepted
them all (at most --connect-timeout), and holds them while a fraction of them
(--active-ratio, default 1%) send 64-byte echo requests. Per step: connect
rate (connections / time until all were connected), memory per connection
(RSS, PSS and VmSize: resident vs virtual, each as (peak − the idle server
before the ramp) / connections), threads, p50/p99 latency of the active
connections, CPU per request.

The ramp stops at the first step where the server died, or not every
connection could be made or kept open; the first step where anything went wrong is
reported with what it was: server crash, connect errors (EMFILE, refused,
timeouts), resets, connections the server closed, active connections never
answered (a thread pool whose workers are held by idle connections),
verification errors. Every step is bounded: connect timeout, run, 2 s
drain, and a watchdog.

Options:
  --archs LIST         architectures (default, where registered:
                       ${C10K_ARCHS.join(', ')});
                       NAME:BACKEND, NAME:* as for bench echo
  --steps LIST         connection counts (default ${d.steps.join(',')}; --quick ${q.steps.join(',')})
  --active-ratio F     fraction of the connections that send (default 0.01)
  --duration S         seconds of traffic per step (default ${d.duration}; --quick ${q.duration})
  --connect-timeout S  seconds allowed for a step's connections (default ${d.connectTimeout}; --quick ${q.connectTimeout})
  --quick              the quick defaults above
  --json               print one JSON object instead of the tables
  --no-pin             do not pin server and load generator to separate CPUs
  --quiet              no progress on stderr

Example:
  iomux bench c10k --archs threads,c-epoll,reactor:select --steps 1000,10000
`;
  },
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        archs: { type: 'string' },
        steps: { type: 'string' },
        'active-ratio': { type: 'string' },
        duration: { type: 'string' },
        'connect-timeout': { type: 'string' },
        quick: { type: 'boolean' },
        json: { type: 'boolean' },
        'no-pin': { type: 'boolean' },
        quiet: { type: 'boolean' },
      },
    });
    const activeRatio = numOpt(values['active-ratio'], '--active-ratio', 0, 1);
    if (activeRatio === 0) throw new UsageError('--active-ratio must be in (0, 1], got 0');
    const report = await benchC10k({
      archs: archSpecs(values.archs),
      steps: intList(values.steps, '--steps', 1, MAX_CONNS),
      activeRatio,
      duration: numOpt(values.duration, '--duration', 0.1, 3600),
      connectTimeout: numOpt(values['connect-timeout'], '--connect-timeout', 1, 600),
      quick: values.quick ?? false,
      pin: !values['no-pin'],
      progress: makeProgress(process.stderr, !values.quiet),
    });
    process.stdout.write(values.json ? JSON.stringify(report) + '\n' : c10kMarkdown(report));
    return 0;
  },
};

const subs = [benchEchoSubcommand, benchC10kSubcommand];

/** Temporary home of `bench echo` and `bench c10k` until `iomux bench` takes them. */
export const benchLabCommand: Command = {
  name: 'bench-lab',
  summary: 'bench echo | bench c10k (the lab benchmarks; to be folded into iomux bench)',
  get help() {
    return `usage: iomux bench-lab <echo|c10k> [options]

${subs.map((s) => `  ${s.name.padEnd(5)} ${s.summary}`).join('\n')}

(In the command lines below, 'iomux bench' is 'iomux bench-lab' for now.)

${subs.map((s) => s.help).join('\n')}`;
  },
  async run(argv) {
    const [name, ...rest] = argv;
    const sub = subs.find((s) => s.name === name);
    if (!sub) throw new UsageError(name === undefined ? 'which benchmark? echo or c10k' : `unknown benchmark '${name}' (echo or c10k)`);
    return sub.run(rest);
  },
};
