import { z } from 'zod';
import { FieldlabError } from '../../simulators/common/errors.js';
import {
  type AnswerCheck,
  resolverOptionsSchema,
  start as startResolver,
} from '../../simulators/resolver/index.js';
import { defineAdapter, peerOf, servedBy } from './adapter.js';
import { geoDns } from './geo-dns.js';

export const resolver = defineAdapter({
  type: 'resolver',
  summary:
    'a forwarding DNS resolver persona (location, ECS on/off, cache by TTL and ECS scope, serve-stale, SERVFAIL on upstream timeout) on UDP/TCP, DoT and DoH',
  options: resolverOptionsSchema
    .pick({
      persona: true,
      location: true,
      ecs: true,
      hosts: true,
      hostsTtl: true,
      timeout: true,
      retries: true,
      cache: true,
      maxEntries: true,
      serveStale: true,
      maxStale: true,
    })
    .extend({
      /** Zones and where they go: a geo-dns of this lab by name (declared before), or `address:port`. */
      forward: z
        .array(z.object({ zone: z.string().min(1), to: z.array(z.string().min(1)).min(1) }).strict())
        .default([]),
      /** Serve DoT and DoH with a lab certificate for the host's name and address. */
      tls: z.boolean().default(true),
    })
    .strict(),
  // The lab geo-dns servers it forwards zones to, by name.
  peers: (o) =>
    Array.isArray(o.forward)
      ? o.forward.flatMap((f: unknown) =>
          typeof f === 'object' && f !== null && 'to' in f && Array.isArray(f.to) ? f.to : [],
        )
      : [],
  async start(ctx, o) {
    const { forward, tls, ...rest } = o;
    const upstream = (to: string, where: string): string => {
      const ep = peerOf(ctx, to, geoDns)?.endpoints.find((e) => e.name === 'dns-udp');
      if (ep) return ep.host.includes(':') ? `[${ep.host}]:${ep.port}` : `${ep.host}:${ep.port}`;
      if (/:\d+$/.test(to)) return to;
      throw new FieldlabError(
        'E_BAD_OPTIONS',
        `${ctx.name} (resolver): options.${where}: no geo-dns named ${to}`,
        {
          hint: 'name a geo-dns simulator declared before this one in lab.simulators, or give address:port',
        },
      );
    };
    const cert = tls ? await ctx.pki.issueServer([ctx.hostName, ctx.address]) : undefined;
    // The lab's check of each forwarded answer: what the zone's geo-dns gives the client's own address
    // (Route 53's TestDNSAnswer), so a report can tell a device sent to another location's records.
    const checked = forward
      .map((f) => ({
        zone: f.zone.toLowerCase().replace(/\.$/, ''),
        dns: peerOf(ctx, f.to[0] ?? '', geoDns),
      }))
      .filter((f) => f.dns !== undefined)
      .sort((a, b) => b.zone.length - a.zone.length);
    const check: AnswerCheck = ({ client, name, type }) => {
      const f = checked.find((c) => c.zone === '.' || name === c.zone || name.endsWith(`.${c.zone}`));
      if (!f?.dns) return undefined;
      const own = f.dns.testDnsAnswer(name, type, client);
      return { server: f.dns.name, location: own.location, answers: own.answers };
    };
    const handle = await startResolver({
      ...rest,
      name: ctx.name,
      host: ctx.address,
      // The scenario's `port:` (53 for clients that read resolv.conf, which takes no port) on every backend:
      // it binds its host's own address (in a netns worker, the namespace's), or fails saying why.
      port: ctx.publicPort,
      ...(checked.length > 0 ? { check } : {}),
      forward: forward.map((f, i) => ({
        zone: f.zone,
        upstream: f.to.map((t, j) => upstream(t, `forward[${i}].to[${j}]`)),
      })),
      ...(cert ? { tls: { certPem: cert.chainPem, keyPem: cert.keyPem } } : {}),
    });
    return {
      handle,
      // ECS comes from the client's own address: no relay may stand in front
      direct: handle.endpoints.map((e) => e.name),
      async labReady(hosts) {
        // Names inside a forwarded zone are its server's (a lab geo-dns serves the lab hosts too, named
        // or given as address:port, as a netns lab's own resolver gives it), so its records, routing and
        // DNS faults reach the clients of this resolver.
        const zones = forward.map((f) => f.zone.toLowerCase().replace(/\.$/, '') || '.');
        const forwarded = (name: string) =>
          zones.some((z) => z === '.' || name === z || name.endsWith(`.${z}`));
        handle.setHosts(
          Object.fromEntries([...hosts].filter(([name]) => !(name in o.hosts) && !forwarded(name))),
        );
      },
    };
  },
  serve: servedBy(resolverOptionsSchema, 'resolver', startResolver),
});
