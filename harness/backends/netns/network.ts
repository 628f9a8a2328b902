import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { type Network, type NetworkPatch, networkHostNamed, patchedHosts } from '../../scenario/model.js';
import { applyNetns, type NetnsLab, type TopologyInput } from '../../topology/netns/index.js';

/**
 * Where a lab's names live on the netns backend: the built network, which namespace host each lab name
 * is on, and every name the namespaces resolve (their hosts files) with its address.
 */
export interface NetnsPlacement {
  network: NetnsLab;
  /** The network host a lab name is on, and the address it resolves to there. */
  hostOf(name: string): { host: string; address: string } | undefined;
  names: ReadonlyMap<string, string>;
}

/**
 * A scenario's `lab.network` (with a variant's patches) as a netns topology: every host's `names` resolve
 * to its first address in every namespace's /etc/netns hosts file, so unmodified programs find the
 * simulators by the names the scenario gives them.
 */
export function topologyFor(network: Network, patch: NetworkPatch, labId: string): TopologyInput {
  const names: Record<string, string> = {};
  const hosts = patchedHosts(network, patch).map(({ names: hostNames, ...host }) => {
    const first = firstAddress(host);
    if (first !== undefined) for (const n of hostNames) names[n] = first;
    return host;
  });
  return { labId, segments: network.segments, hosts, dns: { nameservers: [], hosts: names } };
}

/** A host's address on its first segment (without the prefix length): what its names resolve to. */
function firstAddress(h: { segments: ReadonlyArray<{ address: string }> }): string | undefined {
  return h.segments[0]?.address.split('/')[0];
}

/** The network host a lab name lives on (a host's own name counts as one of its names). */
export function hostOfName(network: Network, name: string): { host: string; address: string } | undefined {
  const h = networkHostNamed(network, name);
  const address = h && firstAddress(h);
  return h && address !== undefined ? { host: h.name, address } : undefined;
}

/**
 * Builds the network for one variant (root): namespaces, links, firewalls, WireGuard. `dns`: the lab DNS
 * server's addresses, which every namespace's resolv.conf names (see lab-dns.ts), and whether it answers
 * every lab name (then the namespaces' hosts files leave the lab names to it).
 */
export async function buildNetwork(
  network: Network,
  patch: NetworkPatch,
  dns: { nameservers: readonly string[]; answersLabNames: boolean } = {
    nameservers: [],
    answersLabNames: false,
  },
): Promise<NetnsPlacement> {
  // Short: the id is part of every namespace and default interface name (15 characters at most).
  const labId = `v${randomBytes(3).toString('hex')}`;
  const topology = topologyFor(network, patch, labId);
  const nameservers = dns.nameservers.map((a) => a.split('/')[0] ?? a);
  if (nameservers.length > 0) {
    const self = hostname();
    topology.dns = {
      ...topology.dns,
      nameservers,
      // A program looking up the machine's own name asks no lab DNS (plan.ts, `localName`).
      ...(/^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$/.test(self) && self !== 'localhost' ? { localName: self } : {}),
    };
  }
  const names = new Map<string, string>(Object.entries(topology.dns?.hosts ?? {}));
  if (nameservers.length > 0 && dns.answersLabNames) topology.dns = { ...topology.dns, hosts: {} };
  for (const h of network.hosts) {
    const first = firstAddress(h);
    if (first !== undefined && !names.has(h.name)) names.set(h.name, first);
  }
  const built = await applyNetns(topology);
  return { network: built, hostOf: (name) => hostOfName(network, name), names };
}
