/**
 * An authoritative DNS server with Route 53 routing policies and DNS faults, for the geo-routed endpoint
 * problem (Route 53 geolocation + AWS IoT configurable endpoints): `global.iot.example.com` answers
 * by the client's location (EDNS Client Subnet, RFC 7871, else the source address), e.g. North America →
 * us-east-1, Default → eu-west-1.
 *
 * UDP and TCP on the same host:port (`dns-udp`, `dns-tcp`). Routing per record set: simple, geolocation,
 * latency, weighted (seedable), failover (TCP health checks or `setHealth`). Faults per name (and client
 * CIDR): nxdomain, servfail, refused, drop, delay, answerFrom (wrong/stale answer), ttl.
 * A fast codec answers the common query from a cache of encoded answers; dns2's Packet handles the rest.
 */

import { DnsFaultSet, type DnsFaultSpecInput, type DnsFaultTarget } from '../common/dns-faults.js';
import type { Endpoint, SimulatorHandle } from '../common/index.js';
import { SimulatorEvents as Events, errorCode, FieldlabError, parseOptions } from '../common/index.js';
import type { AnswerInfo, GeoDnsEvents, GeoDnsStats } from './events.js';
import { locationText } from './geo.js';
import { HealthChecks } from './health.js';
import { ipBytes, LocationTable } from './ip.js';
import {
  type FaultInput,
  faultSchema,
  type GeoDnsOptions,
  geoDnsOptionsSchema,
  type LocationEntry,
  locationEntrySchema,
  type RecordInput,
  type ZoneInput,
  zoneSchema,
} from './options.js';
import { DnsServer } from './server.js';
import { rdataText, TYPE } from './wire.js';
import { latencyRows, normName, ownerName, ZoneStore } from './zone.js';

export type { AnswerInfo, GeoDnsEvents, GeoDnsStats } from './events.js';
export { bestGeo, type GeoMatch, geoSpecificity, parseGeo } from './geo.js';
export { type ClientLocation, LocationTable } from './ip.js';
export * from './options.js';
export type { Fault } from './server.js';
export { decodeQuery, encodeResponse, type Query } from './wire.js';
export { type Resolution, type StoredRecord, ZoneStore } from './zone.js';

/** A record added at runtime: absolute name (trailing dot optional), or relative to `zone`. */
export type RuntimeRecord = RecordInput & { zone?: string };

/** A running geo DNS. */
export interface GeoDnsHandle extends SimulatorHandle<GeoDnsEvents, GeoDnsStats>, DnsFaultTarget {
  /** `dns-udp` and `dns-tcp`, same host and port, protocol `dns`. */
  readonly endpoints: readonly Endpoint[];
  /**
   * Sets (or clears, with undefined) the options' fault on an absolute name: sugar for DNS faults on
   * that name (`addDnsFault`), replacing the ones it set before for that name.
   */
  setFault(name: string, fault: FaultInput | undefined): void;
  /** Overrides a record's health (by id); undefined returns it to its health check. */
  setHealth(recordId: string, healthy: boolean | undefined): void;
  /** Adds records; a name no zone serves gets a zone for its parent domain. */
  addRecords(records: readonly RuntimeRecord[]): Promise<void>;
  /** Replaces the record sets (name+type) the given records belong to. */
  setRecords(records: readonly RuntimeRecord[]): Promise<void>;
  /** Removes the record set name+type (every type when omitted). */
  removeRecords(name: string, type?: string): void;
  /** Adds a zone. */
  addZone(zone: ZoneInput): Promise<void>;
  /** Replaces the address → location table. */
  setLocations(locations: readonly LocationEntry[]): void;
  /**
   * What the server would answer a client at `clientAddress` (Route 53's TestDNSAnswer with an
   * EDNS0 client subnet of that one address): the record sets as served now, health and records
   * included, faults not (they act on the wire). Sends nothing and emits no event.
   */
  testDnsAnswer(name: string, type: string, clientAddress: string): DnsTestAnswer;
}

