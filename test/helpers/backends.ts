// Which backends this machine has, for suites that run on every available one.
import { backends, type BackendName, type BackendStatus } from '../../lib/poller';

export const statuses: BackendStatus[] = backends();
export const available: BackendName[] = statuses.filter((b) => b.available).map((b) => b.name);
export const unavailable: BackendStatus[] = statuses.filter((b) => !b.available);

/** Prints, once per file, which backends a suite skips and why. */
export function noteUnavailable(suite: string): void {
  for (const b of unavailable) console.log(`[${suite}] backend ${b.name} skipped: ${b.reason}`);
}
