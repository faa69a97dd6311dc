import { parseArgs } from 'node:util';
import { backends } from '../poller';
import type { Command } from './types';

export const backendsCommand: Command = {
  name: 'backends',
  summary: 'which multiplexers work on this machine, why not, and their modes',
  help: `usage: iomux backends [--json]

Probes every backend (select, poll, epoll, kqueue, io_uring) now and prints
whether it is available here, the reason when it is not (compiled out, not
this OS, ENOSYS, EPERM from seccomp, kernel.io_uring_disabled), and how each
registration mode is provided: native, emulated or unsupported.

  --json   print the array [{name, available, reason?, modes}] as JSON
`,
  async run(argv) {
    const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' } }, strict: true });
    const list = backends();
    if (values.json) {
      process.stdout.write(JSON.stringify(list, null, 2) + '\n');
      return 0;
    }
    const rows = [['backend', 'available', 'level', 'edge', 'oneshot', 'exclusive', 'reason']];
    for (const b of list) {
      rows.push([b.name, b.available ? 'yes' : 'no', b.modes.level, b.modes.edge, b.modes.oneshot, b.modes.exclusive, b.reason ?? '']);
    }
    process.stdout.write(table(rows));
    return 0;
  },
};

/** Left-aligned plain-text table; the last column is not padded. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n') + '\n';
}
