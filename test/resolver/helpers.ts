import { endpointOf } from '../../simulators/common/index.js';
import type { GeoDnsHandle, GeoDnsOptions } from '../../simulators/geo-dns/index.js';
import { start as startGeoDns } from '../../simulators/geo-dns/index.js';
import type { ResolverEvents, ResolverHandle } from '../../simulators/resolver/index.js';
import {
  type DigResult,
  EU_WEST_1,
  dig as geoDig,
  seedGlobalRecords,
  US_EAST_1,
} from '../geo-dns/helpers.js';

export type { DigResult };

/** What the geo-dns answers for global.iot.example.com: us-east-1 (North America) or eu-west-1. */
export const US = US_EAST_1;
export const EU = EU_WEST_1;
/** Client addresses on loopback that the lab's geo-dns locates. */
export const NA_CLIENT = '127.53.1.10';
export const NA_CLIENT_2 = '127.53.1.20';
export const EU_CLIENT = '127.53.2.10';
/** A resolver egress address in North America. */
export const NA_EGRESS = '127.53.1.53';
export const EU_EGRESS = '127.53.2.53';

/** The seed's geolocation zone: global.iot.example.com → NA: us-east-1, Default: eu-west-1. */
export function geoOptions(ttl = 60, extra: Partial<GeoDnsOptions> = {}): GeoDnsOptions {
  return {
    name: 'route53',
    zones: [
      {
        origin: 'iot.example.com',
        soa: { mname: 'ns1.iot.example.com', rname: 'hostmaster.iot.example.com', minimum: 30 },
        ttl,
        records: [...seedGlobalRecords(), { name: 'info', type: 'TXT', value: 'fieldlab geo dns' }],
      },
    ],
    locations: [
      { cidr: '127.53.1.0/24', continent: 'NA', country: 'US' },
      { cidr: '127.53.2.0/24', continent: 'EU', country: 'DE' },
    ],
    ...extra,
  };
}

export function startGeo(ttl = 60, extra: Partial<GeoDnsOptions> = {}): Promise<GeoDnsHandle> {
  return startGeoDns(geoOptions(ttl, extra));
}

export function upstreamOf(dns: GeoDnsHandle): string {
  const ep = endpointOf(dns, 'dns-udp');
  return `${ep.host}:${ep.port}`;
}

/**
 * dig against `server:port` (from `bind` when given), parsed by the geo-dns tests' dig. `+time=3` (the later
 * +time wins): a forwarded query may take the resolver's full upstream budget before it answers SERVFAIL.
 */
export function dig(
  server: string,
  port: number,
  args: string[],
  opts: { bind?: string; timeoutMs?: number } = {},
): Promise<DigResult> {
  return geoDig(
    { host: server, port },
    [...(opts.bind ? ['-b', opts.bind] : []), '+time=3', ...args],
    opts.timeoutMs ?? 10_000,
  );
}

/** Records one event type of a resolver. */
export function record<K extends keyof ResolverEvents & string>(
  r: ResolverHandle,
  type: K,
): ResolverEvents[K][] {
  const seen: ResolverEvents[K][] = [];
  r.events.onEvent(type, (e) => seen.push(e));
  return seen;
}

/** The last address of an answer (the A at the end of a CNAME chain). */
export function lastAddress(r: DigResult): string | undefined {
  return r.answers.at(-1)?.[4];
}
