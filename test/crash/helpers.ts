import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ResultPromise } from 'execa';
import type { LabRecord } from '../../harness/lab/state.js';
import { runSync } from '../../harness/topology/netns/exec.js';
import type { NetnsRecord } from '../../harness/topology/netns/state.js';
import { isRunning } from '../../harness/topology/netns/teardown.js';
import { cli } from '../helpers/cli.js';
import { namespacesOf, rootLinks, strayLinks } from '../netns/helpers.js';

/**
 * Helpers of the kill -9 tests: wait (bounded) for a moment the lab shows (a record, a marker file, a
 * line), kill, `fieldlab clean`, then list what is left on the machine, which must be nothing.
 */

/** Polls `check` until it returns a value (not undefined/false); rejects after `ms`, naming `what`. */
export async function until<T>(check: () => T | undefined | false, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Polls `check` like until() (for up to 120 s), failing at once if the run `c` ends first: `stderr()` (what it
 * wrote so far) says why.
 */
export function untilInRun<T>(
  c: ResultPromise,
  stderr: () => string,
  check: () => T | undefined | false,
  what: string,
): Promise<T> {
  return until(
    () => {
      if (c.exitCode !== null || c.signalCode !== null) throw new Error(`the run ended early: ${stderr()}`);
      return check();
    },
    120_000,
    what,
  );
}

/**
 * After each test, passed or failed, nothing is left either: the run's owner `pid` is SIGKILLed if it still
 * runs (and `exited` awaited), then with its owner dead a plain `fieldlab clean` takes the lab, and the
 * test's temp dir goes.
 */
export async function cleanUpRun(opts: {
  state: string;
  tmp: string;
  pid: number | undefined;
  exited?: Promise<unknown>;
}): Promise<void> {
  if (opts.pid !== undefined && isRunning(opts.pid)) process.kill(opts.pid, 'SIGKILL');
  await opts.exited;
  await cli(['clean'], { env: { FIELDLAB_STATE_DIR: opts.state } });
  rmSync(opts.tmp, { recursive: true, force: true });
}

/** Resolves once none of `pids` runs (a zombie counts as gone); rejects after `ms` naming the rest. */
export async function untilGone(pids: readonly number[], ms: number): Promise<void> {
  try {
    await until(() => !pids.some(isRunning), ms, `processes ${pids.join(', ')} to end`);
  } catch (err) {
    throw new Error(`${(err as Error).message}; still running: ${pids.filter(isRunning).join(', ')}`);
  }
}

/** State `S`, `T` (stopped)... of a process, from /proc/PID/stat; undefined when it is gone. */
export function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

/** The netns records under a state dir (one per netns lab). */
export function netnsRecords(stateDir: string): NetnsRecord[] {
  const dir = join(stateDir, 'netns');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => n.endsWith('.json'))
    .flatMap((n) => {
      try {
        return [JSON.parse(readFileSync(join(dir, n), 'utf8')) as NetnsRecord];
      } catch {
        return []; // being replaced (rename is atomic, but the listing may be older than the file)
      }
    });
}

/** The lab records (`labs/<id>/lab.json`) under a state dir. */
export function labRecords(stateDir: string): LabRecord[] {
  const dir = join(stateDir, 'labs');
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    try {
      return [JSON.parse(readFileSync(join(dir, n, 'lab.json'), 'utf8')) as LabRecord];
    } catch {
      return [];
    }
  });
}

/** PIDs of processes the labs under a state dir recorded (sshd, clients, wireguard-go...), with what. */
export function recordedProcesses(stateDir: string): Array<{ pid: number; what: string }> {
  return [
    ...labRecords(stateDir).flatMap((r) => r.resources.map((p) => ({ pid: p.pid, what: p.what }))),
    ...netnsRecords(stateDir).flatMap((r) => r.processes.map((p) => ({ pid: p.pid, what: p.what }))),
  ];
}

