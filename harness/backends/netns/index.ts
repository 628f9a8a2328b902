import { FieldlabError } from '../../../simulators/common/errors.js';
import type { Capability } from '../../capabilities.js';
import { which } from '../../capabilities.js';
import { runCommand } from '../../clients/command.js';
import { isDnsFault } from '../../faults/dns.js';
import { linkHosts } from '../../faults/spec.js';
import { claimBlock } from '../../lab/addresses.js';
import { labFor } from '../../lab/variant-lab.js';
import { patchedHosts } from '../../scenario/model.js';
import { cleanNetns, listRecords } from '../../topology/netns/index.js';
import { teardownRecord } from '../../topology/netns/teardown.js';
import { baseCapabilities, programOf, relayFaults } from '../common.js';
import type { Backend, BackendNetwork, LabContext } from '../types.js';
import { clientNameFiles } from './client-resolver.js';
import { explainBlockedHops, explainRoutes, firewallEvents } from './explain.js';
import { type NetnsLabDns, netnsLabDns } from './lab-dns.js';
import { LinkFaults } from './link-faults.js';
import { buildNetwork, hostOfName, type NetnsPlacement } from './network.js';
import { workerGroups } from './peers.js';
import { NetnsSimulators } from './simulator.js';

/**
 * The netns backend (Linux, root): every host of the scenario's `lab.network` is a network namespace,
 * joined by veths and bridges, with nftables firewalls, routes and WireGuard as the scenario says. Every
 * simulator runs as its own process in its host's namespace, and the client in its own host's
 * (`ip netns exec`), so every hop crosses the kernel's network; failures are explained from the firewall
 * counters and the routes.
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
    // Host bandwidth, and a link fault's latency or bandwidth, are tc's (htb, netem).
    const shapesLink = v.faults.some(
      (f) => linkHosts(f.target) && (f.type === 'latency' || f.type === 'bandwidth'),
    );
    if (hosts.some((h) => h.bandwidth?.length) || shapesLink) caps.add('cmd:tc');
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
  refuseInProcessClients(context);
  // The simulators' own options (with the variant's) say which must share a process (peers).
  const simulators = labFor(
    scenario,
    variant?.simulators ? { simulators: variant.simulators } : undefined,
  ).simulators;
  // The lab's DNS: the scenario's server on port 53, else the lab's own resolver on a host of its own.
  const dns = netnsLabDns(network, simulators, [scenario.lab, scenario.client, scenario.load, variant]);
  const groups = workerGroups(simulators, (name) => hostOfName(dns.network, name)?.host);
  const placement = await buildNetwork(dns.network, variant?.network ?? {}, dns);
  // The lab's own files and a lab host outside lab.network take an address of a loopback block.
  let block: ReturnType<typeof claimBlock>;
  try {
    block = claimBlock();
  } catch (err) {
    await placement.network.teardown();
    throw err;
  }
  return netnsNetwork(placement, block, new NetnsSimulators(placement, groups), dns);
}

/**
 * A probe client and a load run in the fieldlab process, outside every namespace of the lab, where no
 * route reaches the simulators: refused before anything is built.
 */
function refuseInProcessClients({ scenario, variant }: LabContext): void {
  const what =
    scenario.client?.type === 'probe'
      ? 'a probe client'
      : scenario.load || variant?.load
        ? 'a load'
        : undefined;
  if (what === undefined) return;
  throw new FieldlabError(
    'E_NETNS_UNSUPPORTED',
    `${scenario.name}: ${what} runs in the fieldlab process, outside the lab's namespaces, so it cannot reach the simulators on the netns backend`,
    {
      hint: 'on netns use a command client on a lab host (e.g. curl on client.host), or run this scenario on the loopback backend',
    },
  );
}

function netnsNetwork(
  placement: NetnsPlacement,
  block: ReturnType<typeof claimBlock>,
  simulators: NetnsSimulators,
  dns: NetnsLabDns,
): BackendNetwork {
  // Faults on a link between two hosts (`proxy~hub`) are the kernel's; the rest go on relays.
  const links = new LinkFaults(placement.network);
  return {
    backend: 'netns',
    block,
    writesNameFiles: true,
    async open(lab) {
      // The lab's own resolver first: simulators that look a lab name up as they start ask it too.
      const resolver = dns.resolver;
      if (resolver && dns.server) {
        lab.hosts.set(resolver.host, dns.server.address);
        // Every address of its namespace (one per segment): each namespace asks the one on its own segment.
        await simulators.start(lab, resolver, '0.0.0.0');
      }
      // The server every namespace's resolv.conf names (on its own segment, when it has an address there).
      if (dns.server) lab.dns = { kind: 'resolver', ...dns.server };
    },
    // A host of lab.network is at its namespace address for the lab and the client alike.
    place: (host, index) => placement.hostOf(host)?.address ?? block.address(index),
    startSimulator: (lab, decl) => simulators.start(lab, decl),
    clientNames: () => placement.names,
    clientAddress: (name) => placement.names.get(name),
    // The lab's DNS server serves inside a namespace, for clients there: not from this process.
    dnsServer: () => undefined,
    async close() {
      // After every worker has ended (the lab stops its simulators first).
      links.close();
      await placement.network.teardown();
      block.release();
    },
    applyFault(lab, target, spec) {
      const link = linkHosts(target);
      if (!link) return relayFaults.applyFault(lab, target, spec);
      if (isDnsFault(spec)) {
        throw new FieldlabError('E_LINK_FAULT', `${target}: ${spec.type} is a DNS fault, not one of a link`, {
          hint: 'put it on the geo-dns or resolver simulator (target: <its name>)',
        });
      }
      lab.trackFault(links.apply(link, spec));
    },
    removeFault(lab, target, name) {
      if (!linkHosts(target)) return relayFaults.removeFault(lab, target, name);
      lab.trackFault(links.remove(name));
    },
    async runCommand(lab, run) {
      // The device's resolver picked for this run: its namespace's files name it while the program starts.
      const restore =
        run.resolver !== undefined
          ? placement.network.replaceNameFiles(
              run.host,
              clientNameFiles(lab, { resolve: run.resolve, resolver: run.resolver }),
            )
          : undefined;
      try {
        return await runCommand({
          ...programOf(run),
          ...(run.signal ? { signal: run.signal } : {}),
          // Its host's namespace, whose /etc/netns files make lab names resolve.
          netns: placement.network.ns(run.host),
        });
      } finally {
        restore?.();
      }
    },
    observe: async (_lab, time) => [
      ...(await firewallEvents(placement, time)),
      ...(await links.events(time)),
    ],
    explain: async (lab, f) => [
      ...explainBlockedHops(lab, placement, f.events),
      ...(await explainRoutes(lab, placement, f.clientHost, f.referenced, f.events)),
      ...(await links.explain()),
    ],
  };
}
