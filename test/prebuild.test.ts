// The committed prebuild: built from the current native sources, and enough on
// its own: the packed tarball installs with --ignore-scripts (no compiler runs)
// and loads in a fresh node process with io_uring compiled in.
import { afterAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { backends } from '../lib/index';

const root = path.join(__dirname, '..');
const platformDir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
const { hashSources, HASH_FILE } = createRequire(__filename)('../scripts/prebuild.js');

// Only linux-x64 has a committed prebuild so far.
const committed = process.platform === 'linux' && process.arch === 'x64';
if (!committed) console.log(`prebuild tests skipped: no committed prebuild for ${process.platform}-${process.arch}`);

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}
// Asynchronous, so the vitest worker stays responsive while npm runs.
function run(cmd: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { ...options, encoding: 'utf8', maxBuffer: 16 << 20, timeout: 100_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: unknown }).code ?? 1) : 0;
      resolve({ status: typeof code === 'number' ? code : 1, stdout, stderr: stderr || (err ? String(err) : '') });
    });
  });
}
const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

function nodeFiles(): string[] {
  return fs.existsSync(platformDir) ? fs.readdirSync(platformDir).filter((f) => f.endsWith('.node')) : [];
}

describe.skipIf(!committed)('committed prebuild', () => {
  it('was built from the current native sources (else: npm run prebuild, commit prebuilds/)', () => {
    const file = path.join(platformDir, HASH_FILE);
    expect(fs.existsSync(file), `${file} missing: run npm run prebuild`).toBe(true);
    const recorded = JSON.parse(fs.readFileSync(file, 'utf8'));
    const now = hashSources();
    const names = new Set([...Object.keys(recorded.files), ...Object.keys(now.files)]);
    const changed = [...names].filter((f) => recorded.files[f] !== now.files[f]).sort();
    expect(changed, `native sources changed since the prebuild: ${changed.join(', ')}; run npm run prebuild`).toEqual([]);
    expect(now.combined).toBe(recorded.combined);
  });

  it('is the binary the hash was recorded for, and the only one', () => {
    const recorded = JSON.parse(fs.readFileSync(path.join(platformDir, HASH_FILE), 'utf8'));
    expect(nodeFiles()).toEqual([recorded.binary]);
    const digest = crypto
      .createHash('sha256')
      .update(fs.readFileSync(path.join(platformDir, recorded.binary)))
      .digest('hex');
    expect(digest).toBe(recorded.binarySha256);
  });

  it('links liburing statically (no liburing.so or libkqueue.so dependency)', () => {
    const bytes = fs.readFileSync(path.join(platformDir, nodeFiles()[0]));
    expect(bytes.includes(Buffer.from('liburing.so'))).toBe(false);
    expect(bytes.includes(Buffer.from('libkqueue.so'))).toBe(false);
    // The io_uring code is in it: its reason strings are compiled in.
    expect(bytes.includes(Buffer.from('io_uring_setup: EPERM'))).toBe(true);
  });
});

interface Status {
  name: string;
  available: boolean;
  reason?: string;
}

describe.skipIf(!committed)('packed tarball', () => {
  it('installs with --ignore-scripts and loads the prebuild in a fresh process', async () => {
    expect(fs.existsSync(path.join(root, 'dist', 'index.js')), 'dist/ missing: npm run build:ts').toBe(true);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'iomux-pack-'));
    tmpDirs.push(tmp);
    // --ignore-scripts: pack what is built; prepare (tsc) rewriting dist/
    // could race with other test files reading it.
    const pack = await run(npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: root });
    expect(pack.status, pack.stderr).toBe(0);
    const packed = JSON.parse(pack.stdout);
    const files: string[] = packed[0].files.map((f: { path: string }) => f.path);
    for (const want of ['package.json', 'bin/iomux.js', 'dist/index.js', 'dist/index.mjs', 'dist/index.d.ts',
      'binding.gyp', 'native/backend.h', 'scripts/build-config.js', `prebuilds/linux-x64/${nodeFiles()[0]}`]) {
      expect(files, `tarball lacks ${want}`).toContain(want);
    }
    for (const f of files) expect(f).not.toMatch(/^(build|node_modules|test|docker)\//);

    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
    const tgz = path.join(tmp, packed[0].filename);
    const install = (extra: string[]) =>
      run(npm, ['install', '--ignore-scripts', '--no-audit', '--no-fund', ...extra, tgz], { cwd: app });
    // Offline from the npm cache when it holds node-gyp-build and
    // node-addon-api with their metadata (`npm cache add`, as the Dockerfile
    // does; npm ci alone caches only the tarballs); else from the registry.
    let r = await install(['--offline']);
    if (r.status !== 0) {
      const why = r.stderr.split('\n').find((l) => /ENOTCACHED|error code/.test(l)) ?? r.stderr.trim().split('\n')[0];
      console.log(`offline install failed (${why}); installing from the registry`);
      r = await install(['--prefer-offline', '--fetch-retries=1', '--fetch-timeout=30000']);
    }
    expect(r.status, r.stderr).toBe(0);
    const pkgDir = path.join(app, 'node_modules', 'iomux');
    expect(fs.existsSync(path.join(pkgDir, 'build')), 'install must not have compiled').toBe(false);

    const env = { ...process.env };
    delete env.IOMUX_ADDON;
    const probe = `
      const i = require('iomux');
      const addon = require('node-gyp-build').path(require('path').dirname(require.resolve('iomux/package.json')));
      console.log(JSON.stringify({ addon, backends: i.backends() }));`;
    const cjs = await run(process.execPath, ['-e', probe], { cwd: app, env });
    expect(cjs.status, cjs.stderr).toBe(0);
    const got = JSON.parse(cjs.stdout) as { addon: string; backends: Status[] };
    expect(got.addon.startsWith(path.join(pkgDir, 'prebuilds', 'linux-x64') + path.sep)).toBe(true);
    const uring = got.backends.find((b) => b.name === 'io_uring')!;
    expect(uring.reason ?? '').not.toMatch(/compiled out/);
    expect(got.backends.find((b) => b.name === 'epoll')!.available).toBe(true);

    // io_uring: available whenever this machine allows it. The repository's
    // own build is the witness (it runs the same setup probe); where io_uring
    // is denied (the seccomp run of npm run test:docker) both must say why.
    const local: Status[] = backends();
    const localUring = local.find((b) => b.name === 'io_uring')!;
    if (/compiled out/.test(localUring.reason ?? '')) {
      console.log('the local build has io_uring compiled out: io_uring availability of the prebuild not compared');
    } else {
      expect(uring.available, uring.reason).toBe(localUring.available);
      if (!uring.available) expect(uring.reason).toBe(localUring.reason);
    }
    console.log(`prebuild in a clean install: io_uring ${uring.available ? 'available' : `unavailable: ${uring.reason}`}`);

    // The ESM entry point and the CLI of the installed package work too.
    const esm = await run(process.execPath, ['--input-type=module', '-e',
      "import { backends } from 'iomux'; console.log(backends().length);"], { cwd: app, env });
    expect(esm.status, esm.stderr).toBe(0);
    expect(Number(esm.stdout.trim())).toBe(got.backends.length);
    const cli = await run(process.execPath, [path.join(app, 'node_modules', '.bin', 'iomux'), 'backends', '--json'], { cwd: app, env });
    expect(cli.status, cli.stderr).toBe(0);
    expect((JSON.parse(cli.stdout) as Status[]).map((b) => b.name)).toEqual(got.backends.map((b) => b.name));
  }, 120_000);
});
