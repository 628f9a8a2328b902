import { FieldlabError } from '../../../simulators/common/errors.js';
import type { LabSimulator } from '../../lab/lab.js';
import { groupSimulators, peersOf } from '../peer-groups.js';

/**
 * The lab's simulators in worker groups: peers (transitively) in one group, in declaration order; every
 * other simulator alone. On the netns backend each worker process serves in one host's namespace, so
 * peers placed on different network hosts are refused (E_NETNS_PEERS).
 */
export function workerGroups(
  simulators: readonly LabSimulator[],
  networkHostOf: (labHost: string) => string | undefined,
): LabSimulator[][] {
  const declared = new Set(simulators.map((s) => s.name));
  for (const s of simulators) {
    for (const p of peersOf(s, declared)) {
      const decl = simulators.find((x) => x.name === p);
      const mine = networkHostOf(s.host);
      const theirs = decl && networkHostOf(decl.host);
      if (decl && mine !== theirs) {
        throw new FieldlabError(
          'E_NETNS_PEERS',
          `${s.name} (${s.type}) works with ${p} (${decl.type}) in one process, but ${s.name} is on network host ${mine ?? s.host} and ${p} on ${theirs ?? decl.host}`,
          {
            hint: `on the netns backend put both on one host of lab.network: list ${s.host} and ${decl.host} in the names of the same host`,
          },
        );
      }
    }
  }
  return groupSimulators(simulators);
}
