// Soak with faults at CI size (lib/lab/soak.ts; full size: npm run soak --
// --conns 10000 --duration 60): `iomux serve --arch reactor --backend epoll`
// and `--arch proactor`, each in its own process, under 200 echo connections
// for 5 s while 5% of the slots reset (SO_LINGER 0), half-close, stall reading
// or vanish, one fault after another. Every byte of every healthy connection
// comes back intact, every half-close and slow reader gets all its bytes back,
// the server never exits and its fd count returns to its baseline.
//   IOMUX_SOAK_CONNS (200), IOMUX_SOAK_SECONDS (5)
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatSoak, runSoak, type SoakArch } from '../lib/lab/soak';
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
