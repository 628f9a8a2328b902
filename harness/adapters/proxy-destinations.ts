import type { LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Destinations } from '../../simulators/common/destinations.js';

/**
 * What a lab proxy (connect-proxy, tls-inspector) may connect to: the lab's hosts and nothing else,
 * unless the scenario adds more (`extra`, or `any`). Hosts count by name and by address, as clients see
 * them (`hosts`, the netns addresses on that backend) and as the proxy itself reaches them (the lab's
 * lookup: the loopback addresses of the relays that `${sim.address}` gives a map). A simulator bound to
 * every interface runs in a lab container, whose network is the lab: its subnets count too (Docker's DNS
 * there resolves the other lab hosts to addresses in them).
 */
export async function labDestinations(
  hosts: ReadonlyMap<string, string>,
  lookup: LookupFunction,
  boundTo: string,
  extra: readonly string[] = [],
): Promise<Destinations> {
  const out = new Set<string>();
  const add = (address: string) => {
    if (!UNSPECIFIED.has(address)) out.add(address);
  };
  const names = [...hosts.keys()];
  const resolved = await Promise.all(names.map((name) => resolveAll(lookup, name)));
  for (const [i, name] of names.entries()) {
    out.add(name);
    add(hosts.get(name) ?? '');
    for (const a of resolved[i] ?? []) add(a);
  }
  if (UNSPECIFIED.has(boundTo)) for (const cidr of ownSubnets()) out.add(cidr);
  for (const e of extra) out.add(e);
  return [...out];
}

/** Addresses that mean "this host, any interface": never a destination (a connect to them goes local). */
const UNSPECIFIED = new Set(['0.0.0.0', '::', '']);

function resolveAll(lookup: LookupFunction, name: string): Promise<string[]> {
  return new Promise((resolve) => {
    lookup(name, { all: true }, (err, found) => {
      if (err) resolve([]);
      else resolve(typeof found === 'string' ? [found] : found.map((a) => a.address));
    });
  });
}

/** The subnets of this machine's non-loopback interfaces (inside a lab container: the lab network). */
function ownSubnets(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) if (!i.internal && i.cidr && i.family === 'IPv4') out.push(i.cidr);
  }
  return out;
}
