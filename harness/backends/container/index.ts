import { basename } from 'node:path';
import type { Capability } from '../../capabilities.js';
import type { Lab, LabDefinition } from '../../lab/lab.js';
import { startLab } from '../../lab/lab.js';
import { labFor } from '../../lab/variant-lab.js';
import { baseCapabilities, commandProgram } from '../common.js';
import type { Backend } from '../types.js';
import { cleanContainers } from './clean.js';
import { containerNetwork } from './network.js';

export { IMAGE_UID, labOwner } from './network.js';

/** The image a container lab runs when none is given. */
function defaultImage(): string {
  return process.env.FIELDLAB_IMAGE ?? 'fieldlab:local';
}

/**
 * The container backend (Docker via testcontainers): every simulator of a lab in its own container of
 * the fieldlab image on a Docker network of the lab's own, under its lab host name; a command client in
 * a container of its own on that network, with the program from the image. Every container resolves
 * names through the lab's resolver on port 53 (lab-dns.ts), so DNS faults reach them.
 */
export const container: Backend = {
  name: 'container',
  capabilities(s, v) {
    const caps = baseCapabilities(s, v);
    // In a container the program comes from the image, not this machine.
    const argv0 = commandProgram(s, v);
    if (argv0 !== undefined) for (const c of [...caps]) if (c === `cmd:${basename(argv0)}`) caps.delete(c);
    caps.add('docker');
    return [...caps] as Capability[];
  },
  prepare: (context) =>
    containerNetwork({
      image: context.image ?? defaultImage(),
      // The simulators' own options (with the variant's) say which share a container (groups.ts).
      simulators: labFor(
        context.scenario,
        context.variant?.simulators ? { simulators: context.variant.simulators } : undefined,
      ).simulators,
    }),
  clean({ force }) {
    const c = cleanContainers({ force });
    const removed: string[] = [];
    if (c.containers.length > 0) removed.push(`removed containers ${c.containers.join(', ')}`);
    if (c.networks.length > 0) removed.push(`removed networks ${c.networks.join(', ')}`);
    return { removed, skippedLive: [] };
  },
  // Containers are left to `fieldlab clean` (their owner label names this PID).
  cleanOwnSync: () => [],
};

/** Starts a lab on the container backend (for tests and scripts that hold one open). */
export async function startContainerLab(def: LabDefinition, opts: { image?: string } = {}): Promise<Lab> {
  return startLab(
    def,
    await containerNetwork({ image: opts.image ?? defaultImage(), simulators: def.simulators }),
  );
}
