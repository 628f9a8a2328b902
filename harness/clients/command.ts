import { isAbsolute, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { dieWithParent } from '../../simulators/common/parent-death.js';
import { which } from '../capabilities.js';
import type { CommandResult } from '../probe/command-result.js';

export type { CommandResult };

/** How much of each output stream a result keeps: the last 64 KiB (errors are printed last). */
export const OUTPUT_CAP_BYTES = 64 * 1024;

/** Grace period between SIGTERM and SIGKILL when a command overruns its timeout or is aborted. */
const FORCE_KILL_AFTER_MS = 1000;

/** A command under test. */
export interface CommandSpec {
  argv: string[];
  /** Extra environment variables, merged over process.env unless `inheritEnv` is false. */
  env?: Record<string, string>;
  /** false: the child gets only `env` (plus PATH when `env` has none). Default true. */
  inheritEnv?: boolean;
  cwd?: string;
  timeoutMs: number;
  /** Written to the child's stdin, then closed. Without it stdin is /dev/null. */
  stdin?: string;
  /**
   * Run inside a private user+mount namespace where these files are bind-mounted over /etc/hosts and
   * /etc/resolv.conf (needs the `userns` capability).
   */
  namespace?: { hostsFile: string; resolvConf?: string };
  /** Run inside this network namespace (`ip netns exec`, which also applies its /etc/netns files). */
  netns?: string;
  onSpawn?: (pid: number) => void;
  signal?: AbortSignal;
}

/**
 * The namespace wrapper: `unshare` makes a user namespace where we are root and a private mount namespace,
 * `sh` bind-mounts the lab files over the system ones (visible only inside), then execs the command, so
 * the PID we get is the command's own (no --fork: signals reach it directly).
 *   sh -c SCRIPT HOSTS RESOLV argv...  →  $0 = HOSTS, $1 = RESOLV ('' for none), then `shift` leaves argv.
 */
const NS_SCRIPT =
  'mount --bind "$0" /etc/hosts && { [ -z "$1" ] || mount --bind "$1" /etc/resolv.conf; } && shift && exec "$@"';

/** The full argv actually spawned for a spec (exported for tests and reports). */
export function wrappedArgv(spec: Pick<CommandSpec, 'argv' | 'namespace' | 'netns'>): string[] {
  // `ip netns exec` execs the command: the PID is still the command's own.
  if (spec.netns) return ['ip', 'netns', 'exec', spec.netns, ...spec.argv];
  if (!spec.namespace) return [...spec.argv];
  return [
    'unshare',
    '--user',
    '--map-root-user',
    '--mount',
    'sh',
    '-c',
    NS_SCRIPT,
    spec.namespace.hostsFile,
    spec.namespace.resolvConf ?? '',
    ...spec.argv,
  ];
}

/** Keeps the tail of a stream within a byte budget. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly cap: number) {}

  push(chunk: Buffer | string): void {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.chunks.push(b);
    this.size += b.length;
    // Drop whole chunks only while what remains still fills the budget; toString() trims the rest.
    while (this.chunks.length > 1 && this.size - this.chunks[0]!.length >= this.cap) {
      this.size -= this.chunks.shift()!.length;
    }
  }

  toString(): string {
    let buf = Buffer.concat(this.chunks);
    if (buf.length > this.cap) buf = buf.subarray(buf.length - this.cap);
    return buf.toString('utf8');
  }
}

function notInstalled(name: string): string {
  return `${name} is not installed: run scripts/setup.sh (or install it with your package manager)`;
}

/**
 * Runs a command under test and resolves with what happened. Never rejects for the child's failure (a
 * non-zero exit, a signal, a timeout, a missing executable all come back in the result).
 */
export async function runCommand(spec: CommandSpec): Promise<CommandResult> {
  const started = performance.now();
  const argv = [...spec.argv];
  const fail = (spawnError: string): CommandResult => ({
    argv,
    exitCode: null,
    signal: null,
    stdout: '',
    stderr: '',
    durationMs: performance.now() - started,
    timedOut: false,
    spawnError,
  });

  const [cmd] = argv;
  if (!cmd) return fail('empty argv: nothing to run');
  // Inside the namespace a missing executable would only show as sh's exit 127; say it plainly instead.
  // A relative path (./tool) is relative to the child's cwd, not ours.
  const probePath = cmd.includes('/') && !isAbsolute(cmd) && spec.cwd ? resolve(spec.cwd, cmd) : cmd;
  if (!which(probePath))
    return fail(cmd.includes('/') ? `cannot start ${cmd}: no such executable file` : notInstalled(cmd));
  if (spec.namespace && !which('unshare')) return fail(notInstalled('unshare (util-linux)'));
  if (spec.netns && !which('ip')) return fail(notInstalled('ip (iproute2)'));

  // The client dies with us even when we are SIGKILLed (no handler runs). setpriv wraps the outermost
  // process and execs it: the flag survives `ip netns exec` and `unshare --user` into a namespace we own
  // (no credential change in the kernel's sense), and the PID stays the command's own.
  const [file, ...args] = dieWithParent(wrappedArgv(spec)) as [string, ...string[]];
  const inherit = spec.inheritEnv ?? true;
  const env = inherit ? spec.env : { PATH: process.env.PATH ?? '/usr/bin:/bin', ...spec.env };
  const out = new Tail(OUTPUT_CAP_BYTES);
  const err = new Tail(OUTPUT_CAP_BYTES);

  const child = execa(file, args, {
    reject: false,
    buffer: false,
    timeout: spec.timeoutMs,
    forceKillAfterDelay: FORCE_KILL_AFTER_MS,
    extendEnv: inherit,
    ...(env ? { env } : {}),
    ...(spec.cwd ? { cwd: spec.cwd } : {}),
    ...(spec.signal ? { cancelSignal: spec.signal } : {}),
    ...(spec.stdin !== undefined ? { input: spec.stdin } : { stdin: 'ignore' as const }),
    stdout: 'pipe',
    stderr: 'pipe',
    encoding: 'buffer',
  });
  if (child.pid !== undefined) spec.onSpawn?.(child.pid);
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => err.push(c));

  const r = await child;
  const base = {
    argv,
    exitCode: r.exitCode ?? null,
    signal: r.signal ?? null,
    stdout: out.toString(),
    stderr: err.toString(),
    durationMs: performance.now() - started,
    timedOut: r.timedOut,
  };
  const code = (r as { code?: string }).code;
  if (r.failed && r.exitCode === undefined && r.signal === undefined && !r.timedOut && !r.isCanceled) {
    const why =
      code === 'ENOENT'
        ? spec.cwd && which(probePath)
          ? `cannot start ${cmd}: working directory ${spec.cwd} does not exist`
          : notInstalled(cmd)
        : `cannot start ${cmd}: ${r.originalMessage ?? r.shortMessage}`;
    return { ...base, spawnError: why };
  }
  return base;
}
