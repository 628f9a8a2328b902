import { spawnSync } from 'node:child_process';
import { checkCapability } from '../../capabilities.js';
import { isAlive } from '../../lab/state.js';

/** Labels every container and network of a container lab carries (see network.ts). */
export const LAB_LABEL = 'dev.fieldlab.lab';
export const OWNER_LABEL = 'dev.fieldlab.owner';
export const OWNER_START_LABEL = 'dev.fieldlab.owner-start';

function docker(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('docker', args, { encoding: 'utf8', timeout: 30_000 });
  return { ok: r.status === 0, out: r.stdout ?? '' };
}

/**
 * Removes the containers (simulators and clients) and networks of container labs whose owner process
 * is gone (by their labels), or all of them with `force`. Without a Docker engine there is nothing.
 */
export function cleanContainers(opts: { force?: boolean } = {}): {
  containers: string[];
  networks: string[];
} {
  const out = { containers: [] as string[], networks: [] as string[] };
  if (!checkCapability('docker').ok) return out;
  const orphaned = (pid: string, start: string): boolean =>
    opts.force === true ||
    !isAlive(Number(pid), start ? Number(start) : undefined) ||
    Number(pid) === process.pid;
  // The owner labels as columns: `{{.Label "k"}}` prints one label's value ('' when absent).
  const owner = `{{.Label "${OWNER_LABEL}"}}\t{{.Label "${OWNER_START_LABEL}"}}`;
  const list = (kind: 'ps' | 'network') =>
    docker(
      kind === 'ps'
        ? ['ps', '-a', '--filter', `label=${LAB_LABEL}`, '--format', `{{.ID}}\t{{.Names}}\t${owner}`]
        : ['network', 'ls', '--filter', `label=${LAB_LABEL}`, '--format', `{{.ID}}\t{{.Name}}\t${owner}`],
    )
      .out.split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t') as [string, string, string, string]);
  for (const [id, name, pid, start] of list('ps')) {
    if (orphaned(pid, start) && docker(['rm', '-f', id]).ok) out.containers.push(name);
  }
  for (const [id, name, pid, start] of list('network')) {
    if (orphaned(pid, start) && docker(['network', 'rm', id]).ok) out.networks.push(name);
  }
  return out;
}
