import { FieldlabError } from '../../simulators/common/errors.js';
import { port53Check } from '../capabilities.js';
import { startInProcess } from './in-process.js';
import type { Lab, LabDefinition, LabSimulator, RunningSimulator } from './lab.js';
import type { LabReadyHook } from './network.js';

/** The lab resolver's simulator name (its events' `source`) and host name, when the lab starts its own. */
export const LAB_DNS_NAME = 'lab-dns';
export const LAB_DNS_HOST = 'ns.fieldlab.internal';

/** Where the client's resolv.conf points, or why the hosts file stands in. */
export type LabDns =
  | { kind: 'resolver'; address: string; name: string; hook?: LabReadyHook }
  | { kind: 'hosts-file'; notice: string; reason: string };

/** What this process has already said about the fallback (said once per run, not per lab). */
let noticeGiven = false;

/**
 * The lab's own DNS (issue 18.1): a `resolver` simulator on port 53 of a lab address (resolv.conf takes no
 * port) that answers the lab's host names and forwards each geo-dns zone to its server; other names get
 * REFUSED at once, so no query leaves the machine. A resolver the scenario declares on port 53 is that
 * resolver. Where port 53 cannot be bound the lab's hosts file is the fallback, and the run says so once.
 */
export async function startLabDns(lab: Lab, def: LabDefinition): Promise<LabDns> {
  const declared = def.simulators.find((s) => s.type === 'resolver' && s.port === 53);
  const declaredAddress = declared && lab.hosts.get(declared.host);
  if (declared && declaredAddress !== undefined) {
    return { kind: 'resolver', address: declaredAddress, name: declared.name };
  }
  const check = port53Check();
  if (!check.ok) return fallback(lab, check.reason);
  if (lab.simulators.has(LAB_DNS_NAME) || lab.hosts.has(LAB_DNS_HOST)) {
    return fallback(
      lab,
      `the scenario already uses ${LAB_DNS_NAME} / ${LAB_DNS_HOST}, the lab resolver's names`,
    );
  }
  const address = lab.network.place(LAB_DNS_HOST, lab.hosts.size + 1);
  if (address === undefined) return fallback(lab, 'this network places no lab resolver');
  lab.hosts.set(LAB_DNS_HOST, address);
  // On loopback every client asks from 127.0.0.1: the scenario's geo-dns locations place that address.
  const decl = labResolverDecl(forwardZones(def), { clientSubnet: false });
  try {
    const started = await startInProcess(lab, decl, def.simulators.length);
    return {
      kind: 'resolver',
      address,
      name: LAB_DNS_NAME,
      ...(started.labReady ? { hook: started.labReady } : {}),
    };
  } catch (err) {
    lab.hosts.delete(LAB_DNS_HOST);
    return fallback(lab, `it could not listen on ${address}:53 (${(err as Error).message})`);
  }
}

/**
 * The lab's own resolver as a simulator declaration, on every backend. No cache: every query reaches the
 * geo-dns, so a fault put on it (or taken off) acts on the next lookup. `clientSubnet`: the client's own
 * address as ECS (RFC 7871 §7.1.2, source prefix /32 and /128), so the geo-dns locates the device as if it
 * had asked directly, never the lab's resolver (netns and containers, where each client has its address).
 */
export function labResolverDecl(
  forward: Array<{ zone: string; to: string[] }>,
  { clientSubnet }: { clientSubnet: boolean },
): LabSimulator {
  return {
    name: LAB_DNS_NAME,
    type: 'resolver',
    host: LAB_DNS_HOST,
    port: 53,
    options: {
      tls: false,
      cache: false,
      ...(clientSubnet ? { ecs: { ipv4: 32, ipv6: 128 } } : {}),
      forward,
    },
  };
}

