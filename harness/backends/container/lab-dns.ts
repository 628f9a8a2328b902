import { writeFileSync } from 'node:fs';
import { FieldlabError } from '../../../simulators/common/errors.js';
import type { Lab, LabSimulator } from '../../lab/lab.js';
import { forwardZones, LAB_DNS_HOST, LAB_DNS_NAME, labResolverDecl } from '../../lab/lab-dns.js';

/**
 * The container lab's DNS (issue 18.1): the resolver on port 53 that every container of the lab (the
 * simulators' and the client's) asks, through a lab file mounted over its /etc/resolv.conf. Docker leaves
 * a user's mount of /etc/resolv.conf alone; `--dns` would not do, since it only sets the upstream of
 * Docker's embedded DNS (127.0.0.11), which answers the lab host names itself from the network aliases,
 * past the lab's DNS and its faults. The resolver is the one the scenario declares on port 53, else the
 * lab's own (`lab-dns` on ns.fieldlab.internal, as on loopback): it answers every lab host name with its
 * container's address and forwards each geo-dns zone to its server.
 */
export interface ContainerLabDns {
  /** The resolver simulator's name (its events' source, a DNS fault target). */
  name: string;
  /** Its container's address on the lab network (resolv.conf takes no port: it listens on 53). */
  address: string;
  /** The lab's resolv.conf on this side, mounted read-only over every container's /etc/resolv.conf. */
  resolvConf: string;
  /** Whether it is the lab's own resolver, to start once the geo-dns servers it forwards to run. */
  own: boolean;
}

/** The resolver a scenario declares on port 53 (resolv.conf takes no port), which is then the lab's DNS. */
export function declaredResolver(simulators: readonly LabSimulator[]): LabSimulator | undefined {
  return simulators.find((s) => s.type === 'resolver' && s.port === 53);
}

/**
 * Decides the lab's DNS once every host has its address, before any container starts (their resolv.conf
 * names it): the declared resolver's address, or a new one (`place`) for the lab's own. Writes the lab's
 * resolv.conf and records the resolver as the lab's DNS (`lab.dns`, `lab.hosts` for its own).
 */
export function planLabDns(
  lab: Lab,
  simulators: readonly LabSimulator[],
  place: (host: string) => string,
): ContainerLabDns {
  const declared = declaredResolver(simulators);
  let dns: ContainerLabDns;
  const resolvConf = lab.resolvConf;
  const declaredAddress = declared && lab.hosts.get(declared.host);
  if (declared && declaredAddress !== undefined) {
    dns = { name: declared.name, address: declaredAddress, resolvConf, own: false };
  } else {
    if (simulators.some((s) => s.name === LAB_DNS_NAME || s.host === LAB_DNS_HOST)) {
      throw new FieldlabError(
        'E_CONTAINER_LAB_DNS',
        `the scenario uses ${LAB_DNS_NAME} / ${LAB_DNS_HOST}, the names of the container lab's own resolver`,
        { hint: `rename that simulator or host, or declare a resolver with port: 53 as the lab's DNS` },
      );
    }
    const address = place(LAB_DNS_HOST);
    lab.hosts.set(LAB_DNS_HOST, address);
    dns = { name: LAB_DNS_NAME, address, resolvConf, own: true };
  }
  // As the loopback lab's (lab.ts): the resolver alone, so every lab name is a query it answers.
  writeFileSync(resolvConf, `# fieldlab lab ${lab.id}\nnameserver ${dns.address}\n`, { mode: 0o644 });
  lab.dns = { kind: 'resolver', address: dns.address, name: dns.name };
  return dns;
}

/**
 * The lab's own resolver, once the geo-dns servers run: every zone of theirs forwarded to its server's
 * UDP endpoint by address (each runs in a container of its own, not in the resolver's process), without
 * a cache (a fault put on a geo-dns acts on the next lookup) and without DoT/DoH.
 */
export function ownResolver(lab: Lab, simulators: readonly LabSimulator[]): LabSimulator {
  const forward = forwardZones({ name: lab.name, simulators: [...simulators] }).map(({ zone, to }) => ({
    zone,
    to: to.map((server) => {
      const udp = lab.sim(server).endpoints.find((e) => e.name === 'dns-udp');
      if (!udp) throw new Error(`container lab: the geo-dns ${server} reported no dns-udp endpoint`);
      return `${udp.host}:${udp.port}`;
    }),
  }));
  return labResolverDecl(forward, { clientSubnet: true });
}
