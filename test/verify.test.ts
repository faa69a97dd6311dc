// `iomux verify` at tiny sizes: one row per claim with every field, verdicts
// among the allowed words, the FD_SETSIZE refusal shown, and bad usage.
// Never a timing: the CPU-work and memory verdicts may go either way here.
import { spawnSync } from 'node:child_process';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLAIM_IDS, VERDICTS, parseServeStats, verify, verifyMarkdown, verifyText, type ClaimRow, type VerifyReport } from '../lib/bench/verify';
import { bin } from './lab-helpers';

const ROW_KEYS: Array<keyof ClaimRow> = ['id', 'claim', 'measured', 'values', 'threshold', 'verdict', 'reason', 'command'];

describe('iomux verify --tiny --json', () => {
  let report: VerifyReport;
  let stderr = '';

  beforeAll(() => {
    const r = spawnSync(process.execPath, [bin, 'verify', '--tiny', '--json'], { encoding: 'utf8', timeout: 170_000 });
    stderr = r.stderr;
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1); // one JSON object
    report = JSON.parse(lines[0]);
  }, 180_000);

  it('has one row per claim, in order, with every field', () => {
    expect(report.section).toBe('verify');
    expect(report.params).toEqual({ quick: false, tiny: true, only: null });
    expect(report.rows.map((r) => r.id)).toEqual([...CLAIM_IDS]);
    for (const row of report.rows) {
      for (const k of ROW_KEYS) expect(row, `${row.id}: ${k}`).toHaveProperty(k);
      expect(typeof row.claim).toBe('string');
      expect(row.claim.length).toBeGreaterThan(10);
      expect(typeof row.threshold).toBe('string');
      expect(row.threshold.length).toBeGreaterThan(10);
      expect(typeof row.command).toBe('string');
      expect(row.command).toMatch(/^(iomux|node) /);
      expect(typeof row.values).toBe('object');
    }
  });

  it('gives each claim one of the allowed verdicts, with a reason exactly when not measured', () => {
    for (const row of report.rows) {
      expect(VERDICTS, row.id).toContain(row.verdict);
      if (row.verdict === 'not measured here') {
        expect(typeof row.reason, row.id).toBe('string');
        expect(row.reason!.length).toBeGreaterThan(0);
        console.log(`verify ${row.id}: not measured here: ${row.reason}`);
      } else {
        expect(row.reason, row.id).toBeNull();
        expect(row.measured.length, row.id).toBeGreaterThan(0);
        expect(Object.keys(row.values).length, row.id).toBeGreaterThan(0);
      }
    }
  });

  it('shows select refusing an fd >= FD_SETSIZE with a RangeError that poll and epoll accept', () => {
    const row = report.rows.find((r) => r.id === 'select-fd-setsize')!;
    expect(row.verdict).toBe('holds');
    const v = row.values as { fdSetSize: number; highFd: number; lowAccepted: boolean; error: string; otherBackendsAccept: Record<string, boolean> };
    expect(v.highFd).toBeGreaterThanOrEqual(v.fdSetSize);
    expect(v.lowAccepted).toBe(true);
    expect(v.error).toMatch(/^RangeError: /);
    expect(Object.values(v.otherBackendsAccept).every(Boolean)).toBe(true);
  });

  it('measures the default stack and virtual vs resident memory per thread in a child process', () => {
    const stack = report.rows.find((r) => r.id === 'thread-stack-default')!;
    expect(stack.verdict).not.toBe('not measured here');
    expect((stack.values as { defaultStackKiB: number }).defaultStackKiB).toBeGreaterThan(0);
    for (const id of ['thread-memory-1k', 'thread-memory-10k']) {
      const row = report.rows.find((r) => r.id === id)!;
      expect(row.verdict, `${id}: ${row.reason}`).not.toBe('not measured here');
      const v = row.values as { threads: number; vmKiBPerThread: number; rssKiBPerThread: number };
      expect(v.threads).toBeGreaterThan(0);
      // A parked thread reserves its stack: virtual memory grows by more than resident memory.
      expect(v.vmKiBPerThread).toBeGreaterThan(v.rssKiBPerThread);
    }
  });

  it('counts the per-worker accepts of multi-reactor and they add up', () => {
    const row = report.rows.find((r) => r.id === 'reuseport-spread')!;
    expect(row.verdict, row.reason ?? '').not.toBe('not measured here');
    const v = row.values as { workers: number; acceptedPerWorker: number[]; total: number };
    expect(v.acceptedPerWorker).toHaveLength(v.workers);
    expect(v.acceptedPerWorker.reduce((a, b) => a + b, 0)).toBe(v.total);
  });

  it('prints progress on stderr and a readable text form', () => {
    expect(stderr).toMatch(/verify: select-fd-setsize: holds/);
    const text = verifyText(report);
    for (const row of report.rows) expect(text).toContain(row.claim);
    const md = verifyMarkdown(report);
    expect(md).toContain('| claim | measured here | threshold | verdict |');
    for (const row of report.rows) expect(md).toContain(`\`${row.id}\``);
  });
});

describe('iomux verify: options', () => {
  it('--only runs the named claims alone', async () => {
    const r = await verify({ only: ['select-fd-setsize'], tiny: true });
    expect(r.rows.map((x) => x.id)).toEqual(['select-fd-setsize']);
    expect(r.command).toBe('iomux verify --tiny --only select-fd-setsize');
  });

  it('rejects an unknown claim', async () => {
    await expect(verify({ only: ['no-such-claim'] })).rejects.toThrow(RangeError);
    const r = spawnSync(process.execPath, [bin, 'verify', '--only', 'no-such-claim'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/unknown claim 'no-such-claim'/);
  });

  it('reads the counters `iomux serve` prints when it stops', () => {
    const s = parseServeStats(
      'noise\niomux serve: SIGTERM: multi-reactor stopped after 1.2 s: 20 connections accepted, 300 reads echoed; workers=2 accepted_w0=8 accepted_w1=12\n',
    );
    expect(s).toEqual({ accepted: 20, requests: 300, workers: 2, accepted_w0: 8, accepted_w1: 12 });
    expect(parseServeStats('nothing here')).toBeNull();
  });
});
