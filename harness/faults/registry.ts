import { FieldlabError } from '../../simulators/common/errors.js';
import type { ToxicType } from './spec.js';
import type { ToxicDefinition } from './toxic.js';
import { bandwidth } from './toxics/bandwidth.js';
import { blackhole } from './toxics/blackhole.js';
import { latency } from './toxics/latency.js';
import { limitData } from './toxics/limit-data.js';
import { mtuBlackhole } from './toxics/mtu-blackhole.js';
import { refuse } from './toxics/refuse.js';
import { resetPeer } from './toxics/reset-peer.js';
import { slicer } from './toxics/slicer.js';
import { slowClose } from './toxics/slow-close.js';
import { timeout } from './toxics/timeout.js';

/** Toxic implementations by type name (Toxiproxy's `toxics.Register`). */
const registry = new Map<ToxicType, ToxicDefinition>();

/** Registers (or replaces) the implementation of a toxic type. */
export function registerToxic<T extends ToxicType>(def: ToxicDefinition<T>): void {
  registry.set(def.type, def as unknown as ToxicDefinition);
}

/** The implementation of a toxic type; E_BAD_TOXIC when none is registered. */
export function toxicDefinition(type: ToxicType): ToxicDefinition {
  const def = registry.get(type);
  if (!def) {
    throw new FieldlabError('E_BAD_TOXIC', `no implementation registered for toxic type ${type}`, {
      hint: `registered: ${[...registry.keys()].join(', ')}`,
    });
  }
  return def;
}

for (const def of [
  latency,
  bandwidth,
  timeout,
  resetPeer,
  slowClose,
  slicer,
  limitData,
  mtuBlackhole,
  blackhole,
  refuse,
]) {
  registerToxic(def as ToxicDefinition<ToxicType>);
}
