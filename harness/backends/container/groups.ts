import { FieldlabError } from '../../../simulators/common/errors.js';
import type { LabSimulator } from '../../lab/lab.js';
import { groupSimulators } from '../peer-groups.js';

/**
 * The lab's simulators by container, in declaration order: simulators that reach each other's handles
 * (`peer()`: a DPS's hub, a tunnel service's notify broker; see the adapters' `peers`) must share a
 * process, and simulators on one lab host share its one address, so each group runs in one container
 * that answers to all of its members' lab host names. Every other simulator has a container of its own.
 * A container has one address on the lab network: two members that declare the same port are refused
 * (E_CONTAINER_PEERS) before anything starts, e.g. two resolvers on 53 forwarding to one geo-dns.
 */
export function containerGroups(simulators: readonly LabSimulator[]): LabSimulator[][] {
  const firstOnHost = new Map<string, string>();
  for (const s of simulators) if (!firstOnHost.has(s.host)) firstOnHost.set(s.host, s.name);
  const groups = groupSimulators(simulators, (s) => [firstOnHost.get(s.host) ?? s.name]);
  for (const group of groups) {
    const byPort = new Map<number, LabSimulator>();
    for (const s of group) {
      if (!s.port) continue;
      const other = byPort.get(s.port);
      if (other) {
        throw new FieldlabError(
          'E_CONTAINER_PEERS',
          `${other.name} and ${s.name} both listen on port ${s.port}, but they share one container (one address) on the container backend: ${group.map((m) => m.name).join(', ')} work together in one process`,
          {
            hint: 'give one of them another port, or run the scenario on the loopback or netns backend, where each lab host has an address of its own',
          },
        );
      }
      byPort.set(s.port, s);
    }
  }
  return groups;
}
