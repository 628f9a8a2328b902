import { existsSync, readFileSync, rmSync } from 'node:fs';
import { runSync } from './exec.js';
import { type NetnsRecord, removeRecord } from './state.js';

/**
 * Removes everything a record lists, synchronously (it also runs from signal handlers and `exit`):
 * processes inside the lab's namespaces (recorded ones and any `ip netns pids` finds), the namespaces
 * (their veths and bridges go with them), /etc/netns files, the work dir, stale WireGuard sockets.
 * Never touches anything the record does not name. Returns the PIDs it had to kill.
 */
export function teardownRecord(record: NetnsRecord): number[] {
  const pids = new Set<number>();
  for (const p of record.processes) if (isRunning(p.pid)) pids.add(p.pid);
  for (const ns of record.namespaces) for (const pid of netnsPids(ns)) pids.add(pid);
  const killed = killAll([...pids]);
  for (const ns of record.namespaces) runSync(['ip', 'netns', 'del', ns]);
  for (const p of [...record.paths].reverse()) rmSync(p, { recursive: true, force: true });
  rmSync(record.workDir, { recursive: true, force: true });
  // wireguard-go removes its socket on SIGTERM, not on SIGKILL.
  for (const s of record.wgSockets) if (existsSync(s)) rmSync(s, { force: true });
  removeRecord(record.labId);
  return killed;
}

/** PIDs of processes whose network namespace is `ns`. */
export function netnsPids(ns: string): number[] {
  const r = runSync(['ip', 'netns', 'pids', ns]);
  if (r.status !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
}

/** Alive and not a zombie (a zombie answers kill(pid, 0) but holds nothing). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** SIGTERM, up to 1 s for them to go, then SIGKILL. */
function killAll(pids: number[]): number[] {
  const signal = (pid: number, sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  for (const pid of pids) signal(pid, 'SIGTERM');
  const deadline = Date.now() + 1_000;
  while (pids.some(isRunning) && Date.now() < deadline) sleepSync(10);
  for (const pid of pids.filter(isRunning)) signal(pid, 'SIGKILL');
  const hard = Date.now() + 1_000;
  while (pids.some(isRunning) && Date.now() < hard) sleepSync(10);
  return pids;
}
