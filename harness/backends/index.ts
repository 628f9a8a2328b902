import { FieldlabError } from '../../simulators/common/errors.js';
import { type LabDefinition, startLab } from '../lab/lab.js';
import { BACKENDS } from '../scenario/model.js';
import { container } from './container/index.js';
import { loopback } from './loopback/index.js';
import { netns } from './netns/index.js';
import type { Backend, BackendLab, BackendName, CleanResult, LabContext } from './types.js';

export type { Backend, BackendLab, BackendName, BackendNetwork, CommandRun, LabContext } from './types.js';

/**
 * Every network backend by name: a new backend is a folder beside these and one line here (and its name
 * in the scenario schema's enum, `BACKENDS` in scenario/model.ts). `clean` runs them in this order.
 */
const REGISTRY: Record<BackendName, Backend> = { loopback, netns, container };

/** The backend named `name`; E_UNKNOWN_BACKEND names the known ones. */
export function backendFor(name: string): Backend {
  const b = Object.hasOwn(REGISTRY, name) ? REGISTRY[name as BackendName] : undefined;
  if (!b) {
    throw new FieldlabError('E_UNKNOWN_BACKEND', `unknown backend ${name}`, {
      hint: `backends: ${BACKENDS.join(', ')}`,
    });
  }
  return b;
}

/** Every registered backend, in the scenario schema's order. */
export function backends(): Backend[] {
  return BACKENDS.map((n) => REGISTRY[n]);
}

/** Prepares a backend's network for `def` and starts the lab on it (the network goes with the lab). */
export async function startLabOn(
  backend: Backend,
  def: LabDefinition,
  context: LabContext,
): Promise<BackendLab> {
  const network = await backend.prepare(context);
  // startLab releases the network itself when the lab fails to start.
  const lab = await startLab(def, network);
  return { lab, network };
}

/** `fieldlab clean`: every backend removes what its dead labs left. */
export function cleanAll(opts: { force: boolean }): CleanResult {
  const out: CleanResult = { removed: [], skippedLive: [] };
  for (const b of backends()) {
    const r = b.clean(opts);
    out.removed.push(...r.removed);
    out.skippedLive.push(...r.skippedLive);
  }
  return out;
}

/** A process that must exit now (a second Ctrl-C): every backend removes this process's labs at once. */
export function cleanOwnSync(): string[] {
  return backends().flatMap((b) => b.cleanOwnSync());
}
