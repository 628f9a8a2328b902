import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { which } from '../capabilities.js';
import { cleanNetns, type NetnsCleanReport } from '../topology/netns/clean.js';
import { listRecords as netnsRecords } from '../topology/netns/state.js';
import { teardownRecord } from '../topology/netns/teardown.js';
import { releaseBlock } from './addresses.js';
import { cleanContainers } from './container-clean.js';
import { blocksDir, isAlive, type LabRecord, readRecords } from './state.js';

export interface CleanReport {
  labs: Array<{ labId: string; dir: string; owner: number | undefined; killed: number[]; reason: string }>;
  blocks: string[];
  skippedLive: string[];
  /** Network namespaces (netns backend) of dead labs, removed with their processes and files. */
  netns: NetnsCleanReport['labs'];
  /** Containers and networks (container backend) of dead labs. */
  containers: string[];
  networks: string[];
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
 * directories (keys, hosts files), their address claims. A live lab is left alone unless `force`.
 */
export function clean(opts: { force?: boolean } = {}): CleanReport {
  const report: CleanReport = {
    labs: [],
    blocks: [],
    skippedLive: [],
    netns: [],
    containers: [],
    networks: [],
  };
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
  // The netns backend keeps its own records (namespaces, wireguard-go processes, /etc/netns files).
  // Listing namespaces needs iproute2; where it is absent there can be none of ours.
  if (process.platform === 'linux' && which('ip')) {
    const n = cleanNetns(undefined, { force: opts.force === true });
    report.netns = n.labs;
    report.skippedLive.push(...n.skippedLive);
  }
  const c = cleanContainers({ force: opts.force === true });
  report.containers = c.containers;
  report.networks = c.networks;
  return report;
}

/**
 * The last resort of a process that must exit now (a second Ctrl-C while its labs stop): removes, without
 * awaiting anything, what this process's own labs recorded: their processes (clients, sshd), directories
 * (keys), address claims, and netns labs' namespaces. Other processes' labs are not touched. Containers
 * are left to `fieldlab clean` (their owner label names this PID). Returns the lab ids it removed.
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
  if (process.platform === 'linux' && which('ip')) {
    for (const r of netnsRecords()) {
      if (r.pid !== process.pid) continue;
      teardownRecord(r);
      removed.push(r.labId);
    }
  }
  return removed;
}
