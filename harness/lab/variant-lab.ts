import type { DnsFaultSpecInput } from '../faults/dns.js';
import type { ToxicSpecInput } from '../faults/spec.js';
import type { Scenario, Variant } from '../scenario/model.js';
import type { LabDefinition } from './lab.js';
import type { TimelineOptions } from './timeline.js';

/**
 * The lab of a scenario (or a lab file) for one variant: the scenario's simulators with the variant's
 * option overrides merged in. `fieldlab run` and `fieldlab up` both start this.
 */
export function labFor(
  scenario: Pick<Scenario, 'name' | 'lab'>,
  variant: Pick<Variant, 'simulators'> | undefined,
  timeline?: TimelineOptions,
): LabDefinition {
  return {
    name: scenario.name,
    ...(timeline ? { timeline } : {}),
    hosts: scenario.lab.hosts,
    simulators: scenario.lab.simulators.map((sim) => ({
      ...sim,
      options: { ...sim.options, ...(variant?.simulators[sim.name] ?? {}) },
    })),
  };
}

/**
 * Puts a variant's faults in place for the backend the lab runs on: a fault whose `backends:` leaves that
 * backend out is not applied (it models something another backend shows by itself).
 */
export function applyVariantFaults(
  faults: Variant['faults'],
  backend: string,
  apply: (target: string, spec: ToxicSpecInput | DnsFaultSpecInput) => void,
): void {
  for (const f of faults) {
    const { target, backends, ...spec } = f;
    if (backends && !backends.some((b) => b === backend)) continue;
    apply(target, spec);
  }
}
