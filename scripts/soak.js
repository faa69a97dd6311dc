#!/usr/bin/env node
// npm run soak -- [--arch reactor|proactor|both] [--conns N] [--duration S]
//                 [--fault-ratio F] [--faults reset,half-close,slow-read,vanish]
//                 [--fault-delay-ms MS] [--seed N] [--json FILE]
// Soak with faults (lib/lab/soak.ts): `iomux serve --arch reactor --backend
// epoll` and `--arch proactor`, each in its own process, under N echo
// connections for S seconds while a fraction of the clients reset, half-close,
// stall reading or vanish. Exit status 0 when every arch passed: no byte lost
// or corrupted on a healthy connection, every half-close and slow reader got
// its bytes back, the server never exited and its fd count came back to its
// baseline. Needs the build (npm run build:ts).
'use strict';
const fs = require('node:fs');
const { parseArgs } = require('node:util');
const { runSoak, formatSoak } = require('../dist/lab/soak.js');

const USAGE = `usage: npm run soak -- [--arch reactor|proactor|both] [--conns N] [--duration S]
       [--fault-ratio F] [--faults K,...] [--fault-delay-ms MS] [--seed N] [--json FILE]
defaults: --arch both --conns 200 --duration 5 --fault-ratio 0.05, all four faults;
full size: --conns 10000 --duration 60`;

function num(v, name, min, max, dflt) {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    console.error(`soak: ${name} must be a number in [${min}, ${max}], got '${v}'\n${USAGE}`);
    process.exit(2);
  }
  return n;
}

async function main() {
  let values;
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      strict: true,
      options: {
        arch: { type: 'string' },
        conns: { type: 'string' },
        duration: { type: 'string' },
        'fault-ratio': { type: 'string' },
        faults: { type: 'string' },
        'fault-delay-ms': { type: 'string' },
        seed: { type: 'string' },
        json: { type: 'string' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    console.error(`soak: ${err.message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const arch = values.arch ?? 'both';
  if (!['reactor', 'proactor', 'both'].includes(arch)) {
    console.error(`soak: --arch must be reactor, proactor or both, got '${arch}'\n${USAGE}`);
    return 2;
  }
  const opts = {
    conns: num(values.conns, '--conns', 1, 19000, 200),
    duration: num(values.duration, '--duration', 0.1, 3600, 5),
    faultRatio: num(values['fault-ratio'], '--fault-ratio', 0, 1, 0.05),
    faults: values.faults ? values.faults.split(',').map((s) => s.trim()) : undefined,
    faultDelayMs: values['fault-delay-ms'] === undefined ? undefined : num(values['fault-delay-ms'], '--fault-delay-ms', 0, 3600000),
    seed: num(values.seed, '--seed', 0, 0xffffffff, 1),
    log: (line) => process.stderr.write(line + '\n'),
  };
  let failed = 0;
  for (const a of arch === 'both' ? ['reactor', 'proactor'] : [arch]) {
    const report = await runSoak({ ...opts, arch: a });
    console.log(formatSoak(report));
    if (values.json) fs.appendFileSync(values.json, JSON.stringify(report) + '\n');
    if (report.problems.length > 0) failed++;
  }
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`soak: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
