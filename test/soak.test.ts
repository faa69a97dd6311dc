// Soak with faults at CI size (lib/lab/soak.ts; full size: npm run soak --
// --conns 10000 --duration 60): `iomux serve --arch reactor --backend epoll`
// and `--arch proactor`, each in its own process, under 200 echo connections
// for 5 s while 5% of the slots reset (SO_LINGER 0), half-close, stall reading
// or vanish, one fault after another. Every byte of every healthy connection
// comes back intact, every half-close and slow reader gets all its bytes back,
// the server never exits and its fd count returns to its baseline.
//   IOMUX_SOAK_CONNS (200), IOMUX_SOAK_SECONDS (5)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { validateLoadOptions } from '../lib/lab/load';
import { formatSoak, runSoak, type SoakArch } from '../lib/lab/soak';
import { bin, serve } from './lab-helpers';
import { Ring } from '../lib/ring';

const CONNS = Number(process.env.IOMUX_SOAK_CONNS ?? 200);
const SECONDS = Number(process.env.IOMUX_SOAK_SECONDS ?? 5);
const ring = Ring.probe();
if (!ring.available) console.log(`[soak] proactor skipped: io_uring is not available here: ${ring.reason}`);

describe('soak with faults', () => {
  it.each<[SoakArch, boolean]>([
    ['reactor', true],
    ['proactor', ring.available],
  ])('%s: no byte lost or corrupted, the server survives, its fds come back', async (arch, available) => {
    if (!available) return;
    const r = await runSoak({ arch, conns: CONNS, duration: SECONDS });
    console.log(formatSoak(r));
    const out = process.env.IOMUX_RELIAB_STATS;
    if (out) fs.appendFileSync(out, JSON.stringify({ soak: { ...r, serverStderr: undefined } }) + '\n');
    const L = r.load;
    const F = L.faults;
    expect(r.problems).toEqual([]);
    // The same verdict, spelled out.
    expect(r.serverExitedEarly).toBe(false);
    expect(r.serverExit).toEqual({ code: 0, signal: null });
    expect(r.fds.after).toBe(r.fds.baseline);
    expect(r.fds.peak).toBeGreaterThanOrEqual(r.fds.baseline + CONNS * 0.9);
    expect(L.verifyErrors).toBe(0);
    expect(L.healthyBytesLost).toBe(0);
    expect(L.healthyFailed).toBe(0);
    expect(L.healthyConns).toBe(CONNS - Math.floor(CONNS * 0.05));
    expect(L.healthyBytesVerified).toBeGreaterThan(0);
    expect(F.incomplete).toBe(0);
    for (const n of [F.reset, F.halfClose, F.slowRead, F.vanish]) expect(n).toBeGreaterThan(0);
    expect(F.completed).toBeGreaterThan(0);
    // The first slow reader floods 8 MiB, more than the server's socket
    // buffers hold: part of it waits until the client reads again.
    expect(F.slowBlocked).toBeGreaterThan(0);
    expect(F.reconnects).toBeGreaterThan(0);
  }, 120_000);
});

describe('fault options of the load generator', () => {
  it('are validated: echo and the closed loop only, known faults, ranges', () => {
    expect(() => validateLoadOptions({ port: 1, faultRatio: 0.1, protocol: 'http' })).toThrow(/faultRatio > 0 needs protocol echo/);
    expect(() => validateLoadOptions({ port: 1, faultRatio: 0.1, rate: 100 })).toThrow(/closed loop/);
    expect(() => validateLoadOptions({ port: 1, faultRatio: 0.1, faults: ['reset', 'explode' as never] })).toThrow(RangeError);
    expect(() => validateLoadOptions({ port: 1, faultRatio: 0.1, faults: [] })).toThrow(/at least one fault/);
    expect(() => validateLoadOptions({ port: 1, faultRatio: 1.5 })).toThrow(RangeError);
    expect(() => validateLoadOptions({ port: 1, faults: 'reset' as never })).toThrow(TypeError);
    expect(() => validateLoadOptions({ port: 1, faultStallMs: -1 })).toThrow(RangeError);
    expect(validateLoadOptions({ port: 1, faultRatio: 0.05, faults: ['vanish', 'reset'] })).toMatchObject({ faultRatio: 0.05, faultKinds: 1 | 8 });
  });

  it('iomux load --fault-ratio: one kind of fault only, counted, healthy bytes all back (c-epoll)', async () => {
    const s = await serve(['--arch', 'c-epoll']);
    try {
      const r = spawnSync(process.execPath, [bin, 'load', '--port', String(s.port), '--conns', '20', '--duration', '1', '--fault-ratio', '0.25', '--faults', 'half-close', '--fault-delay-ms', '200', '--json', '--quiet'], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.faults.halfClose).toBeGreaterThan(0);
      expect(j.faults.reset + j.faults.slowRead + j.faults.vanish).toBe(0);
      expect(j.faults.incomplete).toBe(0);
      expect(j.faults.completed).toBeGreaterThan(0);
      expect(j.healthyConns).toBe(15);
      expect(j.healthyBytesLost).toBe(0);
      expect(j.verifyErrors).toBe(0);
    } finally {
      expect(await s.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    }
  });
});
