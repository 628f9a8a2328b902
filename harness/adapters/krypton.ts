import { z } from 'zod';
import { FieldlabError } from '../../simulators/common/errors.js';
import { endpointOf } from '../../simulators/common/handle.js';
import type { DpsTarget as KryptonDpsTarget } from '../../simulators/krypton/dps-client.js';
import {
  type IssueCertificateFn,
  kryptonOptionsSchema,
  start as startKrypton,
} from '../../simulators/krypton/index.js';
import { defineAdapter, peerOf, servedBy } from './adapter.js';
import { dps as dpsAdapter } from './dps.js';

export const krypton = defineAdapter({
  type: 'krypton',
  summary: 'SORACOM Krypton provisioning (HTTPS :8036): credentials only for requests from the SIM network',
  options: z
    .object({
      /** Networks a request must come from. */
      allowedSources: kryptonOptionsSchema.shape.allowedSources,
      /**
       * A lab dps simulator (by name): Krypton registers each device there with X.509 attestation (a
       * certificate from the lab intermediate CA, which the DPS group enrollment `group` names) and hands
       * the device its certificate, key and assigned hub.
       */
      dps: z.string().optional(),
      /** The DPS X.509 group enrollment Krypton's devices register under (created if missing). */
      group: z.string().default('krypton'),
    })
    .strict(),
  // The DPS it registers devices at.
  peers: (o) => [o.dps],
  async start(ctx, o) {
    const cert = await ctx.pki.issueServer([ctx.hostName, ctx.address]);
    let dps: { target: KryptonDpsTarget; issue: IssueCertificateFn } | undefined;
    if (o.dps !== undefined) {
      const target = peerOf(ctx, o.dps, dpsAdapter);
      if (!target) {
        throw new FieldlabError(
          'E_BAD_OPTIONS',
          `${ctx.name} (krypton): options.dps: no dps named ${o.dps}`,
          {
            hint: 'name a dps simulator declared before this one in lab.simulators',
          },
        );
      }
      target.addX509Group(o.group, ctx.pki.intermediate.certPem);
      // Krypton is the DPS's HTTPS client: it reaches the DPS where the lab serves it.
      const ep = endpointOf(target, 'https');
      dps = {
        target: {
          host: ep.host,
          port: ep.port,
          hostName: target.hostName,
          idScope: target.idScope,
          caPem: ctx.pki.root.certPem,
        },
        issue: async (registrationId) => {
          const c = await ctx.pki.issueClient(registrationId);
          return { certPem: c.chainPem, keyPem: c.keyPem };
        },
      };
    }
    // On the netns backend Krypton binds in its own namespace: it must see the device's real source.
    const listenHandle = ctx.bindPublic ? await ctx.bindPublic() : undefined;
    const handle = await startKrypton({
      name: ctx.name,
      host: ctx.address,
      certPem: cert.chainPem,
      keyPem: cert.keyPem,
      allowedSources: o.allowedSources,
      ...(dps ? { dps: dps.target, issueCertificate: dps.issue } : {}),
      ...(listenHandle ? { listenHandle } : {}),
    });
    return { handle, ...(listenHandle ? { direct: ['https'] } : {}) };
  },
  serve: servedBy(kryptonOptionsSchema, 'krypton', startKrypton),
});
