import type { Socket as UdpSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { z } from 'zod';
import { durationSchema } from '../common/index.js';

const ipCidr = z.string().refine(
  (s) => {
    const [ip, len, ...rest] = s.split('/');
    if (rest.length > 0 || !ip) return false;
    const fam = isIP(ip);
    if (fam === 0) return false;
    if (len === undefined) return true;
    const n = Number(len);
    return Number.isInteger(n) && n >= 0 && n <= (fam === 4 ? 32 : 128);
  },
  { message: 'expected an IP address or CIDR, e.g. 127.53.1.0/24 or 2001:db8::/56' },
);

/** Route 53 continent codes (ContinentCode). */
export const CONTINENTS = ['AF', 'AN', 'AS', 'EU', 'NA', 'OC', 'SA'] as const;
export type Continent = (typeof CONTINENTS)[number];

/** ISO 3166-1 alpha-2 country code, e.g. `US`. */
const countryCode = z.string().regex(/^[A-Z]{2}$/);
/** Subdivision within a country (Route 53: US states), e.g. `WA`. */
const subdivisionCode = z.string().regex(/^[A-Z0-9]{1,3}$/);

/**
 * A geolocation: `*` (Default), a continent code (`NA`), a country code (`US`, `DE`), a US subdivision
 * (`US-WA`), or an object to be explicit (`{ country: NA }` is Namibia, not North America).
 */
export const geoLocationSchema = z.union([
  z
    .string()
    .regex(/^(\*|[A-Z]{2}|[A-Z]{2}-[A-Z0-9]{1,3})$/, 'expected *, a continent (NA), country (US) or US-WA'),
  z.object({
    continent: z.enum(CONTINENTS).optional(),
    country: countryCode.optional(),
    subdivision: subdivisionCode.optional(),
  }),
]);
export type GeoLocationInput = z.input<typeof geoLocationSchema>;

const srvValue = z.object({
  priority: z.number().int().min(0).max(65535),
  weight: z.number().int().min(0).max(65535),
  port: z.number().int().min(0).max(65535),
  target: z.string().min(1),
});
const soaValue = z.object({
  mname: z.string().min(1),
  rname: z.string().min(1),
  serial: z.number().int().min(0).default(1),
  refresh: z.number().int().min(0).default(3600),
  retry: z.number().int().min(0).default(600),
  expire: z.number().int().min(0).default(86400),
  minimum: z.number().int().min(0).default(60),
  /** TTL of the SOA record itself; default the zone TTL. */
  ttl: z.number().int().min(0).optional(),
});
export type SoaInput = z.input<typeof soaValue>;

const oneValue = z.union([z.string(), srvValue]);

/** A TCP health check (Route 53 health check against a lab host:port). */
export const healthCheckSchema = z.object({
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(1).max(65535),
  interval: durationSchema.default(1000),
  timeout: durationSchema.default(500),
});

/** One record (a Route 53 "record" in a record set named by name+type). */
export const recordSchema = z.object({
  /** Relative to the zone origin, `@` for the origin, absolute with a trailing dot. */
  name: z.string().min(1),
  type: z.enum(['A', 'AAAA', 'CNAME', 'TXT', 'SRV', 'NS']),
  /**
   * One value or several (an RRset). TXT: a string; SRV: `{priority, weight, port, target}` or
   * `"10 5 8883 target"`.
   */
  value: z.union([oneValue, z.array(oneValue).min(1)]),
  ttl: z.number().int().min(0).optional(),
  routing: z.enum(['simple', 'geolocation', 'latency', 'weighted', 'failover']).default('simple'),
  /** Route 53 SetIdentifier; referenced by faults (`answerFrom`) and `setHealth`. */
  id: z.string().min(1).optional(),
  /** geolocation: where this record answers. */
  location: geoLocationSchema.optional(),
  /** latency: the region this record is in (a column of the latency table). */
  region: z.string().min(1).optional(),
  /** weighted: relative weight 0–255. */
  weight: z.number().int().min(0).max(255).optional(),
  /** failover: PRIMARY or SECONDARY. */
  failover: z.enum(['PRIMARY', 'SECONDARY']).optional(),
  healthCheck: healthCheckSchema.optional(),
});
export type RecordInput = z.input<typeof recordSchema>;
export type RecordOptions = z.output<typeof recordSchema>;

export const zoneSchema = z.object({
  origin: z.string().min(1),
  soa: soaValue,
  /** Default TTL of the zone's records. */
  ttl: z.number().int().min(0).default(300),
  records: z.array(recordSchema).default([]),
});
export type ZoneInput = z.input<typeof zoneSchema>;
export type ZoneOptions = z.output<typeof zoneSchema>;

/** A row of the lab's address → location table (longest prefix wins). */
export const locationEntrySchema = z.object({
  cidr: ipCidr,
  continent: z.enum(CONTINENTS),
  country: countryCode.optional(),
  subdivision: subdivisionCode.optional(),
});
export type LocationEntry = z.output<typeof locationEntrySchema>;

/** Latency (ms) from clients at `location` to each region; the lowest wins for latency routing. */
export const latencyRowSchema = z.object({
  location: geoLocationSchema,
  regions: z.record(z.string(), z.number().nonnegative()),
});

/**
 * A DNS fault on a name (optionally only for clients in `cidr`). Shorthand: `'servfail'`, `'drop'`...
 * Sugar for the DNS faults of a scenario's `faults:` (simulators/common/dns-faults.ts): each becomes one
 * or more of them (`answerFrom`/`ttl` → `stale`), named `opt_<name>_<type>`, with the same events.
 */
export const faultSchema = z.union([
  z.enum(['nxdomain', 'servfail', 'refused', 'drop']),
  z.object({
    rcode: z.enum(['nxdomain', 'servfail', 'refused']).optional(),
    drop: z.boolean().optional(),
    /** Answer after this long (a number of ms or `2s`). */
    delay: durationSchema.optional(),
    /** Answer with this record (by id) instead of the routing decision, e.g. a stale region. */
    answerFrom: z.string().min(1).optional(),
    /** Override the answers' TTL. */
    ttl: z.number().int().min(0).optional(),
    /** Only for clients (ECS subnet or source) inside this CIDR. */
    cidr: ipCidr.optional(),
  }),
]);
export type FaultInput = z.input<typeof faultSchema>;

export const geoDnsOptionsSchema = z.object({
  name: z.string().min(1).default('geo-dns'),
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(0).max(65535).default(0),
  zones: z.array(zoneSchema).default([]),
  locations: z.array(locationEntrySchema).default([]),
  latency: z.array(latencyRowSchema).default([]),
  /** name (absolute) → fault, applied from the start. */
  faults: z.record(z.string(), faultSchema).default({}),
  /** Seed for weighted routing (deterministic for tests); default random. */
  seed: z.number().int().optional(),
  /**
   * Close a DNS-over-TCP connection idle this long (RFC 7766 §6.2.3: "of the order of seconds");
   * 0 keeps it open until the client closes.
   */
  tcpIdleTimeout: durationSchema.default(5000),
  /** Cache encoded answers per (name, type, location); default true. */
  cache: z.boolean().default(true),
  /**
   * Already-bound sockets to serve on instead of host:port: a UDP `dgram.Socket` and a listening TCP
   * handle on the same address and port (e.g. bound inside a network namespace and passed over IPC).
   */
  bound: z
    .strictObject({
      udp: z.custom<UdpSocket>(
        (v) =>
          typeof v === 'object' && v !== null && typeof (v as { address?: unknown }).address === 'function',
        'a bound dgram.Socket',
      ),
      tcp: z.custom<object>((v) => typeof v === 'object' && v !== null, 'a bound TCP handle'),
    })
    .optional(),
});
export type GeoDnsOptions = z.input<typeof geoDnsOptionsSchema>;
export type ResolvedGeoDnsOptions = z.output<typeof geoDnsOptionsSchema>;
