import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { FieldlabError } from '../../../simulators/common/errors.js';

/** What a finished command produced. */
export interface ExecResult {
  argv: string[];
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

export interface ExecOptions {
  input?: string;
  /** Kill (SIGKILL) after this many ms; default 15 s. Every wait is bounded. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** Runs argv to completion and collects its output; never throws for a non-zero exit. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const [cmd, ...args] = argv;
  if (!cmd) return Promise.reject(new Error('run: empty argv'));
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 15_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({
        argv: [...argv],
        exitCode,
        signal,
        stdout,
        stderr,
        durationMs: performance.now() - started,
        timedOut,
      });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** Like `run`, but a non-zero exit throws `E_NETNS_COMMAND` with the command and its stderr. */
export async function runChecked(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const r = await run(argv, opts);
  if (r.exitCode !== 0) {
    throw new FieldlabError(
      'E_NETNS_COMMAND',
      `${argv.join(' ')} failed (${r.timedOut ? 'timed out' : `exit ${r.exitCode ?? r.signal}`}): ` +
        r.stderr.trim(),
      {
        hint: 'the netns backend needs root (or CAP_NET_ADMIN), iproute2, nftables (wireguard-go for VPNs)',
      },
    );
  }
  return r;
}

/** Synchronous variant for signal handlers and `exit`, where the event loop will not run again. */
export function runSync(
  argv: readonly string[],
  timeoutMs = 5_000,
): { status: number | null; stdout: string } {
  const [cmd, ...args] = argv;
  if (!cmd) return { status: null, stdout: '' };
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
  return { status: r.status, stdout: r.stdout ?? '' };
}

/** Resolves when the child exits, or after `ms` (then false). */
export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
