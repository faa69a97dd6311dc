// One part of `iomux report`: it runs, returns a JSON-able result, and
// renders that result as Markdown (and optionally SVG charts). A section
// that throws is recorded as failed in the report; the others still run.
import type { Progress } from './progress';

export interface RunOptions {
  quick: boolean;
  progress: Progress;
  /** Where the report is written; sections may put extra files there. */
  outDir: string;
}

export interface Chart {
  /** File name inside the report's directory, e.g. 'dispatch.svg'. */
  file: string;
  caption: string;
  svg: string;
}

export interface Section<R = unknown> {
  name: string;
  title: string;
  /** The command a user runs to reproduce this section alone. */
  command(quick: boolean): string;
  run(options: RunOptions): Promise<R>;
  markdown(result: R): string;
  charts?(result: R): Promise<Chart[]>;
}
