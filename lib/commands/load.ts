import { parseArgs } from 'node:util';
import { FAULT_KINDS, runLoad, type FaultKind, type LoadResult, type LoadProgress } from '../lab/load';
import { ProcessSampler, deriveMetrics, type SamplerReport } from '../lab/metrics';
import { formatHostPort, intFlag, numFlag } from './serve';
import { UsageError, type Command } from './types';

export interface ServerMetrics {
  pid: number;
  samples: number;
  cpu: { userS: number; sysS: number; totalS: number };
  cpuUsPerRequest: number | null;
  /** Server CPU over the run, in cores (1 = one core busy). */
  cores: number;
  rssKb: { baseline: number; peak: number };
  pssKb: { baseline: number | null; peak: number | null };
  rssKbPerConnection: number | null;
  pssKbPerConnection: number | null;
  vmSizeKb: { baseline: number; peak: number };
  threads: { baseline: number; peak: number };
  ctxSwitches: { voluntary: number; involuntary: number };
}

export function serverMetrics(report: SamplerReport, result: LoadResult): ServerMetrics {
  const d = deriveMetrics(report, { requests: result.requests, connections: result.connected });
  return {
    pid: report.pid,
    samples: report.samples,
    cpu: report.cpu,
    cpuUsPerRequest: d.cpuUsPerRequest,
    cores: d.cores,
    rssKb: { baseline: report.first.rssKb, peak: report.peak.rssKb },
    pssKb: { baseline: report.first.pssKb, peak: report.peak.pssKb },
    rssKbPerConnection: d.rssKbPerConnection,
    pssKbPerConnection: d.pssKbPerConnection,
    vmSizeKb: { baseline: report.first.vmSizeKb, peak: report.peak.vmSizeKb },
    threads: { baseline: report.first.threads, peak: report.peak.threads },
    ctxSwitches: report.ctxSwitches,
  };
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const fix = (n: number, d = 1) => n.toFixed(d);
const mib = (kb: number) => `${fix(kb / 1024)} MiB`;

export function describeRun(r: LoadResult): string {
  const mode = r.rate > 0 ? `open loop at ${int(r.rate)} req/s` : 'closed loop';
  const what = r.protocol === 'echo' ? `echo ${r.size} B` : r.workRatio > 0 ? `http (${r.workRatio * 100}% /work?us=${r.workUs})` : 'http GET /';
  const active = r.activeConns !== undefined && r.activeConns < r.conns ? ` (${int(r.activeConns)} active)` : '';
  return `${what} to ${formatHostPort(r.host, r.port)}, ${int(r.conns)} connections${active} from ${r.sources} source address${r.sources > 1 ? 'es' : ''}, depth ${r.depth}, ${mode}, ${r.threads} thread${r.threads > 1 ? 's' : ''}`;
}

export function formatSummary(r: LoadResult, server?: ServerMetrics): string {
  const L = r.latencyUs;
  const lines = [
    `iomux load: ${describeRun(r)}`,
    `  requests     ${int(r.requests)} answered; ${int(r.requestsInWindow)} in ${fix(r.durationS, 2)} s = ${int(r.rps)} req/s${r.cancelled ? ' (cancelled)' : ''}`,
    `  latency µs   p50 ${fix(L.p50)}  p90 ${fix(L.p90)}  p99 ${fix(L.p99)}  p99.9 ${fix(L.p999)}  max ${fix(L.max)}  (mean ${fix(L.mean)})`,
    `  verified     ${int(r.bytesVerified)} bytes, ${int(r.verifyErrors)} verification errors`,
    `  connections  ${int(r.connected)} connected in ${fix(r.connectMs)} ms; ${int(r.connectErrors)} connect errors, ${int(r.resets)} resets, ${int(r.serverCloses)} closed by the server, ${int(r.idleConns)} never answered`,
  ];
  if (r.warmupS > 0) lines.push(`  warm-up      ${fix(r.warmupS, 2)} s before the run: ${int(r.warmupRequests)} requests answered and verified, not measured`);
  if (r.unanswered > 0) lines.push(`  unanswered   ${int(r.unanswered)} requests got no answer`);
  if (r.workRequests > 0) lines.push(`  cpu work     ${int(r.workRequests)} requests asked for ${r.workUs} µs each`);
  const F = r.faults;
  if (F && F.reset + F.halfClose + F.slowRead + F.vanish > 0) {
    lines.push(
      `  faults       ${int(F.reset)} resets, ${int(F.halfClose)} half-closes, ${int(F.slowRead)} slow readers (${int(F.slowBlocked)} with their flood held back), ${int(F.vanish)} vanished; ${int(F.reconnects)} replacement connections`,
      `  healthy      ${int(r.healthyConns)} connections, ${int(r.healthyBytesVerified)} bytes verified, ${int(r.healthyBytesLost)} bytes lost, ${int(r.healthyFailed)} failed; faulty: ${int(F.bytesVerified)} bytes verified, ${int(F.completed)} complete, ${int(F.incomplete)} incomplete`,
    );
  }
  if (r.firstConnectError) lines.push(`  first connect error: ${r.firstConnectError}`);
  if (r.firstError) lines.push(`  first error: ${r.firstError}`);
  if (server) {
    const s = server;
    lines.push(
      `  server pid ${s.pid}: CPU ${fix(s.cpu.totalS, 2)} s (user ${fix(s.cpu.userS, 2)}, sys ${fix(s.cpu.sysS, 2)}) = ${s.cpuUsPerRequest === null ? '-' : fix(s.cpuUsPerRequest, 2)} µs/request, ${fix(s.cores, 2)} cores`,
      `    memory: RSS ${mib(s.rssKb.baseline)} -> ${mib(s.rssKb.peak)}` +
        (s.pssKb.peak !== null && s.pssKb.baseline !== null ? `, PSS ${mib(s.pssKb.baseline)} -> ${mib(s.pssKb.peak)}` : '') +
        (s.rssKbPerConnection !== null ? ` = ${fix(s.rssKbPerConnection)} KiB RSS per connection` : '') +
        `, VmSize ${mib(s.vmSizeKb.peak)}`,
      `    threads ${s.threads.baseline} -> ${s.threads.peak}; context switches ${int(s.ctxSwitches.voluntary)} voluntary, ${int(s.ctxSwitches.involuntary)} involuntary`,
    );
  }
  return lines.join('\n') + '\n';
}

function formatProgress(p: LoadProgress): string {
  return `[${fix(p.elapsedS)} s] ${p.phase}: ${int(p.connected)} connected, ${int(p.requests)} requests, ${int(p.rps)} req/s, ${int(p.errors)} errors\n`;
}

export const loadCommand: Command = {
  name: 'load',
  summary: 'native load generator: verified replies, latency percentiles',
  help: `usage: iomux load --port N [--host H] [--protocol echo|http] [--conns N] [--size B]
                  [--depth D] [--duration S] [--warmup S] [--rate R] [--work-us U --work-ratio F]
                  [--threads N] [--sources N] [--active-ratio F] [--pid PID]
                  [--json] [--quiet]
                  [--fault-ratio F [--faults K,...] [--fault-delay-ms MS]
                   [--fault-stall-ms MS] [--fault-flood-kb KB] [--fault-seed N]]

Drives a lab server (iomux serve, or anything speaking docs/protocols.md)
from native threads, so the generator is not the bottleneck. It opens every
connection first (spread over source addresses 127.0.0.1 .. 127.0.0.N so
10,000+ connections fit the ephemeral port range), then runs for --duration
seconds and waits up to 2 s for the answers still in flight.

Every byte that comes back is verified: echo against the exact bytes sent
(a deterministic pattern per connection), http by parsing the status (200),
Content-Length and the body "Hello, World!". Latency is kept in a log-linear
histogram (0.1 % resolution). Closed loop by default: each connection keeps
--depth requests in flight. With --rate the requests leave on a fixed
schedule and latency counts from the intended send time, so a stalled server
shows as latency instead of as fewer samples (no coordinated omission).

Options:
  --port N        server port (required)
  --host H        server address, IPv4/IPv6 literal (default 127.0.0.1)
  --protocol P    echo (default) or http
  --conns N       connections (default 10)
  --size B        echo: bytes per request (default 64)
  --depth D       requests in flight per connection, i.e. pipelining (default 1)
  --duration S    seconds of measured run (default 5)
  --warmup S      seconds of traffic on the same connections before the measured
                  run: verified, not counted (default 0); with --pid, CPU and
                  context switches are taken over the measured run only
  --rate R        open loop: R requests per second in total (default: closed loop)
  --work-us U     http: the CPU-work request burns U µs in the server ...
  --work-ratio F  ... and is this fraction of the requests (0..1)
  --threads N     generator threads (default 1 on 2 cores, else cores/2, max 8)
  --sources N     source addresses 127.0.0.1..127.0.0.N (default ceil(conns/4000))
  --active-ratio F  only this fraction of the connections (0..1], spread evenly,
                  send requests; the others are opened and held idle (default 1)
  --pid PID       sample the server process during the run: CPU per request,
                  RSS/PSS per connection, threads, context switches
  --fault-ratio F echo: this fraction of the connection slots misbehave. Each
                  connection in one runs for 0..--fault-delay-ms (default
                  1000), then commits a fault, and a new one takes the slot:
  --faults K,...  reset (SO_LINGER 0 close), half-close (every byte must come
                  back, then the server's FIN), slow-read (stops reading for
                  --fault-stall-ms, default 500, while it sends --fault-flood-kb,
                  default 128, then reads it all back), vanish (closes with
                  a reply on its way). Default: all four, taken in turn.
  --fault-seed N  seeds the fault delays (default 1)
  --json          print one JSON object instead of the summary
  --quiet         no progress lines on stderr

Exit status: 0; 1 when a reply failed verification or nothing connected
(with --fault-ratio also when a healthy connection lost bytes or died, or a
half-close or slow reader did not get every byte back); 2 for bad usage.

Examples:
  iomux load --port 8080 --conns 100 --duration 2
  iomux load --port 8080 --protocol http --conns 1000 --depth 4 --json
  iomux load --port 8080 --protocol http --rate 20000 --work-us 200 --work-ratio 0.05
  iomux load --port 8080 --conns 10000 --duration 10 --pid $(pgrep -f 'iomux serve')
  taskset -c 1 iomux load --port 9000 --size 4096 --depth 8 --pid 1234
`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        protocol: { type: 'string' },
        conns: { type: 'string' },
        size: { type: 'string' },
        depth: { type: 'string' },
        duration: { type: 'string' },
        warmup: { type: 'string' },
        rate: { type: 'string' },
        'work-us': { type: 'string' },
        'work-ratio': { type: 'string' },
        threads: { type: 'string' },
        sources: { type: 'string' },
        'active-ratio': { type: 'string' },
        pid: { type: 'string' },
        json: { type: 'boolean' },
        quiet: { type: 'boolean' },
        'fault-ratio': { type: 'string' },
        faults: { type: 'string' },
        'fault-delay-ms': { type: 'string' },
        'fault-stall-ms': { type: 'string' },
        'fault-flood-kb': { type: 'string' },
        'fault-seed': { type: 'string' },
      },
    });
    let faults: FaultKind[] | undefined;
    if (values.faults !== undefined) {
      faults = values.faults.split(',').map((f) => f.trim()) as FaultKind[];
      for (const f of faults) if (!FAULT_KINDS.includes(f)) throw new UsageError(`--faults: unknown fault '${f}' (one of: ${FAULT_KINDS.join(', ')})`);
    }
    const floodKb = intFlag(values['fault-flood-kb'], '--fault-flood-kb', 0, 1 << 20);
    const port = intFlag(values.port, '--port', 1, 65535);
    if (port === undefined) throw new UsageError('--port is required');
    const protocol = values.protocol ?? 'echo';
    if (protocol !== 'echo' && protocol !== 'http') throw new UsageError(`--protocol must be echo or http, got '${protocol}'`);
    const workUs = intFlag(values['work-us'], '--work-us', 0, 10_000_000);
    const workRatio = numFlag(values['work-ratio'], '--work-ratio', 0, 1);
    if ((workUs !== undefined || workRatio !== undefined) && protocol !== 'http') {
      throw new UsageError('--work-us and --work-ratio need --protocol http');
    }
    if ((workRatio ?? 0) > 0 && !workUs) throw new UsageError('--work-ratio needs --work-us');
    const pid = intFlag(values.pid, '--pid', 1, 0x7fffffff);

    let sampler: ProcessSampler | null = null;
    if (pid !== undefined) {
      sampler = new ProcessSampler(pid);
      try {
        sampler.start();
      } catch (err) {
        throw new UsageError(`--pid ${pid}: cannot read /proc/${pid} (${(err as Error).message})`);
      }
    }
    const warmup = numFlag(values.warmup, '--warmup', 0, 86_400);
    let measured: ProcessSampler | null = null;
    let sampledAtEnd = false;
    const ac = new AbortController();
    const onSigint = () => ac.abort();
    process.once('SIGINT', onSigint);
    let result: LoadResult;
    try {
      result = await runLoad({
        host: values.host,
        port,
        protocol,
        conns: intFlag(values.conns, '--conns', 1, 1_000_000),
        size: intFlag(values.size, '--size', 1, 1 << 20),
        depth: intFlag(values.depth, '--depth', 1, 4096),
        duration: numFlag(values.duration, '--duration', 0.01, 86_400),
        warmup,
        rate: numFlag(values.rate, '--rate', 0, 1e8),
        workUs,
        workRatio,
        threads: intFlag(values.threads, '--threads', 1, 256),
        sources: intFlag(values.sources, '--sources', 1, 254),
        activeRatio: numFlag(values['active-ratio'], '--active-ratio', 1e-9, 1),
        faultRatio: numFlag(values['fault-ratio'], '--fault-ratio', 0, 1),
        faults,
        faultDelayMs: intFlag(values['fault-delay-ms'], '--fault-delay-ms', 0, 3_600_000),
        faultStallMs: intFlag(values['fault-stall-ms'], '--fault-stall-ms', 0, 3_600_000),
        faultFloodBytes: floodKb === undefined ? undefined : floodKb * 1024,
        faultSeed: intFlag(values['fault-seed'], '--fault-seed', 0, 0xffffffff),
        signal: ac.signal,
        onProgress: (p) => {
          // The warm-up is over: CPU and context switches count from here.
          if (p.phase === 'run' && pid !== undefined && (warmup ?? 0) > 0 && !measured) {
            measured = new ProcessSampler(pid);
            try {
              measured.start();
            } catch {
              measured = null;
            }
          }
          // The run is over, every connection still open: the server's peak.
          if (p.phase === 'drain' && !sampledAtEnd) {
            sampledAtEnd = true;
            sampler?.sampleNow();
            (measured as ProcessSampler | null)?.sampleNow();
          }
          if (!values.quiet) process.stderr.write(formatProgress(p));
        },
      });
    } catch (err) {
      if (err instanceof RangeError || err instanceof TypeError) throw new UsageError(err.message);
      throw err;
    } finally {
      process.off('SIGINT', onSigint);
    }
    const server = sampler ? serverMetrics(sampler.stop(), result) : undefined;
    const m = measured as ProcessSampler | null;
    if (server && m) {
      // Memory against the idle server before the load; CPU over the measured run.
      const w = serverMetrics(m.stop(), result);
      Object.assign(server, { cpu: w.cpu, cpuUsPerRequest: w.cpuUsPerRequest, cores: w.cores, ctxSwitches: w.ctxSwitches });
    }
    if (values.json) {
      process.stdout.write(JSON.stringify(server ? { ...result, server } : result) + '\n');
    } else {
      process.stdout.write(formatSummary(result, server));
    }
    const f = result.faults;
    // With faults injected, a healthy connection that lost bytes or died, or a
    // half-close/slow reader that did not get its bytes back, is a failure too.
    const faulted = (numFlag(values['fault-ratio'], '--fault-ratio', 0, 1) ?? 0) > 0;
    const lost = faulted && (result.healthyBytesLost > 0 || result.healthyFailed > 0 || f.incomplete > 0);
    return result.verifyErrors > 0 || result.connected === 0 || lost ? 1 : 0;
  },
};