/** Running processes (not zombies, not this one) whose command line contains one of `needles`. */
export function processesMatching(needles: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${d}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      if (needles.some((n) => cmdline.includes(n)) && isRunning(Number(d))) out.push(`${d} ${cmdline}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Files and directories under a state dir, apart from its empty `labs`, `blocks` and `netns`. */
export function stateEntries(stateDir: string): string[] {
  if (!existsSync(stateDir)) return [];
  const out: string[] = [];
  const walk = (dir: string, depth: number): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      const container = depth === 0 && e.isDirectory() && ['labs', 'blocks', 'netns'].includes(e.name);
      if (!container) out.push(p);
      if (e.isDirectory()) walk(p, depth + 1);
    }
  };
  walk(stateDir, 0);
  return out;
}

/** Tables in the root namespace's nftables (`family name`). */
export function rootNftTables(): string[] {
  return runSync(['nft', 'list', 'tables'])
    .stdout.split('\n')
    .map((l) => l.replace(/^table /, '').trim())
    .filter(Boolean);
}

/** Containers and networks (names) labelled with a container lab's owner PID. */
export function dockerOf(ownerPid: number): { containers: string[]; networks: string[] } {
  const list = (args: string[]): string[] =>
    execFileSync('docker', args, { encoding: 'utf8', timeout: 60_000 }).split('\n').filter(Boolean);
  const filter = ['--filter', `label=dev.fieldlab.owner=${ownerPid}`];
  return {
    containers: list(['ps', '-a', ...filter, '--format', '{{.Names}}']),
    networks: list(['network', 'ls', ...filter, '--format', '{{.Name}}']),
  };
}

/** The machine before a lab ran: what `leftovers` compares against. */
export interface Baseline {
  links: string[];
  nftTables: string[];
}

export function baseline(): Baseline {
  return { links: rootLinks(), nftTables: rootNftTables() };
}

export interface Leftovers {
  namespaces: string[];
  links: string[];
  nftTables: string[];
  /** Recorded PIDs still running, and processes whose command line names the lab. */
  processes: string[];
  stateEntries: string[];
  containers: string[];
  networks: string[];
  wireguardSockets: string[];
}

/**
 * What a lab left on the machine: its namespaces (`fl-<id>-*`), new links in the root namespace, new
 * root nft tables, its processes (by the PIDs recorded before the kill, and by command lines naming the
 * state dir or a netns lab id), state dir entries, its containers and networks (by owner PID), WireGuard
 * UAPI sockets of its interfaces. All empty after a good clean.
 */
export function leftovers(opts: {
  stateDir: string;
  before: Baseline;
  netnsIds?: readonly string[];
  pids?: readonly number[];
  dockerOwner?: number;
}): Leftovers {
  const ids = opts.netnsIds ?? [];
  const docker =
    opts.dockerOwner === undefined ? { containers: [], networks: [] } : dockerOf(opts.dockerOwner);
  const sockets = existsSync('/var/run/wireguard') ? readdirSync('/var/run/wireguard') : [];
  return {
    namespaces: ids.flatMap((id) => namespacesOf(id)),
    links: strayLinks(opts.before.links),
    nftTables: rootNftTables().filter((t) => !opts.before.nftTables.includes(t)),
    processes: [
      ...(opts.pids ?? []).filter(isRunning).map((p) => `${p} (recorded)`),
      ...processesMatching([opts.stateDir, ...ids.map((id) => `fl-${id}-`), ...ids.map((id) => `fl${id}w`)]),
    ],
    stateEntries: stateEntries(opts.stateDir),
    containers: docker.containers,
    networks: docker.networks,
    wireguardSockets: sockets.filter((s) => ids.some((id) => s.startsWith(`fl${id}w`))),
  };
}

export const NOTHING_LEFT: Leftovers = {
  namespaces: [],
  links: [],
  nftTables: [],
  processes: [],
  stateEntries: [],
  containers: [],
  networks: [],
  wireguardSockets: [],
};

/**
 * `leftovers`, polled until nothing is left or `ms` passed: for what ends on its own once clean removed
 * its cause (the `docker run` CLI of a client whose container clean removed).
 */
export async function leftoversSettled(
  opts: Parameters<typeof leftovers>[0],
  ms = 20_000,
): Promise<Leftovers> {
  const empty = (l: Leftovers): boolean => Object.values(l).every((v: string[]) => v.length === 0);
  let last = leftovers(opts);
  const deadline = Date.now() + ms;
  while (!empty(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    last = leftovers(opts);
  }
  return last;
}
