#!/usr/bin/env node
// `npm run prebuild`: builds the committed prebuild for this platform with
// prebuildify (Node-API, stripped) and records beside it a hash of the native
// sources it was built from, so test/prebuild.test.ts fails once native/,
// binding.gyp or scripts/build-config.js change and nobody rebuilt it.
//
// On Linux it refuses to build a prebuild that would be wrong for users:
// io_uring compiled out (no liburing found), liburing linked dynamically (no
// liburing.a), or libkqueue linked in (IOMUX_KQUEUE set).
//
//   node scripts/prebuild.js           build, check, write the hash
//   node scripts/prebuild.js --hash    only rewrite the hash (no build)
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const HASH_FILE = 'sources.json';

// The files the native build reads: every file under native/, binding.gyp and
// the build-config probe. Sorted, '/'-separated, so the hash is the same on
// every machine.
function sourceFiles() {
  const files = fs
    .readdirSync(path.join(root, 'native'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath ?? e.path, e.name)).split(path.sep).join('/'));
  files.push('binding.gyp', 'scripts/build-config.js');
  return files.sort();
}

function sha256(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/** { combined, files: { relPath: sha256 } } of the current native sources. */
function hashSources() {
  const files = {};
  const all = crypto.createHash('sha256');
  for (const rel of sourceFiles()) {
    const h = sha256(fs.readFileSync(path.join(root, rel)));
    files[rel] = h;
    all.update(`${rel}\0${h}\n`);
  }
  return { combined: all.digest('hex'), files };
}

function fail(msg) {
  process.stderr.write(`prebuild: ${msg}\n`);
  process.exit(1);
}

function config(q) {
  return execFileSync(process.execPath, [path.join(__dirname, 'build-config.js'), q], { encoding: 'utf8' }).trim();
}

function writeHash(nodeFile) {
  const record = {
    comment: 'sha256 of the native sources this prebuild was built from; written by npm run prebuild, checked by test/prebuild.test.ts',
    ...hashSources(),
    binary: path.basename(nodeFile),
    binarySha256: sha256(fs.readFileSync(nodeFile)),
  };
  fs.writeFileSync(path.join(dir, HASH_FILE), JSON.stringify(record, null, 2) + '\n');
  process.stdout.write(`prebuild: wrote ${path.relative(root, path.join(dir, HASH_FILE))} (${record.combined.slice(0, 12)})\n`);
}

function findNodeFile() {
  const found = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.node')) : [];
  if (found.length !== 1) fail(`expected one .node file in ${dir}, found ${found.length}`);
  return path.join(dir, found[0]);
}

function main() {
  if (process.argv.includes('--hash')) {
    writeHash(findNodeFile());
    return;
  }
  if (process.platform === 'linux') {
    if (process.env.IOMUX_KQUEUE) fail('unset IOMUX_KQUEUE: a prebuild must not depend on libkqueue');
    if (process.env.IOMUX_NO_URING) fail('unset IOMUX_NO_URING: the Linux prebuild ships io_uring');
    if (config('has-uring') !== '1') fail('liburing not found by pkg-config: install liburing-dev (the prebuild ships io_uring)');
    const libs = config('uring-libs');
    if (!libs.endsWith('.a')) fail(`liburing would be linked dynamically (${libs}): the static liburing.a is needed`);
  }
  // Old prebuilds go, so node-gyp-build can never pick a stale one.
  if (fs.existsSync(dir)) {
    for (const f of fs.readdirSync(dir)) fs.rmSync(path.join(dir, f), { recursive: true });
  }
  // The running node's version as target: node-gyp then uses the headers it
  // already has (npm's nodedir, or its cache) instead of fetching another
  // version's; a Node-API build runs on every later Node anyway.
  const bin = path.join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'prebuildify.cmd' : 'prebuildify');
  const args = ['--napi', '--strip', '--target', process.versions.node];
  process.stdout.write(`prebuild: prebuildify ${args.join(' ')}\n`);
  const r = spawnSync(bin, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) fail(`prebuildify exited with ${r.status ?? r.signal}`);
  const nodeFile = findNodeFile();
  if (process.platform === 'linux') {
    const bytes = fs.readFileSync(nodeFile);
    for (const lib of ['liburing.so', 'libkqueue.so']) {
      if (bytes.includes(Buffer.from(lib))) fail(`${path.basename(nodeFile)} depends on ${lib}`);
    }
  }
  writeHash(nodeFile);
}

module.exports = { hashSources, sourceFiles, HASH_FILE };

if (require.main === module) main();
