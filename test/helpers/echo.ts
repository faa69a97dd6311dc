// Client side of a random echo exchange, shared by the TCP tests.
import * as crypto from 'node:crypto';
import { expect } from 'vitest';
import type { Connection } from '../../lib/net-types';

/**
 * Once c connects: `rounds` messages of 1..maxBytes random bytes, each sent
 * when the previous one came back whole and byte-exact (onVerified after
 * each), then end(). Set c.onclose yourself.
 */
export function echoRandomRounds(c: Connection & { onconnect: (() => void) | null }, rounds: number, maxBytes: number, onVerified: () => void): void {
  let expected = Buffer.alloc(0);
  let got: Buffer[] = [];
  let have = 0;
  let n = 0;
  const send = (): void => {
    expected = crypto.randomBytes(1 + crypto.randomInt(0, maxBytes));
    got = [];
    have = 0;
    c.write(expected);
  };
  c.onconnect = send;
  c.ondata = (d) => {
    got.push(Buffer.from(d));
    have += d.length;
    if (have < expected.length) return;
    expect(Buffer.concat(got).equals(expected)).toBe(true);
    onVerified();
    if (++n < rounds) send();
    else c.end();
  };
}
