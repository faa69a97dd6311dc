// A standard tool against every http server of the lab: wrk -c 100 -d 2 must
// see no socket errors and only 2xx answers. Skips (with the reason) where
// wrk is not installed.
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { ARCHS } from '../lib/arch';
import { serve } from './lab-helpers';

const wrk = spawnSync('wrk', ['--version'], { encoding: 'utf8' });
const haveWrk = !wrk.error;
if (!haveWrk) console.log('lab-wrk: skipped, wrk is not installed (apt-get install wrk)');
const archs = ARCHS.filter((a) => a.availability().available).map((a) => a.name);

function runWrk(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    // --timeout 10s: wrk counts a reply slower than its default 2 s as a socket
    // error, a latency on a loaded machine (node-net under ASan: 1.98 s), not a fault.
    const c = spawn('wrk', ['-t', '2', '-c', '100', '-d', '2', '--timeout', '10s', '--latency', `http://127.0.0.1:${port}/`]);
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}: ${out}`))));
  });
}

describe.skipIf(!haveWrk)('wrk against --protocol http', () => {
  it.each(archs)('%s: no socket errors, no non-2xx', async (arch) => {
    const s = await serve(['--arch', arch, '--protocol', 'http']);
    try {
      const out = await runWrk(s.port);
      expect(out).not.toMatch(/Socket errors/);
      expect(out).not.toMatch(/Non-2xx/);
      const m = /(\d+) requests in/.exec(out);
      expect(m, out).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(0);
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });
});
