import { FieldlabError } from '../../../simulators/common/errors.js';
import { runCommand } from '../../clients/command.js';
import { isDnsFault } from '../../faults/dns.js';
import { clean, cleanOwnSync } from '../../lab/clean.js';
import type { Lab } from '../../lab/lab.js';
import { loopbackNetwork } from '../../lab/loopback-network.js';
import { baseCapabilities, programOf, relayFaults, seesNothingMore } from '../common.js';
import type { Backend, CommandRun } from '../types.js';

/**
 * The loopback backend (the default; unprivileged, any OS): each lab host is an address of the lab's own
 * 127.A.B.0/24, simulators run in this process behind relays, and a command client runs here, in a
 * private mount namespace where the lab's hosts file and resolv.conf stand in for the system's.
 */
export const loopback: Backend = {
  name: 'loopback',
  capabilities(s, v) {
    const caps = baseCapabilities(s, v);
    if (s.client?.type === 'command' && s.client.resolve === 'lab') {
      caps.add('userns');
      // A DNS fault reaches the client only through the lab DNS on port 53 (the hosts file is no DNS), and
      // so does the resolver the scenario picks for it.
      if (v.faults.some((f) => isDnsFault(f))) caps.add('dns53');
      if ((v.client?.resolver ?? s.client.resolver) !== undefined) caps.add('dns53');
    }
    return [...caps];
  },
  async prepare() {
    return {
      ...loopbackNetwork(),
      ...relayFaults,
      ...seesNothingMore,
      runCommand: async (lab, run) => {
        const namespace = namespaceFor(lab, run);
        return runCommand({
          ...programOf(run),
          // A process: ended (SIGTERM, then SIGKILL) and awaited, so none outlives the lab.
          ...(run.signal ? { signal: run.signal } : {}),
          ...(namespace ? { namespace } : {}),
        });
      },
    };
  },
  clean({ force }) {
    const r = clean({ force });
    const removed = r.labs.map((l) => {
      const killed = l.killed.length > 0 ? `, ended processes ${l.killed.join(', ')}` : '';
      return `removed lab ${l.labId} (${l.reason}${killed})`;
    });
    for (const b of r.blocks) removed.push(`released address block ${b}.0/24`);
    return { removed, skippedLive: r.skippedLive };
  },
  cleanOwnSync,
};

/**
 * The private mount namespace's files for a client that resolves lab names: the lab's hosts file and the
 * resolv.conf of its resolver (the lab DNS, or the persona `client.resolver` picks).
 */
function namespaceFor(lab: Lab, run: CommandRun): { hostsFile: string; resolvConf: string } | undefined {
  if (run.resolve === 'lab') return { hostsFile: lab.hostsFile, resolvConf: lab.resolvConfFor(run.resolver) };
  if (run.resolver !== undefined) {
    throw new FieldlabError(
      'E_SCENARIO',
      `client resolver ${run.resolver} needs client.resolve: lab (with resolve: none the program resolves as the machine does)`,
      { hint: 'remove `resolve: none` from the client, or its resolver' },
    );
  }
  return undefined;
}
