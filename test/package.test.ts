// The package as users load it: require('iomux') and import, in fresh
// processes, through package.json "exports"; and the `iomux backends` CLI.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const root = path.join(__dirname, '..');
const node = (args: string[]) => execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' });

describe('package entry points', () => {
  it("require('iomux') works in a fresh process", () => {
    const out = node(['-e', "const i = require('iomux'); const p = new i.Poller('poll'); const [a, b] = i.sys.socketpair(); p.add(a, i.Interest.READABLE); i.sys.write(b, Buffer.from('x')); console.log(JSON.stringify({ n: p.wait(1000), names: Object.keys(i).sort() }));"]);
    const r = JSON.parse(out);
    expect(r.n).toBe(1);
    expect(r.names).toEqual(expect.arrayContaining(['Poller', 'Interest', 'Mode', 'sys', 'backends', 'ErrnoError']));
  });

  it("import from 'iomux' works in a fresh process (ESM entry)", () => {
    const out = node([
      '--input-type=module',
      '-e',
      "import { Poller, Interest, Mode, sys, backends } from 'iomux'; import def from 'iomux'; console.log(JSON.stringify({ b: backends().length, same: def.Poller === Poller, mode: Mode.EDGE, r: Interest.READABLE, pipe: typeof sys.pipe }));",
    ]);
    expect(JSON.parse(out)).toEqual({ b: 5, same: true, mode: 1, r: 1, pipe: 'function' });
  });
});

describe('iomux backends', () => {
  it('--json prints every backend with the documented shape', () => {
    const list = JSON.parse(node(['bin/iomux.js', 'backends', '--json']));
    expect(list.map((b: { name: string }) => b.name)).toEqual(['select', 'poll', 'epoll', 'kqueue', 'io_uring']);
    for (const b of list) {
      expect(typeof b.available).toBe('boolean');
      if (!b.available) expect(typeof b.reason).toBe('string');
      expect(Object.keys(b.modes).sort()).toEqual(['edge', 'exclusive', 'level', 'oneshot']);
      for (const v of Object.values(b.modes)) expect(['native', 'emulated', 'unsupported']).toContain(v);
    }
  });

  it('prints a table by default, and exits 2 on a bad option', () => {
    const out = node(['bin/iomux.js', 'backends']);
    expect(out).toMatch(/^backend\s+available/);
    expect(out).toMatch(/epoll\s+(yes|no)/);
    let code = 0;
    try {
      node(['bin/iomux.js', 'backends', '--nope']);
    } catch (e) {
      code = (e as { status: number }).status;
    }
    expect(code).toBe(2);
  });
});
