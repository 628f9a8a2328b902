import { spawnSync } from 'node:child_process';

/**
 * Long-lived children (sshd, wireguard-go) die with the process that started them, even when it is
 * SIGKILLed and no handler runs: util-linux `setpriv --pdeathsig KILL` sets the kernel's parent-death
 * signal (prctl PR_SET_PDEATHSIG) and execs the program, so the PID stays the program's own and
 * `fieldlab clean` can still end it by its recorded PID.
 *
 * What the kernel counts as the parent is the thread that forked: Node spawns from the thread that calls
 * `spawn`, so a child started on the main thread lives as long as the process, one started in a worker
 * thread as long as that worker. The signal survives exec (not of a set-user-ID program), is not
 * inherited by the program's own forks (sshd's per-connection processes end with their connection), and
 * is missed if the parent dies between fork and setpriv's prctl: `clean` covers that narrow gap.
 *
 * It also survives wrappers that exec: `ip netns exec` and `unshare --user --map-root-user` into a user
 * namespace the caller owns (the kernel clears the flag only when credentials change: a set-user-ID
 * exec, or capabilities that are not a subset of the old ones, and a new namespace owned by the same
 * user counts as a subset). So setpriv goes outermost, around the wrapper (command clients).
 */

let supported: boolean | undefined;

/** True where setpriv exists and knows --pdeathsig (util-linux ≥ 2.33, Linux only); probed once. */
export function parentDeathSupported(): boolean {
  if (supported === undefined) {
    supported =
      process.platform === 'linux' &&
      spawnSync('setpriv', ['--pdeathsig', 'KILL', 'true'], { stdio: 'ignore', timeout: 5_000 }).status === 0;
  }
  return supported;
}

/** `argv` wrapped so the program gets SIGKILL when its parent dies; unchanged where that is unsupported. */
export function dieWithParent(argv: readonly string[]): string[] {
  return parentDeathSupported() ? ['setpriv', '--pdeathsig', 'KILL', ...argv] : [...argv];
}
