import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { releaseBlock } from './addresses.js';
import { blocksDir, isAlive, type LabRecord, readRecords } from './state.js';

export interface CleanReport {
  labs: Array<{ labId: string; dir: string; owner: number | undefined; killed: number[]; reason: string }>;
  blocks: string[];
  skippedLive: string[];
}

/** Sends SIGTERM, then SIGKILL to what is still there: only to PIDs whose start time matches the record. */
function endProcess(pid: number, startTicks: number | undefined): boolean {
  if (!isAlive(pid, startTicks)) return false;
  try {
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

/**
 * Removes what labs whose owner process is gone left behind: client processes they started, their
 * directories (keys, hosts files), their address claims. A live lab is left alone unless `force`. Every
 * backend's lab has such a record; what else a backend made (namespaces, containers) its own clean removes.
 */
export function clean(opts: { force?: boolean } = {}): CleanReport {
  const report: CleanReport = { labs: [], blocks: [], skippedLive: [] };
  for (const { dir, record } of readRecords()) {
    const r: LabRecord | undefined = record;
    const ownerAlive = r ? isAlive(r.pid, r.pidStartTicks) && r.pid !== process.pid : false;
    if (ownerAlive && !opts.force) {
      report.skippedLive.push(r?.labId ?? dir);
      continue;
    }
    const killed: number[] = [];
    for (const res of r?.resources ?? []) {
      if (res.kind === 'process' && endProcess(res.pid, res.startTicks)) killed.push(res.pid);
    }
    if (r?.block) releaseBlock(r.block);
    rmSync(dir, { recursive: true, force: true });
    report.labs.push({
      labId: r?.labId ?? dir,
      dir,
      owner: r?.pid,
      killed,
      reason: r ? (ownerAlive ? 'forced' : `owner process ${r.pid} is gone`) : 'unreadable record',
    });
  }
  // Address claims whose owner is gone (e.g. killed between claiming and writing its lab record).
  let claims: string[] = [];
  try {
    claims = readdirSync(blocksDir());
  } catch {
    claims = [];
  }
  for (const prefix of claims) {
    let owner: { pid: number; startTicks?: number } | undefined;
    try {
      owner = JSON.parse(readFileSync(join(blocksDir(), prefix, 'owner.json'), 'utf8'));
    } catch {
      owner = undefined;
    }
    if (owner && isAlive(owner.pid, owner.startTicks) && !opts.force) continue;
    releaseBlock(prefix);
    report.blocks.push(prefix);
  }
  return report;
}

/**
 * The last resort of a process that must exit now (a second Ctrl-C while its labs stop): removes, without
 * awaiting anything, what this process's own labs recorded: their processes (clients, sshd), directories
 * (keys), address claims. Other processes' labs are not touched. Returns the lab ids it removed.
 */
export function cleanOwnSync(): string[] {
  const removed: string[] = [];
  for (const { dir, record } of readRecords()) {
    if (record?.pid !== process.pid) continue;
    for (const res of record.resources) if (res.kind === 'process') endProcess(res.pid, res.startTicks);
    if (record.block) releaseBlock(record.block);
    rmSync(dir, { recursive: true, force: true });
    removed.push(record.labId);
  }
  return removed;
}
