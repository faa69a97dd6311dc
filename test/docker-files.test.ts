// The files `npm run test:docker` uses: the two seccomp profiles are what
// scripts/seccomp-profiles.js generates, and differ exactly in io_uring.
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';

const root = path.join(__dirname, '..');
const { outputs, IO_URING } = createRequire(__filename)('../scripts/seccomp-profiles.js');

interface Rule {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: unknown[];
  includes?: unknown;
}
const read = (rel: string) => JSON.parse(fs.readFileSync(path.join(root, rel), 'utf8'));
const ruleFor = (profile: { syscalls: Rule[] }, name: string) => profile.syscalls.filter((r) => r.names.includes(name));

describe('docker files', () => {
  it('the committed seccomp profiles are up to date (node scripts/seccomp-profiles.js)', () => {
    for (const [rel, obj] of Object.entries(outputs)) expect(read(rel), rel).toEqual(obj);
  });

  it('the permitting profile allows io_uring; the denying one answers EPERM, like Docker 25+', () => {
    const permit = read('docker/seccomp-io_uring.json');
    const deny = read('docker/seccomp-no-io_uring.json');
    for (const p of [permit, deny]) {
      expect(p.defaultAction).toBe('SCMP_ACT_ERRNO');
      expect(p.defaultErrnoRet).toBe(1);
    }
    expect(IO_URING).toEqual(['io_uring_setup', 'io_uring_enter', 'io_uring_register']);
    for (const name of IO_URING) {
      expect(ruleFor(permit, name).map((r) => r.action)).toEqual(['SCMP_ACT_ALLOW']);
      expect(ruleFor(deny, name).map((r) => [r.action, r.errnoRet])).toEqual([['SCMP_ACT_ERRNO', 1]]);
    }
    // Nothing else differs: the same allow-list minus io_uring.
    const names = (p: { syscalls: Rule[] }) =>
      p.syscalls.filter((r) => r.action === 'SCMP_ACT_ALLOW').flatMap((r) => r.names).filter((n) => !IO_URING.includes(n));
    expect(names(deny)).toEqual(names(permit));
    // What the test suite itself needs is in it.
    for (const n of ['epoll_wait', 'epoll_pwait', 'poll', 'ppoll', 'pselect6', 'eventfd2', 'accept4', 'pipe2', 'clone', 'futex', 'mmap']) {
      expect(ruleFor(permit, n).some((r) => r.action === 'SCMP_ACT_ALLOW'), n).toBe(true);
    }
    expect(ruleFor(permit, 'mount')).toEqual([]);
    expect(ruleFor(permit, 'unshare')).toEqual([]);
  });

  it('the Dockerfile takes its base image as a build argument, the official Node 20 image by default', () => {
    const text = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
    expect(text).toMatch(/^ARG BASE=node:20-bookworm$/m);
    expect(text.match(/^FROM \$\{BASE\}/gm)?.length).toBe(2);
  });
});
