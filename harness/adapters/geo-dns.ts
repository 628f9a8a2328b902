import type { Socket as UdpSocket } from 'node:dgram';
import { geoDnsOptionsSchema, start as startGeoDns } from '../../simulators/geo-dns/index.js';
import { defineAdapter, servedBy } from './adapter.js';

/** The fully qualified names a zone list declares records for (`@` = origin; a trailing dot = absolute). */
function declaredNames(
  zones: ReadonlyArray<{ origin: string; records?: ReadonlyArray<{ name: string }> }>,
): Set<string> {
  const out = new Set<string>();
  for (const z of zones) {
    const origin = z.origin.replace(/\.$/, '').toLowerCase();
    for (const r of z.records ?? []) {
      const n = r.name.toLowerCase();
      out.add(n === '@' ? origin : n.endsWith('.') ? n.slice(0, -1) : `${n}.${origin}`);
    }
  }
  return out;
}

export const geoDns = defineAdapter({
  type: 'geo-dns',
  summary:
    'authoritative DNS with Route 53 routing policies (geolocation, latency, weighted, failover), ECS and DNS faults',
  options: geoDnsOptionsSchema.omit({ name: true, host: true, port: true, bound: true }).strict(),
  optionsForClients: true,
  async start(ctx, o) {
    // On netns it serves inside its host's namespace, on port 53 unless the scenario says otherwise
    // (resolv.conf, which every namespace's programs read, takes no port).
    let bound: { udp: UdpSocket; tcp: object } | undefined;
    if (ctx.bindPublic && ctx.bindPublicUdp) {
      const port = ctx.publicPort || 53;
      const udp = await ctx.bindPublicUdp(port);
      bound = { udp, tcp: await ctx.bindPublic(port) };
    }
    const handle = await startGeoDns({
      ...o,
      name: ctx.name,
      host: ctx.address,
      port: 0,
      ...(bound ? { bound } : {}),
    });
    const declared = declaredNames(o.zones);
    return {
      handle,
      ...(bound ? { direct: ['dns-udp', 'dns-tcp'] } : {}),
      // The lab's own names are served too (unless the scenario's zones define them), so clients that
      // use this server resolve every lab host.
      async labReady(hosts) {
        const records = [...hosts]
          .filter(([name]) => !declared.has(name))
          .map(([name, address]) => ({ name: `${name}.`, type: 'A' as const, value: address }));
        if (records.length > 0) await handle.addRecords(records);
      },
    };
  },
  serve: servedBy(geoDnsOptionsSchema, 'geo-dns', startGeoDns),
});
