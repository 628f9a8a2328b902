/**
 * A forwarding DNS resolver with the personas devices meet in the field (issue 18): an ISP's resolver
 * that sends EDNS Client Subnet, an office forwarder that does not, a public resolver in another
 * country. It answers the lab's host names itself and forwards the scenario's zones to their
 * authoritative servers (the lab's geo-dns) from its own egress address, so where the authoritative
 * server thinks the device is depends on this resolver's location and ECS, as in the field. It caches
 * by TTL and ECS scope, retries, answers SERVFAIL when the upstream times out and can serve stale
 * answers (RFC 8767). UDP and TCP on one port, DNS over TLS and DNS over HTTPS with a lab certificate.
 * It takes the lab's DNS faults (`DnsFaultTarget`, as the geo-dns) where it answers its clients.
 */
import { DnsFaultSet, type DnsFaultSpecInput, type DnsFaultTarget } from '../common/dns-faults.js';
import type { Endpoint, SimulatorHandle } from '../common/index.js';
import { errorCode, FieldlabError, hostPort, parseOptions, SimulatorEvents } from '../common/index.js';
import { formatIp, inCidr, ipBytes, parseCidr } from '../geo-dns/ip.js';
import type { ResolverEvents, ResolverStats } from './events.js';
import {
  type ParsedResolverOptions,
  PERSONAS,
  type ResolverLocation,
  type ResolverOptions,
  resolverOptionsSchema,
} from './options.js';
import { Resolver, type ResolverConfig } from './resolve.js';
import { Transports } from './transports.js';

export type * from './events.js';
export * from './options.js';
export type { AnswerCheck } from './resolve.js';

/** A running resolver. */
export interface ResolverHandle extends SimulatorHandle<ResolverEvents, ResolverStats>, DnsFaultTarget {
  /** `dns-udp` and `dns-tcp` (same host and port), and `dot`, `doh` when a certificate was given. */
  readonly endpoints: readonly Endpoint[];
  /** What the resolver is, in a sentence a report can print: persona, location, egress, ECS. */
  readonly description: string;
  /** Empties the cache (a resolver restart, or `rndc flush`). */
  flush(): void;
  /** Adds lab host names it answers itself (name → IPv4 or IPv6 address). */
  setHosts(hosts: Readonly<Record<string, string>>): void;
}

function locationText(l: ResolverLocation | undefined): string {
  if (!l) return 'no location';
  return [l.continent, l.country, l.cidr].filter(Boolean).join('/');
}

/**
 * The address upstream queries leave from: `egress`, else the first host address of `location.cidr`
 * (the block the lab's geo-dns locates), else the listening address. An egress outside the location's
 * CIDR is refused: the authoritative server would place the resolver elsewhere than its description.
 */
function egressOf(opts: ParsedResolverOptions, location: ResolverLocation | undefined): string {
  const cidr = location?.cidr !== undefined ? parseCidr(location.cidr) : undefined;
  if (!cidr) return opts.egress ?? opts.host;
  if (opts.egress === undefined) {
    const first = Uint8Array.from(cidr.bytes);
    for (let i = 0, bits = cidr.prefix; i < first.length; i++, bits -= 8) {
      first[i] =
        bits >= 8 ? (first[i] ?? 0) : bits <= 0 ? 0 : (first[i] ?? 0) & ((0xff << (8 - bits)) & 0xff);
    }
    if (cidr.prefix < first.length * 8) first[first.length - 1] = (first[first.length - 1] ?? 0) | 1;
    return formatIp(first);
  }
  const egress = ipBytes(opts.egress);
  if (!egress || !inCidr(egress, cidr)) {
    throw new FieldlabError(
      'E_BAD_OPTION',
      `resolver: options.egress ${opts.egress} is outside options.location.cidr ${location?.cidr}`,
      {
        where: 'resolver options.egress',
        hint: 'give an egress address inside the location CIDR, or leave egress out to use its first address',
      },
    );
  }
  return opts.egress;
}

/** The options with the persona's presets under the given ones, checked as a whole. */
function configOf(opts: ParsedResolverOptions): ResolverConfig & { location?: ResolverLocation } {
  const preset = opts.persona ? PERSONAS[opts.persona] : undefined;
  const ecsIn = opts.ecs ?? preset?.ecs ?? false;
  let ecs: ResolverConfig['ecs'];
  if (ecsIn === true) ecs = { ipv4: 24, ipv6: 56 };
  else if (ecsIn !== false) {
    const subnet = ecsIn.subnet !== undefined ? parseCidr(ecsIn.subnet) : undefined;
    ecs = { ipv4: ecsIn.ipv4, ipv6: ecsIn.ipv6, ...(subnet ? { subnet } : {}) };
  }
  const location = opts.location ?? preset?.location;
  return {
    egress: egressOf(opts, location),
    ...(ecs ? { ecs } : {}),
    forward: opts.forward,
    hosts: opts.hosts,
    hostsTtl: opts.hostsTtl,
    timeoutMs: opts.timeout,
    retries: opts.retries,
    cache: opts.cache,
    maxEntries: opts.maxEntries,
    serveStale: opts.serveStale ?? preset?.serveStale ?? false,
    maxStaleS: opts.maxStale,
    maxInflight: opts.maxInflight,
    ...(location ? { location: { ...location } } : {}),
  };
}

