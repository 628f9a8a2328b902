/**
 * What a finished command left behind: the client drivers (harness/clients) produce it, the probes here
 * read it (curl's and dig's verdicts). It lives with its readers so that probe/ needs nothing of clients/.
 */
export interface CommandResult {
  argv: string[];
  exitCode: number | null;
  signal: string | null;
  /** The last 64 KiB of stdout. */
  stdout: string;
  /** The last 64 KiB of stderr. */
  stderr: string;
  durationMs: number;
  timedOut: boolean;
  /** Set when the command could not be started at all (missing executable, bad cwd...). */
  spawnError?: string;
}
