import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { SECTION_NAMES, reportCommandLine, runReport } from '../bench/report';
import { makeProgress } from '../bench/progress';
import { num } from '../bench/lab-run';
import { UsageError, type Command } from './types';

export const reportCommand: Command = {
  name: 'report',
  summary: 'run every benchmark and the claims: results.json, report.md and SVG charts',
  help: `usage: iomux report [--out DIR] [--quick] [--json] [--sections LIST] [--quiet]

Runs every section on this machine, one after the other:

  backends   which multiplexers work here (iomux backends)
  syscalls   the cost of a call from C and from JS (iomux bench syscalls)
  dispatch   libevent's bench.c on every backend (iomux bench dispatch)
  echo       every architecture under echo load (iomux bench echo)
  c10k       ramping each architecture to 10,000 connections (iomux bench c10k)
  verify     the claims of the threads vs event-driven story (iomux verify)

then judges the project's performance targets from the figures of this run,
and writes into DIR:

  results.json  everything measured, per section, with the machine and the
                load it ran under
  report.md     the tables, the machine (CPU, kernel, mitigations from
                /sys/devices/system/cpu/vulnerabilities, load average), the
                targets met / missed, the claims and their verdicts
  *.svg         charts: wait cost vs idle fds, dispatch cost vs n per backend,
                CPU µs per request per architecture, memory per connection,
                latency under CPU work, syscalls per request

A section that fails is recorded as failed with its error; the others still
run. Progress goes to stderr: a status line on a terminal, plain lines
otherwise.

  --out DIR        where to write (default ./iomux-report)
  --quick          shorter runs: about 3 minutes on 2 cores
  --json           also print results.json on stdout (one JSON object)
  --sections LIST  only these sections (comma-separated, in the order above)
  --quiet          no progress

Examples:
  npx iomux report --quick
  iomux report --out /tmp/r --sections syscalls,dispatch
`,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        out: { type: 'string' },
        quick: { type: 'boolean' },
        json: { type: 'boolean' },
        tiny: { type: 'boolean' }, // hidden: tiny sizes, for tests
        sections: { type: 'string' },
        quiet: { type: 'boolean' },
      },
    });
    const outDir = values.out ?? 'iomux-report';
    if (outDir.trim() === '') throw new UsageError('--out must name a directory');
    let only: string[] | undefined;
    if (values.sections !== undefined) {
      only = values.sections.split(',').map((s) => s.trim());
      for (const n of only) if (!(SECTION_NAMES as readonly string[]).includes(n)) throw new UsageError(`--sections: unknown section '${n}' (one of: ${SECTION_NAMES.join(', ')})`);
    }
    const quick = values.quick ?? false;
    const tiny = values.tiny ?? false;
    const progress = makeProgress(process.stderr, !values.quiet);
    const r = await runReport({ outDir, quick, tiny, only, progress, command: reportCommandLine({ outDir, quick, tiny, only }) });
    if (values.json) {
      process.stdout.write(JSON.stringify(r) + '\n');
    } else {
      const failed = r.sections.filter((s) => s.status === 'failed');
      const met = r.targets.filter((t) => t.verdict === 'met').length;
      const missed = r.targets.filter((t) => t.verdict === 'missed').length;
      process.stdout.write(
        `iomux report: ${r.sections.length - failed.length} of ${r.sections.length} sections in ${num(r.elapsedS, 0)} s` +
          (failed.length ? ` (failed: ${failed.map((s) => s.name).join(', ')})` : '') +
          `; targets: ${met} met, ${missed} missed, ${r.targets.length - met - missed} not measured\n` +
          `  ${path.join(outDir, 'report.md')}\n  ${path.join(outDir, 'results.json')}\n` +
          r.sections
            .flatMap((s) => s.charts)
            .map((c) => `  ${path.join(outDir, c.file)}\n`)
            .join(''),
      );
    }
    return 0;
  },
};
