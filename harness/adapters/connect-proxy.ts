import { z } from 'zod';
import {
  connectProxyOptionsSchema,
  policyRuleSchema,
  start as startConnectProxy,
} from '../../simulators/connect-proxy/index.js';
import { defineAdapter, servedBy } from './adapter.js';
import { credentials, hostPortMap, proxyDestinations, proxyReady } from './proxy-options.js';

export const connectProxy = defineAdapter({
  type: 'connect-proxy',
  summary:
    'an HTTP CONNECT + forward proxy (Squid-like policy, Basic auth, target mapping, chaining, TLS listener)',
  options: z
    .object({
      /** Basic auth: these users (give the client http://user:pass@host:port, percent-encoded). */
      users: z.array(credentials).min(1).optional(),
      /** CONNECT only to these ports (Squid's SSL_ports; default [443]). */
      allowPorts: z.array(z.number().int().min(1).max(65535)).min(1).optional(),
      allowHosts: z.array(z.string()).min(1).optional(),
      denyHosts: z.array(z.string()).min(1).optional(),
      /** Ordered rules, first match wins (instead of the simple form above). */
      rules: z.array(policyRuleSchema).optional(),
      defaultAction: z.enum(['allow', 'deny']).optional(),
      /** `'host:port' → 'host:port'`: where an allowed request really goes (policy sees the original). */
      map: hostPortMap.default({}),
      /** Chain through another proxy, e.g. `http://${inspector.hostport}`. */
      upstream: z.string().optional(),
      /** Serve the proxy itself over TLS (an https:// proxy) with a lab certificate. */
      tls: z.boolean().default(false),
      destinations: proxyDestinations,
    })
    .strict(),
  async start(ctx, o) {
    const cert = o.tls ? await ctx.pki.issueServer([ctx.hostName, ctx.address]) : undefined;
    const handle = await startConnectProxy({
      name: ctx.name,
      host: ctx.address,
      port: 0,
      map: o.map,
      lookup: ctx.lookup,
      ...(o.users ? { auth: { users: o.users } } : {}),
      ...(o.rules ? { rules: o.rules } : {}),
      ...(o.defaultAction ? { defaultAction: o.defaultAction } : {}),
      ...(o.allowPorts ? { allowPorts: o.allowPorts } : {}),
      ...(o.allowHosts ? { allowHosts: o.allowHosts } : {}),
      ...(o.denyHosts ? { denyHosts: o.denyHosts } : {}),
      ...(o.upstream ? { upstream: o.upstream } : {}),
      ...(cert ? { tls: { certPem: cert.chainPem, keyPem: cert.keyPem } } : {}),
      destinations: o.destinations ?? [],
    });
    return { handle, ...proxyReady(ctx, o.destinations, handle) };
  },
  serve: servedBy(connectProxyOptionsSchema, 'connect-proxy', startConnectProxy),
});
