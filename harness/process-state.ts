import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Where fieldlab records what it creates, and whether a recorded owner process still runs: what the lab,
 * the netns topology and the container backend all read to clean up after a crash. Below every folder of
 * harness/, so each can import it without a cycle.
 */
export function stateDir(): string {
  return process.env.FIELDLAB_STATE_DIR ?? join(tmpdir(), `fieldlab-${process.getuid?.() ?? 'user'}`);
}

/** Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), or undefined. */
export function processStartTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[19]);
    return Number.isFinite(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}

/**
 * True when `pid` runs and (when known) is the same process that was recorded. A zombie (dead, its parent
 * has not reaped it yet, e.g. a script that killed `fieldlab up &` and has not waited) holds nothing and
 * counts as gone.
 */
export function isAlive(pid: number, startTicks: number | undefined): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (isZombie(pid)) return false;
  if (startTicks === undefined) return true;
  const now = processStartTicks(pid);
  return now === undefined || now === startTicks;
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false; // no /proc (not Linux): kill(pid, 0) decided
  }
}
