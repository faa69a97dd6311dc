#!/usr/bin/env node
// npm run test:asan [-- vitest args]: builds the addon with AddressSanitizer and
// UndefinedBehaviorSanitizer through CMakeLists.txt (cmake-js, IOMUX_SANITIZE=ON,
// in build-asan/) when a source is newer than it, then runs the vitest suite
// with that addon (IOMUX_ADDON) in every test process and child process.
// Node itself is not instrumented, so the ASan runtime is preloaded
// (LD_PRELOAD) ahead of it. Options and every suppression: sanitizers/README.md.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const addon = path.join(root, 'build-asan', 'Release', 'iomux.node');

function newestSource() {
  const files = ['CMakeLists.txt', 'binding.gyp'].map((f) => path.join(root, f));
  for (const f of fs.readdirSync(path.join(root, 'native'), { recursive: true })) files.push(path.join(root, 'native', String(f)));
  return Math.max(...files.map((f) => fs.statSync(f).mtimeMs));
}

if (!fs.existsSync(addon) || fs.statSync(addon).mtimeMs < newestSource() || process.env.IOMUX_ASAN_REBUILD) {
  console.log('test:asan: building build-asan/ (cmake-js, -DIOMUX_SANITIZE=ON)');
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  // cmake-js takes Node's headers from npm's nodedir (set when run by npm);
  // run directly, point it at the running node's own headers, never a download.
  const buildEnv = { ...process.env };
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (!buildEnv.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node.h'))) buildEnv.npm_config_nodedir = prefix;
  const r = spawnSync(process.execPath, [cmakeJs, 'compile', '--out', 'build-asan', '--CDIOMUX_SANITIZE=ON'], { cwd: root, env: buildEnv, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function runtime(lib) {
  const p = execFileSync('g++', [`-print-file-name=${lib}`], { encoding: 'utf8' }).trim();
  if (!path.isAbsolute(p) || !fs.existsSync(p)) {
    console.error(`test:asan: the compiler does not know ${lib} (install the sanitizer runtime, e.g. libasan8)`);
    process.exit(1);
  }
  return fs.realpathSync(p);
}

const supp = path.join(root, 'sanitizers');
const env = {
  ...process.env,
  IOMUX_ADDON: addon,
  IOMUX_SANITIZED: '1',
  LD_PRELOAD: [runtime('libasan.so'), process.env.LD_PRELOAD].filter(Boolean).join(':'),
  ASAN_OPTIONS: [
    'detect_leaks=0', // sanitizers/README.md: V8/Node keep memory to exit; leaks are tested by test/leaks.test.ts
    'halt_on_error=1',
    'abort_on_error=1', // a finding kills the process with SIGABRT: a test cannot miss it
    `suppressions=${path.join(supp, 'asan.supp')}`,
    process.env.ASAN_OPTIONS,
  ].filter(Boolean).join(':'),
  UBSAN_OPTIONS: [
    'halt_on_error=1',
    'abort_on_error=1',
    'print_stacktrace=1',
    `suppressions=${path.join(supp, 'ubsan.supp')}`,
    process.env.UBSAN_OPTIONS,
  ].filter(Boolean).join(':'),
};

const vitest = require.resolve('vitest/vitest.mjs');
const extra = process.argv.slice(2);
let r = spawnSync(process.execPath, [vitest, 'run', ...extra], { cwd: root, env, stdio: 'inherit' });
// The machine-wide tests (test/isolated/) run alone afterwards, as in npm test.
if (r.status === 0 && extra.length === 0) {
  r = spawnSync(process.execPath, [vitest, 'run', '-c', 'vitest.isolated.config.ts'], { cwd: root, env, stdio: 'inherit' });
}
process.exit(r.status ?? (r.signal ? 1 : 0));
