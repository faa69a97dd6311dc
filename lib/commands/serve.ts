import * as net from 'node:net';
import { parseArgs } from 'node:util';
import { ARCHS, findArch } from '../arch';
import type { RunningServer, ServeOptionName, ServeOptions } from '../arch';
import { raiseFileLimit } from '../lab/load';
import { table } from './backends';
import { UsageError, type Command } from './types';

const OPTION_FLAGS: Record<ServeOptionName, string> = {
  backend: '--backend',
  mode: '--mode',
  threads: '--threads',
  workers: '--workers',
  stackKb: '--stack-kb',
};

/** How long after --grace-ms a server that has not stopped gets before it kills
 * itself (IOMUX_SERVE_BACKSTOP_MS overrides it, for the test of that path). */
const STOP_BACKSTOP_MS = Number(process.env.IOMUX_SERVE_BACKSTOP_MS) > 0 ? Number(process.env.IOMUX_SERVE_BACKSTOP_MS) : 15_000;

/** An integer option: undefined when absent, UsageError when malformed. */
export function intFlag(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value.trim())) throw new UsageError(`${flag} must be an integer, got '${value}'`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`${flag} must be in [${min}, ${max}], got ${n}`);
  return n;
}

/** A decimal option: undefined when absent, UsageError when malformed. */
export function numFlag(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${flag} must be a number, got '${value}'`);
  if (n < min || n > max) throw new UsageError(`${flag} must be in [${min}, ${max}], got ${n}`);
  return n;
}

export function formatHostPort(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

function archList(): string {
  const width = Math.max(13, ...ARCHS.map((a) => a.name.length));
  return ARCHS.map((a) => `  ${a.name.padEnd(width)} ${a.summary}`).join('\n');
}

/** The counters an arch keeps besides accepted/active/requests, as "; key=value ...". */
function extraStats(s: Record<string, number | undefined>): string {
  const rest = Object.entries(s).filter(([k, v]) => k !== 'accepted' && k !== 'active' && k !== 'requests' && typeof v === 'number');
  return rest.length > 0 ? `; ${rest.map(([k, v]) => `${k}=${v}`).join(' ')}` : '';
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run one lab server architecture until SIGINT/SIGTERM',
  get help() {
    return `usage: iomux serve --arch ARCH [--protocol echo|http] [--host H] [--port N]
                   [--backend B] [--mode M] [--threads N] [--workers N] [--stack-kb N]

Starts one server of the lab and runs it until SIGINT or SIGTERM, then stops
accepting, lets in-flight replies finish, and exits 0. The first line on
stdout is exactly

  listening HOST:PORT pid=PID

so scripts can read the port (useful with --port 0) and the pid to sample
(iomux load --pid PID). Every server speaks the same protocols
(docs/protocols.md): echo, or minimal HTTP/1.1 with keep-alive and
pipelining: GET / answers "Hello, World!", GET /work?us=N burns N µs of CPU
first, other paths 404, garbage 400 then close.

Architectures:
${archList()}

Options:
  --arch A        the architecture (required); --list shows which work here
  --protocol P    echo (default) or http
  --host H        address to bind, an IPv4 or IPv6 literal (default 127.0.0.1)
  --port N        port (default 8080; 0 = any free port)
  --backend B     reactor archs: select | poll | epoll | kqueue | io_uring
  --mode M        reactor archs: level | edge
  --threads N     thread-pool: pool size (default 128);
                  c-epoll, c-uring: reactor threads on SO_REUSEPORT (default 1)
  --workers N     archs with worker_threads: how many
  --stack-kb N    threads, thread-pool: stack per thread in KiB (min 16)
  --grace-ms N    on shutdown, time allowed for in-flight replies (default 2000);
                  a server still running ${STOP_BACKSTOP_MS / 1000} s after that kills itself (SIGKILL)
  --list          print the architectures, whether they work here and why not

Examples:
  iomux serve --arch c-epoll --protocol http --port 8080
  iomux serve --arch threads --stack-kb 64 --port 0
  taskset -c 0 iomux serve --arch c-uring --protocol http --port 9000 &
  taskset -c 1 iomux load --port 9000 --protocol http --conns 100 --duration 2
  wrk -c 100 -d 2 http://127.0.0.1:9000/
`;
  },
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        arch: { type: 'string' },
        protocol: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        backend: { type: 'string' },
        mode: { type: 'string' },
        threads: { type: 'string' },
        workers: { type: 'string' },
        'stack-kb': { type: 'string' },
        'grace-ms': { type: 'string' },
        list: { type: 'boolean' },
      },
    });
    if (values.list) {
      const rows = [['arch', 'available', 'options', 'reason']];
      for (const a of ARCHS) {
        const av = a.availability();
        rows.push([a.name, av.available ? 'yes' : 'no', a.options.map((o) => OPTION_FLAGS[o]).join(' ') || '-', av.reason ?? '']);
      }
      process.stdout.write(table(rows));
      return 0;
    }
    if (!values.arch) throw new UsageError(`--arch is required (one of: ${ARCHS.map((a) => a.name).join(', ')})`);
    const arch = findArch(values.arch);
    if (!arch) throw new UsageError(`unknown --arch '${values.arch}' (one of: ${ARCHS.map((a) => a.name).join(', ')})`);
    const protocol = values.protocol ?? 'echo';
    if (protocol !== 'echo' && protocol !== 'http') throw new UsageError(`--protocol must be echo or http, got '${protocol}'`);
    const host = values.host ?? '127.0.0.1';
    if (net.isIP(host) === 0) throw new UsageError(`--host must be an IPv4 or IPv6 literal, got '${host}'`);
    const options: ServeOptions = {
      protocol,
      host,
      port: intFlag(values.port, '--port', 0, 65535) ?? 8080,
      backend: values.backend,
      mode: values.mode,
      threads: intFlag(values.threads, '--threads', 1, 100_000),
      workers: intFlag(values.workers, '--workers', 1, 1024),
      stackKb: intFlag(values['stack-kb'], '--stack-kb', 16, 1 << 20),
      graceMs: intFlag(values['grace-ms'], '--grace-ms', 0, 3_600_000),
    };
    for (const [name, flag] of Object.entries(OPTION_FLAGS) as Array<[ServeOptionName, string]>) {
      if (options[name] !== undefined && !arch.options.includes(name)) {
        const takes = arch.options.map((o) => OPTION_FLAGS[o]).join(', ') || 'none of them';
        throw new UsageError(`--arch ${arch.name} does not take ${flag} (it takes ${takes})`);
      }
    }
    const av = arch.availability();
    if (!av.available) {
      process.stderr.write(`iomux serve: ${arch.name} is not available here: ${av.reason ?? 'unknown reason'}\n`);
      return 1;
    }
    raiseFileLimit();

    let server: RunningServer;
    try {
      server = await arch.start(options);
    } catch (err) {
      const e = err as Error & { code?: string };
      process.stderr.write(`iomux serve: ${arch.name} could not start: ${e.message}\n`);
      return 1;
    }
    const started = performance.now();

    // Native servers run on their own threads: keep Node's loop alive until stopped.
    const keepAlive = setInterval(() => {}, 1 << 30);
    let signalled: string | null = null;
    const stopped = new Promise<void>((resolve) => {
      const onSignal = (sig: NodeJS.Signals) => {
        if (signalled) {
          process.stderr.write(`iomux serve: second ${sig}, exiting now\n`);
          process.exit(1);
        }
        signalled = sig;
        // Backstop: a server whose threads do not stop (a worker blocked in a
        // native call cannot be terminated, and process.exit() would join it)
        // must not outlive its signal. Say so and die by SIGKILL.
        const limitMs = (options.graceMs ?? 2000) + STOP_BACKSTOP_MS;
        setTimeout(() => {
          process.stderr.write(
            `iomux serve: ${arch.name} did not stop within ${limitMs} ms of ${sig}` +
              ` (grace ${options.graceMs ?? 2000} ms): killing the process (SIGKILL)\n`,
          );
          process.kill(process.pid, 'SIGKILL');
        }, limitMs).unref();
        server.close().then(resolve, (err) => {
          process.stderr.write(`iomux serve: close failed: ${(err as Error).message}\n`);
          resolve();
        });
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
    // Only now: whoever reads this line may signal us at once.
    process.stdout.write(`listening ${formatHostPort(server.host, server.port)} pid=${process.pid}\n`);
    if (server.run) await server.run();
    else await stopped;
    clearInterval(keepAlive);
    const s = server.stats?.();
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    process.stderr.write(
      `iomux serve: ${signalled ?? 'stopped'}: ${arch.name} stopped after ${secs} s` +
        (s ? `: ${s.accepted ?? 0} connections accepted, ${s.requests ?? 0} ${protocol === 'http' ? 'requests answered' : 'reads echoed'}` : '') +
        (s ? extraStats(s) : '') +
        '\n',
    );
    // Nothing should be left, but never linger after a clean stop.
    setTimeout(() => process.exit(0), 2000).unref();
    return 0;
  },
};
