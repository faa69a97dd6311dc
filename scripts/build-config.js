#!/usr/bin/env node
// Build-time probes shared by binding.gyp and CMakeLists.txt, so both builds
// decide the same way. Usage: node scripts/build-config.js <question>
//   has-uring      1 when liburing is found by pkg-config (and IOMUX_NO_URING is unset)
//   uring-cflags   compiler flags for liburing
//   uring-libs     the static liburing archive (or -luring when no .a exists)
//   has-kqueue     1 on Linux when IOMUX_KQUEUE=libkqueue and libkqueue is found
//   kqueue-cflags / kqueue-libs
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

function pkg(args) {
  try {
    return execFileSync('pkg-config', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

const linux = process.platform === 'linux';
const hasUring = linux && !process.env.IOMUX_NO_URING && pkg(['--exists', 'liburing']) !== null;
const wantKqueue = linux && process.env.IOMUX_KQUEUE === 'libkqueue';
const hasKqueue = wantKqueue && pkg(['--exists', 'libkqueue']) !== null;
if (wantKqueue && !hasKqueue) {
  process.stderr.write('iomux: IOMUX_KQUEUE=libkqueue but pkg-config cannot find libkqueue; building without kqueue\n');
}

function uringLibs() {
  const dir = pkg(['--variable=libdir', 'liburing']);
  const archive = dir && path.join(dir, 'liburing.a');
  return archive && fs.existsSync(archive) ? archive : '-luring';
}

const answers = {
  'has-uring': () => (hasUring ? '1' : '0'),
  'uring-cflags': () => (hasUring ? pkg(['--cflags', 'liburing']) || '' : ''),
  'uring-libs': () => (hasUring ? uringLibs() : ''),
  'has-kqueue': () => (hasKqueue ? '1' : '0'),
  'kqueue-cflags': () => (hasKqueue ? pkg(['--cflags', 'libkqueue']) || '' : ''),
  // -z nodelete: libkqueue runs a monitor thread of its own; were Node to
  // unload the addon (and with it libkqueue) when the last worker using it
  // exits, that thread would run on in unmapped code.
  'kqueue-libs': () => (hasKqueue ? `${pkg(['--libs', 'libkqueue']) || '-lkqueue'} -Wl,-z,nodelete` : ''),
};

const q = process.argv[2];
if (!answers[q]) {
  process.stderr.write(`usage: build-config.js ${Object.keys(answers).join('|')}\n`);
  process.exit(2);
}
process.stdout.write(answers[q]() + '\n');
