import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import {
  start as startTlsInspector,
  tlsInspectorOptionsSchema,
} from '../../simulators/tls-inspector/index.js';
import { defineAdapter, servedBy } from './adapter.js';
import { credentials, hostPortMap, proxyDestinations, proxyReady } from './proxy-options.js';

export const tlsInspector = defineAdapter({
  type: 'tls-inspector',
  summary: 'a TLS-intercepting proxy (Zscaler-like) that re-signs every server certificate with its own root',
  options: z
    .object({
      /** `'host:port' → 'host:port'`: where the inspector really connects (names and SNI are kept). */
      map: hostPortMap.default({}),
      /** Host patterns tunnelled without interception. */
      passthrough: z.array(z.string()).default([]),
      fault: z.enum(['none', 'expired', 'wrong-host', 'missing-intermediate']).default('none'),
      /** Its root's common name: a site's inspection root as `fieldlab doctor` saw it (a lab key). */
      rootName: z.string().trim().min(1).max(64).default('fieldlab Inspection Root CA'),
      /** Its intermediate's; default `<rootName> Intermediate`. */
      intermediateName: z.string().trim().min(1).max(64).optional(),
      users: z.array(credentials).min(1).optional(),
      destinations: proxyDestinations,
    })
    .strict(),
  async start(ctx, o) {
    // Its own root, not in the lab trust: devices reject it until they are given it (the field fix).
    const root = await ctx.pki.createAuthority(o.rootName);
    const ca = await root.createIntermediate({
      commonName: o.intermediateName ?? `${o.rootName} Intermediate`,
    });
    const handle = await startTlsInspector({
      name: ctx.name,
      host: ctx.address,
      port: 0,
      ca,
      upstreamCa: [ctx.pki.root.certPem],
      map: o.map,
      passthrough: o.passthrough,
      fault: o.fault,
      lookup: ctx.lookup,
      ...(o.users ? { auth: { users: o.users } } : {}),
      destinations: o.destinations ?? [],
    });
    const rootCa = join(ctx.labDir, `${ctx.name}-root.pem`);
    const bundle = join(ctx.labDir, `${ctx.name}-bundle.pem`);
    writeFileSync(rootCa, handle.rootPem);
    writeFileSync(bundle, `${ctx.pki.root.certPem.trim()}\n${handle.rootPem.trim()}\n`);
    return { handle, vars: { rootCa, bundle }, ...proxyReady(ctx, o.destinations, handle) };
  },
  serve: servedBy(tlsInspectorOptionsSchema, 'tls-inspector', startTlsInspector),
});
