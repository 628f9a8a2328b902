import { FieldlabError } from '../../../simulators/common/errors.js';
import type { Capability } from '../../capabilities.js';
import { which } from '../../capabilities.js';
import { runCommand } from '../../clients/command.js';
import { claimBlock } from '../../lab/addresses.js';
import { patchedHosts } from '../../scenario/model.js';
import { cleanNetns, listRecords } from '../../topology/netns/index.js';
import { teardownRecord } from '../../topology/netns/teardown.js';
import { baseCapabilities, relayFaults } from '../common.js';
import type { Backend, BackendNetwork, LabContext } from '../types.js';
import { explainRoutes, firewallEvents } from './explain.js';
import { buildNetwork, type NetnsPlacement } from './network.js';
import { startSimulator } from './simulator.js';

/**
 * The netns backend (Linux, root): every host of the scenario's `lab.network` is a network namespace,
 * joined by veths and bridges, with nftables firewalls, routes and WireGuard as the scenario says. The
 * client runs in its host's namespace (`ip netns exec`), so every hop it makes crosses the kernel's
 * network; failures are explained from the firewall counters and the routes.
 */
export const netns: Backend = {
  name: 'netns',
  capabilities(s, v) {
    const caps = baseCapabilities(s, v);
    caps.add('netns');
    const hosts = s.lab.network ? patchedHosts(s.lab.network, v.network) : [];
    if (hosts.some((h) => h.wireguard)) {
      caps.add('cmd:wireguard-go');
      caps.add('cmd:wg');
    }
    if (hosts.some((h) => h.bandwidth?.length)) caps.add('cmd:tc');
    return [...caps] as Capability[];
  },
  prepare,
  clean({ force }) {
    // Listing namespaces needs iproute2; where it is absent there can be none of ours.
    if (!ownsAny()) return { removed: [], skippedLive: [] };
    const r = cleanNetns(undefined, { force });
    return {
      removed: r.labs.map((n) => {
        const killed = n.killed.length > 0 ? `, ended processes ${n.killed.join(', ')}` : '';
        return `removed network namespaces of lab ${n.labId}: ${n.namespaces.join(', ')}${killed}`;
      }),
      skippedLive: r.skippedLive,
    };
  },
  cleanOwnSync() {
    if (!ownsAny()) return [];
    const removed: string[] = [];
    for (const r of listRecords()) {
      if (r.pid !== process.pid) continue;
      teardownRecord(r);
      removed.push(r.labId);
    }
    return removed;
  },
};

function ownsAny(): boolean {
  return process.platform === 'linux' && which('ip') !== undefined;
}

/** Builds the namespaces of `lab.network` (with the variant's patch) for one lab. */
async function prepare(context: LabContext): Promise<BackendNetwork> {
  const { scenario, variant } = context;
  const network = scenario.lab.network;
  if (!network) {
    throw new FieldlabError('E_NETNS_NO_NETWORK', `${scenario.name} declares no lab.network`, {
      hint: 'the netns backend builds the hosts of lab.network; run it on the loopback backend instead',
    });
  }
  const dnsHost = scenario.lab.simulators.find((x) => x.type === 'geo-dns')?.host;
  const placement = await buildNetwork(network, variant?.network ?? {}, dnsHost);
  // Simulators still run in this process, on loopback: their relays and the lab's files need a block.
  let block: ReturnType<typeof claimBlock>;
  try {
    block = claimBlock();
  } catch (err) {
    await placement.network.teardown();
    throw err;
  }
  return netnsNetwork(placement, block);
}

function netnsNetwork(placement: NetnsPlacement, block: ReturnType<typeof claimBlock>): BackendNetwork {
  return {
    backend: 'netns',
    block,
    writesNameFiles: true,
    open: async () => {},
    place: (_host, index) => block.address(index),
    startSimulator: (lab, decl, index) => startSimulator(lab, placement, decl, index),
    clientNames: () => placement.names,
    clientAddress: (name) => placement.names.get(name),
    // The lab's DNS server serves inside a namespace, for clients there: not from this process.
    dnsServer: () => undefined,
    async close() {
      // After every socket bound in a namespace is closed (the lab stops its simulators first).
      await placement.network.teardown();
      block.release();
    },
    ...relayFaults,
    runCommand: (_lab, run) =>
      runCommand({
        argv: run.argv,
        env: run.env,
        timeoutMs: run.timeoutMs,
        ...(run.cwd !== undefined ? { cwd: run.cwd } : {}),
        ...(run.stdin !== undefined ? { stdin: run.stdin } : {}),
        ...(run.onSpawn ? { onSpawn: run.onSpawn } : {}),
        ...(run.signal ? { signal: run.signal } : {}),
        // Its host's namespace, whose /etc/netns files make lab names resolve.
        netns: placement.network.ns(run.host),
      }),
    observe: (_lab, time) => firewallEvents(placement, time),
    explain: (lab, f) => explainRoutes(lab, placement, f.clientHost, f.referenced, f.events),
  };
}
