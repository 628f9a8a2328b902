import { isIP } from 'node:net';
import { z } from 'zod';
import { durationSchema } from '../common/index.js';
import { CONTINENTS } from '../geo-dns/options.js';
import type { AnswerCheck } from './resolve.js';

const hostPortRe = /^(?:\[([0-9a-fA-F:]+)\]|([0-9.]+)):(\d{1,5})$/;

/** An upstream server as `address:port` (`[v6]:port`); the port is required (the lab's geo-dns is on a free port). */
const upstreamSchema = z.string().refine(
  (s) => {
    const m = hostPortRe.exec(s);
    if (!m) return false;
    const port = Number(m[3]);
    return isIP(m[1] ?? m[2] ?? '') !== 0 && port > 0 && port < 65536;
  },
  { message: 'expected address:port of an authoritative server, e.g. 127.0.0.1:5300 or [::1]:5300' },
);

const cidrSchema = z.string().refine(
  (s) => {
    const [ip, len, ...rest] = s.split('/');
    if (rest.length > 0 || !ip || len === undefined) return false;
    const fam = isIP(ip);
    const n = Number(len);
    return fam !== 0 && Number.isInteger(n) && n >= 0 && n <= (fam === 4 ? 32 : 128);
  },
  { message: 'expected a CIDR, e.g. 198.51.100.0/24 or 2001:db8::/56' },
);

const addressSchema = z.string().refine((s) => isIP(s) !== 0, { message: 'expected an IP address' });

/** A forward zone: names at or under `zone` go to these servers (tried in turn on timeout). */
export const forwardZoneSchema = z.strictObject({
  /** `iot.example.com`, or `.` for every name. */
  zone: z.string().min(1),
  upstream: z.array(upstreamSchema).min(1),
});

/** Where the resolver is, as a report names it (the authoritative server locates its egress address). */
export const resolverLocationSchema = z.strictObject({
  continent: z.enum(CONTINENTS),
  country: z
    .string()
    .regex(/^[A-Z]{2}$/, 'expected an ISO 3166-1 alpha-2 code, e.g. US')
    .optional(),
  /** The address block the resolver's egress address is in, as the lab's geo-dns `locations` map it. */
  cidr: cidrSchema.optional(),
});

/**
 * EDNS Client Subnet (RFC 7871): `false` sends none (the authoritative server locates the resolver's own
 * egress address), `true` sends the client's address truncated to /24 (IPv4) or /56 (IPv6), the §11.1
 * defaults. `subnet` sends one fixed subnet for every client (an office resolver announcing the office).
 */
export const ecsSchema = z.union([
  z.boolean(),
  z.strictObject({
    ipv4: z.number().int().min(0).max(32).default(24),
    ipv6: z.number().int().min(0).max(128).default(56),
    subnet: cidrSchema.optional(),
  }),
]);

/** The presets a variant picks a device's resolver by (README: "Resolver personas"). */
export const PERSONAS = {
  /** An ISP's resolver in North America: sends ECS (/24, /56), serves stale answers when the upstream fails. */
  'isp-na': { location: { continent: 'NA', country: 'US' }, ecs: true, serveStale: true },
  /** An ISP's resolver in Europe, same behaviour. */
  'isp-eu': { location: { continent: 'EU', country: 'DE' }, ecs: true, serveStale: true },
  /** An office forwarder in Europe: no ECS, so answers are for the office's own location; no stale answers. */
  'office-eu': { location: { continent: 'EU', country: 'DE' }, ecs: false, serveStale: false },
  /**
   * A public anycast resolver answering from North America that sends no ECS (privacy resolvers do
   * not): a device in Europe behind it gets North America's answer.
   */
  'public-no-ecs-na': { location: { continent: 'NA', country: 'US' }, ecs: false, serveStale: true },
  /** A public resolver in North America that sends ECS: the device's own location decides. */
  'public-ecs-na': { location: { continent: 'NA', country: 'US' }, ecs: true, serveStale: true },
} as const satisfies Record<
  string,
  { location: z.input<typeof resolverLocationSchema>; ecs: boolean; serveStale: boolean }
>;
export type PersonaName = keyof typeof PERSONAS;
export const PERSONA_NAMES = Object.keys(PERSONAS) as PersonaName[];

export const resolverOptionsSchema = z.strictObject({
  name: z.string().min(1).default('resolver'),
  /** Listening address for UDP/TCP 53-style DNS, DoT and DoH. */
  host: z.string().default('127.0.0.1'),
  /** UDP and TCP port (same number); 0 picks a free one. */
  port: z.number().int().min(0).max(65535).default(0),
  /** A preset for location, ECS and serve-stale; the options given beside it win. */
  persona: z.enum(PERSONA_NAMES as [PersonaName, ...PersonaName[]]).optional(),
  location: resolverLocationSchema.optional(),
  /**
   * The address upstream queries leave from: what the authoritative server sees and locates when no
   * ECS is sent. Default: `host`.
   */
  egress: addressSchema.optional(),
  ecs: ecsSchema.optional(),
  /** Zones forwarded to authoritative servers (longest zone wins); other names get REFUSED. */
  forward: z.array(forwardZoneSchema).default([]),
  /** Lab host names answered locally (A or AAAA by the address's family), like a hosts file. */
  hosts: z.record(z.string().min(1), addressSchema).default({}),
  /** TTL of the `hosts` answers, seconds. */
  hostsTtl: z.number().int().min(0).default(60),
  /** Wait per upstream attempt. */
  timeout: durationSchema.default(1000),
  /** Attempts after the first one (next server of the zone, then round again) before SERVFAIL. */
  retries: z.number().int().min(0).max(10).default(2),
  /** Cache answers (TTL and ECS scope honoured); false forwards every query. */
  cache: z.boolean().default(true),
  /** Most cache entries kept (least recently used go first). */
  maxEntries: z.number().int().min(1).default(10_000),
  /** RFC 8767: answer with an expired record (TTL 30) when the upstream fails. Default from the persona, else false. */
  serveStale: z.boolean().optional(),
  /**
   * RFC 8767 §5: how long past expiry a record is kept and may still be served stale (with `serveStale`,
   * or by a `stale` DNS fault), seconds (default 1 day).
   */
  maxStale: z.number().int().min(1).default(86_400),
  /** Upstream resolutions in flight at once; more get SERVFAIL (bounded per-client state). */
  maxInflight: z.number().int().min(1).default(1000),
  /** A certificate for DoT (853) and DoH: leaf first (chain), PEM. Without it neither is served. */
  tls: z.strictObject({ certPem: z.string().min(1), keyPem: z.string().min(1) }).optional(),
  /** DNS over TLS (RFC 7858) port; 0 picks a free one (853 needs privileges). */
  dotPort: z.number().int().min(0).max(65535).default(0),
  /** DNS over HTTPS (RFC 8484, /dns-query) port; 0 picks a free one. */
  dohPort: z.number().int().min(0).max(65535).default(0),
  /**
   * The lab's check of forwarded answers against what the client's own location gets (emits
   * `answer-check`); the lab adapter sets it from the geo-dns the zone goes to. Not a resolver setting.
   */
  check: z.custom<AnswerCheck>((v) => typeof v === 'function', 'expected a function').optional(),
});
export type ResolverOptions = z.input<typeof resolverOptionsSchema>;
export type ParsedResolverOptions = z.output<typeof resolverOptionsSchema>;
export type ForwardZone = z.output<typeof forwardZoneSchema>;
export type ResolverLocation = z.output<typeof resolverLocationSchema>;
