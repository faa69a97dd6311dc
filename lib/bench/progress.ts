// Progress for long runs: on a TTY one status line rewritten in place, with
// finished steps kept above it; otherwise plain timestamped lines (CI logs).
export interface Progress {
  /** A step started (replaces the status line on a TTY). */
  step(message: string): void;
  /** A lasting line (a result worth keeping in the log). */
  note(message: string): void;
  done(): void;
}

export function makeProgress(stream: NodeJS.WriteStream = process.stderr, enabled = true): Progress {
  const start = Date.now();
  const stamp = () => `[${((Date.now() - start) / 1000).toFixed(1).padStart(6)}s]`;
  if (!enabled) return { step() {}, note() {}, done() {} };
  if (!stream.isTTY) {
    return {
      step: (m) => stream.write(`${stamp()} ${m}\n`),
      note: (m) => stream.write(`${stamp()} ${m}\n`),
      done() {},
    };
  }
  let status = '';
  const clear = () => status && stream.write('\r\x1b[2K');
  return {
    step(m) {
      clear();
      status = `${stamp()} ${m}`;
      stream.write(status.slice(0, (stream.columns || 100) - 1));
    },
    note(m) {
      clear();
      stream.write(`${stamp()} ${m}\n`);
      if (status) stream.write(status.slice(0, (stream.columns || 100) - 1));
    },
    done() {
      clear();
      status = '';
    },
  };
}
