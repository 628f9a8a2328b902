import type { LabSimulator } from '../../lab/lab.js';
import { groupSimulators } from '../peer-groups.js';

/**
 * The lab's simulators by container, in declaration order: simulators that reach each other's handles
 * (`peer()`: a DPS's hub, a tunnel service's notify broker; see the adapters' `peers`) must share a
 * process, and simulators on one lab host share its one address, so each group runs in one container
 * that answers to all of its members' lab host names. Every other simulator has a container of its own.
 */
export function containerGroups(simulators: readonly LabSimulator[]): LabSimulator[][] {
  const firstOnHost = new Map<string, string>();
  for (const s of simulators) if (!firstOnHost.has(s.host)) firstOnHost.set(s.host, s.name);
  return groupSimulators(simulators, (s) => [firstOnHost.get(s.host) ?? s.name]);
}
