// Lets a plain `node` child process or worker thread load the TypeScript
// sources (lib/*.ts, test/children/*.ts) directly: node -r <this file> x.ts.
// The tests that must crash, exit or run under --expose-gc use it, so they
// always test the current sources, never a stale dist/.
'use strict';
const fs = require('node:fs');
const { transformSync } = require('esbuild');

require.extensions['.ts'] = function compileTs(module, filename) {
  const source = fs.readFileSync(filename, 'utf8');
  const { code } = transformSync(source, {
    loader: 'ts',
    format: 'cjs',
    target: 'node20',
    sourcefile: filename,
    sourcemap: 'inline',
  });
  module._compile(code, filename);
};
