/**
 * Reports of a run: console (stdout), JSON, JUnit XML and HTML (files in one directory), and the exit code.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { RunResult } from '../runner/result.js';
import { renderConsole } from './console.js';
import { renderHtml } from './html.js';
import { renderJson } from './json.js';
import { renderJUnit } from './junit.js';

export { type ConsoleOptions, renderConsole, renderProgress } from './console.js';
export { renderHtml } from './html.js';
export { REPORT_JSON_SCHEMA, renderJson, runResultSchema, writeReportSchema } from './json.js';
export { renderJUnit } from './junit.js';
export {
  type LoadStatus,
  Progress,
  type ProgressState,
  type ProgressStream,
  renderStatusLine,
} from './progress.js';

export type ReporterName = 'console' | 'json' | 'junit' | 'html';

/** Where each file reporter writes, inside `outDir`. */
export const REPORT_FILES: Record<Exclude<ReporterName, 'console'>, string> = {
  json: 'fieldlab-report.json',
  junit: 'junit.xml',
  html: 'report.html',
};

export interface WriteReportsOptions {
  /** Directory for the file reports; created when missing (only if a file reporter is asked for). */
  outDir: string;
  reporters: ReporterName[];
  /** Where the console report goes. */
  stdout: NodeJS.WritableStream;
  color: boolean;
  verbose?: boolean;
}

const RENDER: Record<Exclude<ReporterName, 'console'>, (run: RunResult) => string> = {
  json: renderJson,
  junit: renderJUnit,
  html: renderHtml,
};

/**
 * Writes the asked-for reports: the console report to `stdout`, the others as files in `outDir`.
 * Resolves to the paths of the files written, in the order asked. Each reporter runs at most once.
 */
export async function writeReports(run: RunResult, opts: WriteReportsOptions): Promise<string[]> {
  const asked = [...new Set(opts.reporters)];
  const written: string[] = [];
  const files = asked.filter((r): r is Exclude<ReporterName, 'console'> => r !== 'console');
  if (files.length > 0) {
    try {
      await mkdir(opts.outDir, { recursive: true });
      for (const r of files) {
        const path = join(opts.outDir, REPORT_FILES[r]);
        await writeFile(path, RENDER[r](run));
        written.push(path);
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new FieldlabError(
        'E_REPORT_WRITE',
        `cannot write reports to ${opts.outDir}: ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' '),
        { hint: 'choose a writable directory with --out', cause: err },
      );
    }
  }
  if (asked.includes('console')) {
    const text = renderConsole(run, { color: opts.color, ...(opts.verbose ? { verbose: true } : {}) });
    await new Promise<void>((resolve, reject) => {
      opts.stdout.write(text, (err?: Error | null) => (err ? reject(err) : resolve()));
    });
  }
  return written;
}

/** The process exit code for a run: 1 when any variant failed or errored, else 0 (skips do not fail). */
export function exitCodeFor(run: RunResult): number {
  const bad = run.results.some((r) => r.status === 'failed' || r.status === 'errored');
  return bad || run.totals.failed > 0 || run.totals.errored > 0 ? 1 : 0;
}
