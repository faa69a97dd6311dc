// `iomux <command>`: the command table. Each command lives in lib/commands/.
import { backendsCommand } from './commands/backends';
import { probeCommand } from './commands/probe';
import { serveCommand } from './commands/serve';
import { loadCommand } from './commands/load';
import { benchCommand } from './commands/bench';
import { UsageError, type Command } from './commands/types';
import { benchLabCommand } from './commands/bench-lab';
import { verifyCommand } from './commands/verify';
import { reportCommand } from './commands/report';

const commands: Command[] = [
  backendsCommand,
  serveCommand,
  loadCommand,
  benchCommand,
  probeCommand,
  benchLabCommand,
  verifyCommand,
  reportCommand,
];

function usage(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return `usage: iomux <command> [options]

iomux drives select, poll, epoll, kqueue and io_uring directly and measures
what they cost. Commands:

${commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run 'iomux <command> --help' for the options of one command.
`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const target = name === 'help' && rest[0] ? commands.find((c) => c.name === rest[0]) : undefined;
    process.stdout.write(target ? target.help : usage());
    return 0;
  }
  if (name === '--version' || name === '-v') {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    process.stdout.write(require('../package.json').version + '\n');
    return 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    process.stderr.write(`iomux: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(cmd.help);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (err instanceof UsageError || (e.code && e.code.startsWith('ERR_PARSE_ARGS'))) {
      process.stderr.write(`iomux ${name}: ${e.message}\nRun 'iomux ${name} --help' for usage.\n`);
      return 2;
    }
    throw err;
  }
}
