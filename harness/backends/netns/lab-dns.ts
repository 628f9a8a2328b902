import type { LabSimulator } from '../../lab/lab.js';
import { forwardZones, LAB_DNS_HOST, LAB_DNS_NAME, labDnsHost, labResolverDecl } from '../../lab/lab-dns.js';
import type { Network } from '../../scenario/model.js';
import { formatIp, parseCidr } from '../../topology/netns/addresses.js';
import { hostOfName } from './network.js';

/**
 * The lab's DNS on the netns backend (issue 18.1): which server every namespace's resolv.conf names.
 *
 *   a resolver declared on port 53      → it (it answers every lab name: the hosts files leave them to it)
 *   else a geo-dns on port 53 (default) → it, as before (it serves the lab names beside its zones, and
 *                                          locates each device by its own address)
 *   else                                 → the lab's own resolver `lab-dns` (ns.fieldlab.internal), a host of
 *                                          its own with an address on every segment, so every namespace
 *                                          asks it on-link whatever its routes and firewalls; it answers
 *                                          the lab names and forwards each geo-dns zone to its server
 */
export interface NetnsLabDns {
  /** The network to build: the scenario's, with the lab resolver's host when the lab runs its own. */
  network: Network;
  /** The DNS server's addresses (the lab resolver's, one per segment); empty: no DNS, hosts files only. */
  nameservers: string[];
  /** Whether it answers every lab name (a resolver): the namespaces' hosts files leave them to it. */
  answersLabNames: boolean;
  /** The DNS simulator's name and first address (what the lab calls its DNS: `lab.dns`). */
  server?: { name: string; address: string };
  /** The lab's own resolver, to start on its host; undefined when a server of the scenario's is the DNS. */
  resolver?: LabSimulator;
}

/** The network host (namespace) the lab's own resolver runs on, or the first free name after it. */
const HOST_NAME = 'labdns';

/**
 * Where the lab's DNS is for one variant's network. `simulators`: the lab's (the variant's options
 * merged in); `literals`: every text of the scenario and variant, whose addresses the lab resolver's
 * must not take (a firewall rule, a client's URL may name an address nobody is meant to have).
 */
export function netnsLabDns(
  network: Network,
  simulators: readonly LabSimulator[],
  literals: readonly unknown[],
): NetnsLabDns {
  const declared = labDnsHost(simulators);
  if (declared) {
    const placed = hostOfName(network, declared.host);
    const type = declared.resolver ? 'resolver' : 'geo-dns';
    const sim = simulators.find((s) => s.host === declared.host && s.type === type);
    if (!placed || !sim) return { network, nameservers: [], answersLabNames: false };
    return {
      network,
      nameservers: [placed.address],
      answersLabNames: declared.resolver,
      server: { name: sim.name, address: placed.address },
    };
  }
  const none: NetnsLabDns = { network, nameservers: [], answersLabNames: false };
  // The scenario's own names win (loopback says the same in its fallback notice): no lab resolver then.
  if (simulators.some((s) => s.name === LAB_DNS_NAME) || hostOfName(network, LAB_DNS_HOST)) return none;
  const used = usedAddresses(network, literals);
  const segments = network.segments.flatMap((seg) => {
    const address = freeAddress(seg.cidr, used);
    return address === undefined ? [] : [{ segment: seg.name, address }];
  });
  if (segments.length === 0) return none;
  let name = HOST_NAME;
  for (let i = 2; network.hosts.some((h) => h.name === name); i++) name = `${HOST_NAME}${i}`;
  const host: Network['hosts'][number] = {
    name,
    names: [LAB_DNS_HOST],
    segments,
    routes: [],
    forward: false,
  };
  const extended: Network = { ...network, hosts: [...network.hosts, host] };
  const nameservers = segments.map((s) => s.address.split('/')[0] ?? s.address);
  return {
    network: extended,
    nameservers,
    answersLabNames: true,
    server: { name: LAB_DNS_NAME, address: nameservers[0] ?? '' },
    resolver: labResolverDecl(zonesByAddress(network, simulators), { clientSubnet: true }),
  };
}

/**
 * Each geo-dns zone to its server's address and port in the namespaces: the lab resolver runs in a
 * process of its own, where the geo-dns is no peer to be named.
 */
function zonesByAddress(
  network: Network,
  simulators: readonly LabSimulator[],
): Array<{ zone: string; to: string[] }> {
  return forwardZones({ name: '', simulators: [...simulators] }).flatMap(({ zone, to }) => {
    const servers = to.flatMap((name) => {
      const geo = simulators.find((s) => s.name === name);
      const placed = geo && hostOfName(network, geo.host);
      // A geo-dns serves port 53 in its namespace unless the scenario gives another (adapters/geo-dns.ts).
      return placed && geo ? [`${placed.address}:${geo.port || 53}`] : [];
    });
    return servers.length > 0 ? [{ zone, to: servers }] : [];
  });
}

/** Every IPv4 address written anywhere in the scenario and the variant (hosts, routes, rules, URLs). */
function usedAddresses(network: Network, literals: readonly unknown[]): Set<number> {
  const used = new Set<number>();
  const text = JSON.stringify([network, ...literals]);
  for (const m of text.matchAll(/(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])/g)) {
    const c = parseCidr(m[0]);
    if (c) used.add(c.address);
  }
  return used;
}

/**
 * The highest address of a segment that nothing of the scenario names (the end of a range is where a
 * network's services usually sit, away from the hosts numbered from its start). None in a /31 or /32.
 */
function freeAddress(cidr: string, used: ReadonlySet<number>): string | undefined {
  const c = parseCidr(cidr);
  if (!c || c.prefix > 30) return undefined;
  const broadcast = c.network + 2 ** (32 - c.prefix) - 1;
  // Bounded: a segment crowded near its top is searched no further than this.
  for (let a = broadcast - 1, tries = 0; a > c.network && tries < 1024; a--, tries++) {
    if (!used.has(a)) return `${formatIp(a)}/${c.prefix}`;
  }
  return undefined;
}