/** Each geo-dns zone goes to its server (the first declaring a zone wins, as in a delegation). */
export function forwardZones(def: LabDefinition): Array<{ zone: string; to: string[] }> {
  const zones = new Map<string, string>();
  for (const s of def.simulators) {
    if (s.type !== 'geo-dns') continue;
    const list = (s.options as { zones?: unknown } | undefined)?.zones;
    if (!Array.isArray(list)) continue;
    for (const z of list) {
      const origin = (z as { origin?: unknown }).origin;
      if (typeof origin !== 'string' || origin.includes('${')) continue;
      const zone = origin.toLowerCase().replace(/\.$/, '');
      if (!zones.has(zone)) zones.set(zone, s.name);
    }
  }
  return [...zones].map(([zone, to]) => ({ zone, to: [to] }));
}

function fallback(lab: Lab, why: string): LabDns {
  const notice = `lab DNS: no resolver on port 53: ${why}. Clients resolve lab names from the lab's hosts file; DNS faults and resolver personas do not reach command clients`;
  lab.addEvent({ time: Date.now(), source: LAB_DNS_NAME, type: 'fallback', data: { notice } });
  if (!noticeGiven) {
    noticeGiven = true;
    process.stderr.write(`fieldlab: note: ${notice}\n`);
  }
  return { kind: 'hosts-file', notice, reason: why };
}

/**
 * The address the client's resolv.conf names when the scenario picks the device's resolver
 * (`client.resolver`): that resolver persona's own, on port 53. Never the hosts file in its place: where
 * the lab has no DNS on port 53 the pick would not reach the client and the run's DNS evidence would be
 * about a resolver it never asked, so the run is refused, saying how to get port 53.
 */
export function pickedResolverAddress(
  dns: LabDns | undefined,
  resolver: string,
  sim: Pick<RunningSimulator, 'decl' | 'endpoints'> | undefined,
): string {
  if (dns?.kind !== 'resolver') {
    const why = dns?.reason ?? 'this lab network runs no DNS for its clients';
    throw new FieldlabError(
      'E_NO_LAB_DNS',
      `client resolver ${resolver}: the lab has no DNS on port 53, so no resolver can be the client's (${why})`,
      {
        hint: "run as root or give node CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep $(which node)), and add dns53 to the scenario's requires: so a machine without it skips it",
      },
    );
  }
  if (sim?.decl.type !== 'resolver') {
    const what = sim
      ? `${resolver} is a ${sim.decl.type}, not a resolver`
      : `the lab has no simulator ${resolver}`;
    throw new FieldlabError('E_NO_SUCH_RESOLVER', `client resolver ${resolver}: ${what}`, {
      hint: 'name a simulator of type resolver with port: 53 in client.resolver',
    });
  }
  const udp = sim.endpoints.find((e) => e.name === 'dns-udp');
  // resolv.conf(5): `nameserver` takes an address, never a port: the client asks port 53.
  if (udp?.port !== 53) {
    throw new FieldlabError(
      'E_NO_SUCH_RESOLVER',
      `client resolver ${resolver} listens on port ${udp?.port ?? 'none'}, and resolv.conf takes no port`,
      { hint: `give ${resolver} port: 53` },
    );
  }
  return udp.host;
}

/**
 * The lab host whose DNS server every namespace's resolv.conf names (netns, where each simulator serves in
 * its host's namespace): the resolver the scenario declares on port 53, else a geo-dns on 53 (its default
 * there), and whether it is a resolver (which answers every lab name, so the hosts files leave them to it).
 * Undefined: no lab DNS, lookups of names outside the hosts file fail at once.
 */
export function labDnsHost(
  simulators: ReadonlyArray<Pick<LabSimulator, 'type' | 'host' | 'port'>>,
): { host: string; resolver: boolean } | undefined {
  const resolver = simulators.find((s) => s.type === 'resolver' && s.port === 53);
  if (resolver) return { host: resolver.host, resolver: true };
  const geoDns = simulators.find((s) => s.type === 'geo-dns' && (!s.port || s.port === 53));
  return geoDns && { host: geoDns.host, resolver: false };
}
