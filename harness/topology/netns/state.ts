import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processStartTicks, stateDir } from '../../process-state.js';

/**
 * The on-disk record of what a netns lab created, so that `cleanNetns` (and `fieldlab clean`) can
 * remove it after the owner died (SIGKILL): `<state>/netns/<labId>.json`, rewritten after every
 * resource. Generated files (WireGuard configs) live in `<state>/netns/<labId>/`.
 */
export interface NetnsRecord {
  labId: string;
  pid: number;
  pidStartTicks: number | undefined;
  createdAt: string;
  namespaces: string[];
  /** Files and directories created outside the work dir (/etc/netns/<ns>). */
  paths: string[];
  workDir: string;
  processes: Array<{ pid: number; startTicks: number | undefined; ns: string; what: string }>;
  /** WireGuard UAPI sockets (/var/run/wireguard/<if>.sock) the lab's wireguard-go processes own. */
  wgSockets: string[];
}

/** Name of the owner file in the switch namespace's /etc/netns directory. */
export const OWNER_FILE = 'fieldlab-owner.json';

export function netnsStateDir(): string {
  return join(stateDir(), 'netns');
}

export function recordPath(labId: string): string {
  return join(netnsStateDir(), `${labId}.json`);
}

export function newRecord(labId: string): NetnsRecord {
  return {
    labId,
    pid: process.pid,
    pidStartTicks: processStartTicks(process.pid),
    createdAt: new Date().toISOString(),
    namespaces: [],
    paths: [],
    workDir: join(netnsStateDir(), labId),
    processes: [],
    wgSockets: [],
  };
}

export function saveRecord(record: NetnsRecord): void {
  mkdirSync(netnsStateDir(), { recursive: true, mode: 0o700 });
  const file = recordPath(record.labId);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(tmp, file); // atomic: readers never see half a record
}

export function readRecord(labId: string): NetnsRecord | undefined {
  try {
    return JSON.parse(readFileSync(recordPath(labId), 'utf8')) as NetnsRecord;
  } catch {
    return undefined;
  }
}

export function listRecords(): NetnsRecord[] {
  let names: string[];
  try {
    names = readdirSync(netnsStateDir());
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json'))
    .map((n) => readRecord(n.slice(0, -5)))
    .filter((r): r is NetnsRecord => r !== undefined);
}

export function removeRecord(labId: string): void {
  rmSync(recordPath(labId), { force: true });
}
