#!/usr/bin/env node
'use strict';
require('../dist/cli.js')
  .main(process.argv.slice(2))
  .then((code) => { process.exitCode = code; })
  .catch((err) => { process.stderr.write(`iomux: ${err && err.stack ? err.stack : err}\n`); process.exitCode = 1; });
