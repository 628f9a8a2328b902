import { FieldlabError } from '../../simulators/common/errors.js';
import type { ToxicSpec, ToxicType } from './spec.js';
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
  registry.set(def.type, erased(def));
}

/**
 * A definition for one toxic type, callable with any spec: each call checks that the spec is of its type
 * (what the registry's key promises) before handing it on narrowed.
 */
function erased<T extends ToxicType>(def: ToxicDefinition<T>): ToxicDefinition {
  const own = (spec: ToxicSpec): Extract<ToxicSpec, { type: T }> => {
    if (spec.type !== def.type) {
      throw new FieldlabError(
        'E_BAD_TOXIC',
        `a ${spec.type} toxic was handed to ${def.type}'s implementation`,
      );
    }
    return spec as Extract<ToxicSpec, { type: T }>;
  };
  const { activate } = def;
  return {
    type: def.type,
    directional: def.directional,
    create: (spec) => def.create(own(spec)),
    describe: (spec) => def.describe(own(spec)),
    ...(activate ? { activate: (relay, spec) => activate.call(def, relay, own(spec)) } : {}),
  };
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
