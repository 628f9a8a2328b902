import type { Socket as UdpSocket } from 'node:dgram';
import { FieldlabError } from '../../simulators/common/errors.js';
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

/** A port the geo-dns could not bind, said as what to do (port 53 needs privileges). */
function listenError(name: string, address: string, port: number, err: unknown): unknown {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code !== 'EACCES' && code !== 'EADDRINUSE') return err;
  return new FieldlabError('E_LISTEN', `${name} (geo-dns): cannot listen on ${address}:${port}: ${code}`, {
    hint:
      code === 'EACCES'
        ? 'port 53 (any port below 1024) needs root or CAP_NET_BIND_SERVICE: run with it (the capability dns53), or drop `port:` for a free one'
        : 'another server holds that port: pick another, or drop `port:` for a free one',
    cause: err,
  });
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
    // Elsewhere on the scenario's `port:` (53 for clients that read resolv.conf), or a free one: a port
    // that cannot be bound is an error, never silently another.
    let bound: { udp: UdpSocket; tcp: object } | undefined;
    const port = ctx.bindPublic && ctx.bindPublicUdp ? ctx.publicPort || 53 : ctx.publicPort;
    const handle = await (async () => {
      if (ctx.bindPublic && ctx.bindPublicUdp) {
        const udp = await ctx.bindPublicUdp(port);
        bound = { udp, tcp: await ctx.bindPublic(port) };
      }
      return startGeoDns({
        ...o,
        name: ctx.name,
        host: ctx.address,
        port: bound ? 0 : port,
        ...(bound ? { bound } : {}),
      });
    })().catch((err: unknown) => {
      throw listenError(ctx.name, ctx.address, port, err);
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
