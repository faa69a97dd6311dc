// ErrnoError has the shape of Node's own system errors: code, errno, syscall.
import * as util from 'node:util';
import * as os from 'node:os';

export class ErrnoError extends Error {
  readonly code: string;
  /** The positive errno value, e.g. 9 for EBADF. */
  readonly errno: number;
  readonly syscall: string;

  constructor(errno: number, syscall: string, detail?: string) {
    const n = Math.abs(errno);
    const code = errnoName(n);
    const desc = os.constants.errno && describe(n);
    super(`${syscall} ${code}${desc ? ` (${desc})` : ''}${detail ? `: ${detail}` : ''}`);
    this.name = 'ErrnoError';
    this.code = code;
    this.errno = n;
    this.syscall = syscall;
  }
}

/**
 * An object used in a state that does not allow the call (a loop already
 * running, a sampler not started): code 'ERR_IOMUX_INVALID_STATE'.
 */
export class InvalidStateError extends Error {
  readonly code = 'ERR_IOMUX_INVALID_STATE';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidStateError';
  }
}

/** 'EBADF' for 9 (or -9). */
export function errnoName(errno: number): string {
  try {
    return util.getSystemErrorName(-Math.abs(errno));
  } catch {
    return `E${Math.abs(errno)}`;
  }
}

function describe(errno: number): string {
  const map = (util as unknown as { getSystemErrorMap?: () => Map<number, [string, string]> }).getSystemErrorMap;
  const entry = map ? map().get(-errno) : undefined;
  return entry ? entry[1] : '';
}

/** Throws ErrnoError when rc is negative; returns rc otherwise. */
export function check(rc: number, syscall: string): number {
  if (rc < 0) throw new ErrnoError(-rc, syscall);
  return rc;
}
