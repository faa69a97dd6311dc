// A CLI subcommand: lib/cli.ts lists them; each lives in its own file here.
export interface Command {
  name: string;
  /** One line for `iomux --help`. */
  summary: string;
  /** The full text for `iomux <name> --help`. */
  help: string;
  /** Returns the exit code. */
  run(argv: string[]): Promise<number>;
}

/** Thrown for bad command-line usage: printed without a stack, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