/**
 * A DNS fault as a resolver takes it: a `stale` fault serves the cached record set, so `record` (a
 * geo-dns record id or region) has no meaning here and is refused rather than ignored.
 */
function resolverFault(spec: DnsFaultSpecInput, where: string): DnsFaultSpecInput {
  if (spec.type === 'stale' && spec.record !== undefined) {
    throw new FieldlabError(
      'E_BAD_FAULT',
      `${where}: DNS fault.record: a resolver's stale fault serves its cached answer, not a record (${spec.record})`,
      {
        where: 'fault.record',
        hint: 'leave record out (the resolver answers its expired cache entry), or target the geo-dns for an old record set',
      },
    );
  }
  return spec;
}

/** Starts the resolver on `host:port` (UDP and TCP), plus DoT and DoH when `tls` is given. */
export async function start(options?: ResolverOptions): Promise<ResolverHandle> {
  const opts = parseOptions(resolverOptionsSchema, options, 'resolver');
  const cfg = configOf(opts);
  for (const f of opts.forward) {
    for (const u of f.upstream) {
      if (u.startsWith('[') !== cfg.egress.includes(':')) {
        throw new FieldlabError(
          'E_BAD_OPTION',
          `resolver: upstream ${u} of zone ${f.zone} cannot be reached from egress ${cfg.egress} (another address family)`,
          {
            where: 'resolver options.forward',
            hint: 'use upstreams of the egress address family, or set egress to an address of theirs',
          },
        );
      }
    }
  }
  const events = new SimulatorEvents<ResolverEvents>(opts.name);
  const ecsText = cfg.ecs
    ? cfg.ecs.subnet
      ? `ECS ${formatIp(cfg.ecs.subnet.bytes)}/${cfg.ecs.subnet.prefix}`
      : `ECS /${cfg.ecs.ipv4} /${cfg.ecs.ipv6}`
    : 'no ECS';
  const description = `${opts.persona ? `${opts.persona} ` : ''}resolver ${opts.name} (${locationText(cfg.location)}, egress ${cfg.egress}, ${ecsText}${cfg.serveStale ? ', serves stale' : ''})`;
  let transports: Transports | undefined;
  const faults = new DnsFaultSet(
    opts.name,
    (type, data) => events.emitEvent(type, data as ResolverEvents[typeof type]),
    () => {
      void transports?.refuseTcp(faults.tcpRefused).catch((err: unknown) => {
        // The port was taken while TCP was refused: UDP keeps serving; say why TCP does not.
        events.emitEvent('listen-error', {
          code: errorCode(err) ?? 'ERROR',
          message: err instanceof Error ? err.message : String(err),
        });
      });
    },
  );
  const resolver = new Resolver(
    { ...cfg, description, ...(opts.check ? { check: opts.check } : {}) },
    events,
    faults,
  );
  transports = new Transports((req, client, transport) => resolver.answer(req, client, transport), events);
  try {
    await transports.listenDns(opts.host, opts.port);
    if (opts.tls) {
      await transports.listenDot(opts.host, opts.dotPort, opts.tls);
      await transports.listenDoh(opts.host, opts.dohPort, opts.tls);
    }
  } catch (err) {
    await transports.close();
    throw err;
  }
  const endpoints: Endpoint[] = [
    { name: 'dns-udp', host: opts.host, port: transports.port, protocol: 'dns' },
    { name: 'dns-tcp', host: opts.host, port: transports.port, protocol: 'dns' },
  ];
  if (transports.dotPort !== undefined)
    endpoints.push({ name: 'dot', host: opts.host, port: transports.dotPort, protocol: 'dot' });
  if (transports.dohPort !== undefined) {
    endpoints.push({
      name: 'doh',
      host: opts.host,
      port: transports.dohPort,
      protocol: 'https',
      url: `https://${hostPort(opts.host, transports.dohPort)}/dns-query`,
    });
  }
  let stopping: Promise<void> | undefined;
  return {
    name: opts.name,
    endpoints,
    events,
    description,
    stats: () => ({
      ...resolver.counters,
      byTransport: { ...resolver.counters.byTransport },
      byRcode: { ...resolver.counters.byRcode },
      cacheEntries: resolver.cache.size,
    }),
    flush: () => resolver.cache.clear(),
    addDnsFault: (spec) => faults.add(resolverFault(spec, opts.name)),
    removeDnsFault: (name) => faults.remove(name),
    dnsFaults: () => faults.list(),
    setHosts(hosts) {
      const checked = parseOptions(resolverOptionsSchema.shape.hosts, hosts, 'resolver hosts');
      resolver.setHosts(checked);
    },
    stop() {
      stopping ??= (async () => {
        faults.stop();
        resolver.stop();
        await transports.close();
      })();
      return stopping;
    },
  };
}
