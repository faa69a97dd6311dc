// Argument checks shared by the public API: every error names the argument.
export function fdArg(value: unknown, name = 'fd'): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number (a file descriptor), got ${typeOf(value)}`);
  if (!Number.isInteger(value) || value < 0 || value > 0x7fffffff) {
    throw new RangeError(`${name} must be an integer file descriptor >= 0, got ${value}`);
  }
  return value;
}

export function intArg(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${typeOf(value)}`);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

/** Milliseconds: -1 forever, 0 poll, fractions round up (0.1 ms never becomes a busy 0). */
export function timeoutArg(value: unknown, name = 'timeout'): number {
  if (value === undefined) return -1;
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number of milliseconds, got ${typeOf(value)}`);
  if (Number.isNaN(value)) throw new RangeError(`${name} must not be NaN`);
  if (value < 0) {
    if (value === -1 || value === -Infinity) return -1;
    throw new RangeError(`${name} must be -1 (forever) or >= 0, got ${value}`);
  }
  if (value === Infinity) return -1;
  const ms = Math.ceil(value);
  return ms > 0x7fffffff ? -1 : ms;
}

export type Bytes = ArrayBufferView | ArrayBuffer;

export function bytesArg(value: unknown, name: string): Uint8Array {
  if (value instanceof Uint8Array) return value; // Buffer too: the common case, no new view
  try {
    if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    if (value instanceof ArrayBuffer) return new Uint8Array(value);
  } catch {
    // The only way these constructors fail on a valid view or buffer.
    throw new TypeError(`${name} must not be (a view on) a detached ArrayBuffer`);
  }
  throw new TypeError(`${name} must be a Buffer, TypedArray, DataView or ArrayBuffer, got ${typeOf(value)}`);
}

export function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an instance of ${(value as object).constructor?.name ?? 'Object'}`;
  return `type ${typeof value}${typeof value === 'number' || typeof value === 'string' ? ` (${String(value)})` : ''}`;
}