/** The answer of `testDnsAnswer`. */
export interface DnsTestAnswer {
  rcode: 'NOERROR' | 'NXDOMAIN' | 'REFUSED';
  answers: AnswerInfo[];
  /** Where the server placed the client (`EU/DE`, `unknown`). */
  location: string;
  reason: string;
}

/** mulberry32: a small seedable PRNG, so weighted routing is reproducible in tests. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Prefix of the faults the `faults` option and `setFault` make: the sugar replaces only its own. */
const OPTION_FAULT = 'opt_';

/**
 * The options' fault on a name as DNS fault specs (the same mechanism as a scenario's `faults:`):
 * `servfail` → {type: servfail, qname}, `{delay, answerFrom, ttl}` → a delay and a stale fault...
 */
export function optionFaultSpecs(name: string, input: FaultInput): DnsFaultSpecInput[] {
  const f = faultSchema.safeParse(input);
  if (!f.success) {
    throw new FieldlabError('E_BAD_OPTION', `geo-dns: bad fault for ${name}: ${f.error.issues[0]?.message}`, {
      hint: "use nxdomain, servfail, refused, drop, or {delay: '500ms'}, {answerFrom: id}, {ttl: 5}",
    });
  }
  const qname = normName(name);
  const v =
    typeof f.data === 'string'
      ? { [f.data === 'drop' ? 'drop' : 'rcode']: f.data === 'drop' ? true : f.data }
      : f.data;
  const o = v as {
    rcode?: 'nxdomain' | 'servfail' | 'refused';
    drop?: boolean;
    delay?: number;
    answerFrom?: string;
    ttl?: number;
    cidr?: string;
  };
  const base = { qname, ...(o.cidr !== undefined ? { cidr: o.cidr } : {}) };
  const id = (t: string) => `${OPTION_FAULT}${qname}_${t}`;
  const out: DnsFaultSpecInput[] = [];
  if (o.rcode) out.push({ ...base, type: o.rcode, name: id(o.rcode) });
  if (o.drop) out.push({ ...base, type: 'drop', name: id('drop') });
  if (o.delay !== undefined) out.push({ ...base, type: 'delay', latency: o.delay, name: id('delay') });
  if (o.answerFrom !== undefined || o.ttl !== undefined) {
    out.push({
      ...base,
      type: 'stale',
      name: id('stale'),
      ...(o.answerFrom !== undefined ? { record: o.answerFrom } : {}),
      ...(o.ttl !== undefined ? { ttl: o.ttl } : {}),
    });
  }
  return out;
}

