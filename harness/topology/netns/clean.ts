import { readdirSync, readFileSync } from 'node:fs';
import { isAlive } from '../../process-state.js';
import { runSync } from './exec.js';
import { switchNamespace } from './plan.js';
import { listRecords, type NetnsRecord, newRecord, OWNER_FILE, readRecord } from './state.js';
import { teardownRecord } from './teardown.js';

export interface NetnsCleanReport {
  /** Labs removed (from their records, or rebuilt from orphan namespace names). */
  labs: Array<{ labId: string; owner: number | undefined; namespaces: string[]; killed: number[] }>;
  /** Labs left alone because their owner process is alive. */
  skippedLive: string[];
}

function readOwner(labId: string): { pid: number; pidStartTicks: number | undefined } | undefined {
  try {
    return JSON.parse(readFileSync(`/etc/netns/${switchNamespace(labId)}/${OWNER_FILE}`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Lab ids of `fl-<labId>-<host>` namespaces present on the machine. */
function namespacesByLab(): Map<string, string[]> {
  const r = runSync(['ip', 'netns', 'list']);
  const out = new Map<string, string[]>();
  for (const line of r.stdout.split('\n')) {
    const ns = line.split(' ')[0] ?? '';
    const m = /^fl-([a-z0-9]{1,10})-[a-z0-9-]+$/.exec(ns);
    if (!m?.[1]) continue;
    out.set(m[1], [...(out.get(m[1]) ?? []), ns]);
  }
  return out;
}

/**
 * Removes what dead netns labs left behind (after SIGKILL, a crash, a power cut): processes inside their
 * namespaces, the namespaces with their veths and bridges, /etc/netns files, WireGuard sockets, work
 * dirs and records. `fl-*` namespaces with no record are orphans and are removed too. A lab whose owner
 * is alive (another process) is skipped unless `force`. With `labId`, only that lab.
 */
export function cleanNetns(labId?: string, opts: { force?: boolean } = {}): NetnsCleanReport {
  const report: NetnsCleanReport = { labs: [], skippedLive: [] };
  const present = namespacesByLab();
  const records = new Map<string, NetnsRecord>();
  for (const r of labId ? [readRecord(labId)].filter((x) => x !== undefined) : listRecords())
    records.set(r.labId, r);
  for (const [id, nss] of present) {
    if (labId && id !== labId) continue;
    const r = records.get(id);
    if (!r) {
      // No record here: a lab recorded under another state dir (its owner file says who), or an orphan.
      const owner = readOwner(id);
      const orphan = newRecord(id);
      orphan.pid = owner?.pid ?? 0;
      orphan.pidStartTicks = owner?.pidStartTicks;
      orphan.namespaces = nss;
      orphan.paths = [...nss, switchNamespace(id)].map((ns) => `/etc/netns/${ns}`);
      records.set(id, orphan);
    } else {
      for (const ns of nss) if (!r.namespaces.includes(ns)) r.namespaces.push(ns);
    }
  }
  for (const r of records.values()) {
    const ownerAlive = r.pid > 0 && isAlive(r.pid, r.pidStartTicks);
    if (ownerAlive && !opts.force) {
      report.skippedLive.push(r.labId);
      continue;
    }
    const killed = teardownRecord(r);
    report.labs.push({ labId: r.labId, owner: r.pid || undefined, namespaces: r.namespaces, killed });
  }
  return report;
}

/** `fl-*` entries under /etc/netns (for checks that nothing is left). */
export function leftoverEtcNetns(): string[] {
  try {
    return readdirSync('/etc/netns').filter((n) => n.startsWith('fl-'));
  } catch {
    return [];
  }
}
