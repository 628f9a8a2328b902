import type { LookupFunction } from 'node:net';
import { z } from 'zod';
import { destinationsSchema } from '../common/destinations.js';
import { durationSchema } from '../common/index.js';
import { parseTarget } from '../common/targets.js';

const port = z.number().int().min(1).max(65535);
const hostPortString = z.string().refine((s) => parseTarget(s) !== undefined, {
  message: 'expected host:port (e.g. iothub.lab.example:443)',
});
const proxyUrl = z.string().refine(
  (s) => {
    try {
      return ['http:', 'https:'].includes(new URL(s).protocol);
    } catch {
      return false;
    }
  },
  { message: 'expected a proxy URL http://[user:pass@]host:port (https:// for a TLS proxy)' },
);

/**
 * One policy rule (Squid's `http_access` line as data). It matches a request when every condition it
 * sets matches; rules are evaluated in order and the first match decides.
 */
export const policyRuleSchema = z.object({
  action: z.enum(['allow', 'deny']),
  /** Name shown in 403 bodies and events; default `rule-<n>`. */
  name: z.string().min(1).optional(),
  /** `CONNECT` matches tunnels only, `HTTP` plain forwarded requests only; default both. */
  method: z.enum(['CONNECT', 'HTTP']).optional(),
  /** Destination port is one of these. */
  ports: z.array(port).min(1).optional(),
  /** Destination port is NOT one of these (Squid's `!SSL_ports`). */
  notPorts: z.array(port).min(1).optional(),
  /** How explain() names the port list, e.g. `SSL_ports`. */
  portsName: z.string().min(1).optional(),
  /** Destination host matches one of these (`*` wildcards: `*.example.com`). */
  hosts: z.array(z.string().min(1)).min(1).optional(),
  /** Destination host matches none of these. */
  notHosts: z.array(z.string().min(1)).min(1).optional(),
});

const credentials = z.object({ username: z.string().min(1), password: z.string() });

/** Options of the connect proxy; every field has a default. */
export const connectProxyOptionsSchema = z
  .object({
    /** Lab name (the `source` of its events). */
    name: z.string().min(1).default('connect-proxy'),
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(0),
    /**
     * Basic proxy authentication (RFC 7617, RFC 9110 §11.7): users, or a proxy URL / `user:pass` whose
     * percent-encoded credentials are decoded (`http://user:p%40ss@host:port` → password `p@ss`).
     */
    auth: z
      .union([
        z.object({ users: z.array(credentials).min(1), realm: z.string().min(1).default('fieldlab') }),
        z.string().min(1),
      ])
      .optional(),
    /** Ordered rules, first match wins; exclusive with the simple form (allowPorts/allowHosts/denyHosts). */
    rules: z.array(policyRuleSchema).optional(),
    /** Action when no rule matches. Default: the opposite of the last rule (as Squid), or allow. */
    defaultAction: z.enum(['allow', 'deny']).optional(),
    /** Simple form: CONNECT only to these ports (Squid's SSL_ports); plain HTTP goes to any port. */
    allowPorts: z.array(port).min(1).optional(),
    /** Simple form: only these hosts (wildcards), for CONNECT and HTTP. */
    allowHosts: z.array(z.string().min(1)).min(1).optional(),
    /** Simple form: never these hosts (wildcards). */
    denyHosts: z.array(z.string().min(1)).min(1).optional(),
    /** `'host:port' → 'host:port'`: where an allowed request really goes (policy sees the original). */
    map: z.record(hostPortString, hostPortString).default({}),
    /** Chain every request through this proxy (`http://user:pass@host:port`). */
    upstream: proxyUrl.optional(),
    /** Per-target upstreams, first match wins (before `upstream`); `null` means go direct. */
    upstreamRules: z
      .array(z.object({ hosts: z.array(z.string().min(1)).min(1), upstream: proxyUrl.nullable() }))
      .default([]),
    /**
     * Where the proxy itself may connect (after `map`; the upstream proxy when chaining): host names
     * (`*` wildcards), IP addresses and CIDRs, or `any`. Anything else gets 403 and `destination-denied`.
     * Default: loopback when the proxy listens on loopback, else nothing (list them). A lab gives its
     * own hosts (names and addresses).
     */
    destinations: destinationsSchema.optional(),
    /** Serve the proxy over TLS (an `https://` proxy). */
    tls: z.object({ certPem: z.string().min(1), keyPem: z.string().min(1) }).optional(),
    /** How long a connection to the destination (or upstream proxy's answer) may take: then 504. */
    connectTimeoutMs: durationSchema.default(10_000),
    /** Name resolution for destinations (a lab resolves its own names; default: the system's). */
    lookup: z
      .custom<LookupFunction>((v) => typeof v === 'function', 'expected a net.LookupFunction')
      .optional(),
  })
  .superRefine((o, ctx) => {
    if (o.rules && (o.allowPorts || o.allowHosts || o.denyHosts)) {
      ctx.addIssue({
        code: 'custom',
        path: ['rules'],
        message: 'use either rules or the simple form (allowPorts/allowHosts/denyHosts), not both',
      });
    }
  });

export type ConnectProxyOptions = z.input<typeof connectProxyOptionsSchema>;
export type ResolvedConnectProxyOptions = z.output<typeof connectProxyOptionsSchema>;
export type PolicyRule = z.output<typeof policyRuleSchema>;
