// --backend and --mode for the readiness archs: checked before anything is
// started, with an error that says what would work instead.
import * as os from 'node:os';
import { BACKEND_NAMES, backends, defaultBackend, type BackendName } from '../poller';

/** The backend to use: the one asked for (it must work here), else the platform's best. */
export function resolveBackend(name: string | undefined): BackendName {
  if (name === undefined) return defaultBackend();
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) {
    throw new RangeError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got '${name}'`);
  }
  const st = backends().find((b) => b.name === name)!;
  if (!st.available) throw new RangeError(`--backend ${name} is not available here: ${st.reason ?? 'unknown reason'}`);
  return name as BackendName;
}

/** true for --mode edge, false for level (the default); edge only where the backend has it. */
export function resolveEdge(mode: string | undefined, backend: BackendName): boolean {
  if (mode === undefined || mode === 'level') return false;
  if (mode !== 'edge') throw new RangeError(`--mode must be level or edge, got '${mode}'`);
  const list = backends();
  const st = list.find((b) => b.name === backend)!;
  if (st.modes.edge === 'unsupported') {
    const with_ = list.filter((b) => b.available && b.modes.edge !== 'unsupported').map((b) => b.name);
    throw new RangeError(
      `--mode edge: the ${backend} backend has no edge-triggered mode; use --mode level` +
        (with_.length > 0 ? `, or --backend ${with_.join('|')}` : ''),
    );
  }
  return true;
}

/** --workers N, or the number of cores. */
export function workerCount(n: number | undefined): number {
  if (n !== undefined) return n;
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}