/** Starts the DNS server on `host:port` (default 127.0.0.1, a free port), UDP and TCP. */
export async function start(options?: GeoDnsOptions): Promise<GeoDnsHandle> {
  const opts = parseOptions(geoDnsOptionsSchema, options, 'geo-dns');
  const events = new Events<GeoDnsEvents>(opts.name);
  const zones = new ZoneStore();
  zones.selfAddress = opts.bound ? opts.bound.udp.address().address : opts.host;
  for (const z of opts.zones) zones.addZone(z);
  zones.latency = latencyRows(opts.latency);
  let locations = new LocationTable(opts.locations);
  let server: DnsServer | undefined;
  const health = new HealthChecks((id, healthy, reason) => {
    server?.invalidate();
    events.emitEvent('health', { id, healthy, reason });
  });
  const faults = new DnsFaultSet(
    opts.name,
    (type, data) => events.emitEvent(type, data as GeoDnsEvents[typeof type]),
    () => {
      server?.invalidate();
      void server?.refuseTcp(faults.tcpRefused).catch((err: unknown) => {
        events.emitEvent('listen-error', {
          code: errorCode(err) ?? 'ERROR',
          message: err instanceof Error ? err.message : String(err),
        });
      });
    },
  );
  server = new DnsServer({
    faults,
    host: opts.host,
    port: opts.port,
    bound: opts.bound,
    zones,
    locations: () => locations,
    health,
    events,
    random: opts.seed !== undefined ? seededRandom(opts.seed) : Math.random,
    cache: opts.cache,
    tcpIdleTimeout: opts.tcpIdleTimeout,
  });
  const srv = server;
  for (const [name, f] of Object.entries(opts.faults))
    for (const spec of optionFaultSpecs(name, f)) faults.add(spec);
  await health.watch(zones.records());
  try {
    await srv.listen();
  } catch (err) {
    health.stop();
    throw err;
  }

  /** Absolute owner name; creates a zone for the parent domain when no zone serves the name. */
  const place = (r: RuntimeRecord): RecordInput => {
    const { zone, ...rec } = r;
    const owner = zone !== undefined ? ownerName(rec.name, normName(zone)) : normName(rec.name);
    if (!zones.zoneOf(owner)) {
      const dot = owner.indexOf('.');
      const parent = dot < 0 ? owner : owner.slice(dot + 1);
      zones.addZone(
        zoneSchema.parse({
          origin: parent,
          ttl: 60,
          soa: { mname: `ns.${parent}`, rname: `hostmaster.${parent}`, minimum: 60 },
        }),
      );
    }
    return { ...rec, name: `${owner}.` };
  };
  const addAll = async (records: readonly RuntimeRecord[]): Promise<void> => {
    const added = records.map((r) => zones.add(place(r)));
    srv.invalidate();
    await health.watch(added);
  };

  let stopping: Promise<void> | undefined;
  const endpoint = (name: string): Endpoint => ({ name, host: srv.address, port: srv.port, protocol: 'dns' });
  return {
    name: opts.name,
    endpoints: [endpoint('dns-udp'), endpoint('dns-tcp')],
    events,
    stats: () => ({ ...srv.counters, byRcode: { ...srv.counters.byRcode } }),
    setFault(name, fault) {
      const specs = fault === undefined ? [] : optionFaultSpecs(name, fault);
      faults.removePrefixed(`${OPTION_FAULT}${normName(name)}_`);
      for (const spec of specs) faults.add(spec);
      srv.invalidate();
    },
    addDnsFault: (spec) => faults.add(spec),
    removeDnsFault: (name) => faults.remove(name),
    dnsFaults: () => faults.list(),
    setHealth(recordId, healthy) {
      health.set(recordId, healthy);
    },
    addRecords: addAll,
    async setRecords(records) {
      const placed = records.map(place);
      for (const r of placed) zones.remove(normName(r.name), r.type);
      await addAll(placed);
    },
    removeRecords(name, type) {
      zones.remove(normName(name), type);
      srv.invalidate();
    },
    async addZone(zone) {
      const z = zones.addZone(parseOptions(zoneSchema, zone, 'geo-dns zone'));
      srv.invalidate();
      await health.watch(zones.records().filter((r) => zones.zoneOf(r.owner) === z));
    },
    setLocations(entries) {
      locations = new LocationTable(entries.map((e) => locationEntrySchema.parse(e)));
      srv.invalidate();
    },
    testDnsAnswer(name, type, clientAddress) {
      const qtype = TYPE[type.toUpperCase() as keyof typeof TYPE];
      if (qtype === undefined || ipBytes(clientAddress) === undefined) {
        throw new FieldlabError(
          'E_BAD_OPTION',
          `geo-dns: testDnsAnswer(${name}, ${type}, ${clientAddress}): ${qtype === undefined ? `unknown type ${type}` : `${clientAddress} is not an IP address`}`,
          { hint: `give one of ${Object.keys(TYPE).join(', ')} and the client's IPv4 or IPv6 address` },
        );
      }
      const location = locations.lookup(clientAddress);
      const res = zones.resolve(normName(name), qtype, {
        location,
        healthy: (r) => health.healthy(r),
        random: opts.seed !== undefined ? seededRandom(opts.seed) : Math.random,
      });
      return {
        rcode: res.rcode,
        answers: res.answers.map((a) => ({ name: a.name, type: a.type, ttl: a.ttl, data: rdataText(a) })),
        location: locationText(location),
        reason: res.reason,
      };
    },
    stop() {
      stopping ??= (async () => {
        faults.stop();
        health.stop();
        await srv.close();
      })();
      return stopping;
    },
  };
}
