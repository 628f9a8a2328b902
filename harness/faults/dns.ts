/**
 * DNS faults in the `faults:` vocabulary, beside the relay's toxics: the spec lives with the simulators
 * (simulators/common/dns-faults.ts, so a DNS simulator validates and schedules its own), the lab applies
 * it to a target that implements `DnsFaultTarget` (geo-dns; a resolver).
 *
 *   faults: [{target: dns, type: servfail, qname: global.iot.example.com, start: 2s, duration: 5s}]
 *     └─ applyFault ─┬─ DNS type  ─► lab.sim(target).handle.addDnsFault(spec)
 *                    └─ otherwise ─► lab.relay(target).addToxic(spec)
 */
import {
  DNS_FAULT_TYPES,
  type DnsFaultSpec,
  type DnsFaultSpecInput,
  type DnsFaultTarget,
  isDnsFaultTarget,
} from '../../simulators/common/dns-faults.js';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { RelayHandle } from './relay.js';
import type { ToxicSpecInput } from './spec.js';

export {
  DNS_FAULT_TYPES,
  type DnsFaultSpec,
  type DnsFaultSpecInput,
  type DnsFaultTarget,
  describeDnsFault,
  dnsFaultSpecSchema,
} from '../../simulators/common/dns-faults.js';

/** Whether a fault spec is a DNS fault (by its type) rather than a relay toxic. */
export function isDnsFault<T extends { type: string }>(f: T): f is T & { type: DnsFaultSpec['type'] } {
  return (DNS_FAULT_TYPES as readonly string[]).includes(f.type);
}

/** Simulator types that take DNS faults. */
const DNS_SIMULATORS: readonly string[] = ['geo-dns', 'resolver'];

/** What `applyFault` needs of a lab (the loopback Lab and the container lab both have it). */
export interface FaultableLab {
  sim(name: string): { decl: { type: string }; handle: unknown };
  relay(target: string): RelayHandle;
}

/** The DNS fault target named `target` (a simulator name); E_NO_DNS_TARGET when it is not one. */
export function dnsFaultTarget(lab: FaultableLab, target: string): DnsFaultTarget {
  const [name = '', endpoint] = target.split('.');
  const sim = lab.sim(name);
  if (endpoint === undefined && !isDnsFaultTarget(sim.handle) && DNS_SIMULATORS.includes(sim.decl.type)) {
    // The container backend runs the simulator in its container; only relay toxics travel there so far.
    throw new FieldlabError(
      'E_NO_DNS_TARGET',
      `${target}: DNS faults do not reach a ${sim.decl.type} on this backend`,
      {
        hint: 'run the variant on the loopback or netns backend (`backends: [loopback, netns]` on the fault)',
      },
    );
  }
  if (endpoint !== undefined || !isDnsFaultTarget(sim.handle)) {
    throw new FieldlabError(
      'E_NO_DNS_TARGET',
      `${target} (${sim.decl.type}) takes no DNS faults${endpoint !== undefined ? ' on an endpoint' : ''}`,
      {
        hint: 'target a geo-dns (or resolver) simulator by its name, e.g. target: dns; TCP toxics go to a relayed endpoint',
      },
    );
  }
  return sim.handle;
}

/** Puts one scenario fault in place: a DNS fault on its DNS simulator, else a toxic on the relay. */
export function applyFault(
  lab: FaultableLab,
  target: string,
  spec: ToxicSpecInput | DnsFaultSpecInput,
): void {
  if (isDnsFault(spec)) dnsFaultTarget(lab, target).addDnsFault(spec as DnsFaultSpecInput);
  else lab.relay(target).addToxic(spec as ToxicSpecInput);
}
