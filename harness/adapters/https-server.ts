import { z } from 'zod';
import { httpsServerOptionsSchema, start as startHttpsServer } from '../../simulators/https-server/index.js';
import { BAD_CERT_KINDS } from '../../simulators/pki/index.js';
import { defineAdapter, servedBy } from './adapter.js';

const certKind = z.enum(['valid', ...BAD_CERT_KINDS]);

export const httpsServer = defineAdapter({
  type: 'https-server',
  summary: 'an HTTPS endpoint with a lab certificate (or a bad one) and fixed routes',
  options: z
    .object({
      /** Which certificate it serves: a valid lab one, or a broken one. */
      cert: certKind.default('valid'),
      /** Require a client certificate from the lab CA. */
      mtls: z.boolean().default(false),
      routes: z
        .record(
          z.string(),
          z
            .object({
              status: z.number().int().optional(),
              body: z.string().optional(),
              headers: z.record(z.string(), z.string()).optional(),
            })
            .strict(),
        )
        .default({}),
    })
    .strict(),
  async start(ctx, o) {
    const names = [ctx.hostName, ctx.address];
    const issued = o.cert === 'valid' ? await ctx.pki.issueServer(names) : await ctx.pki.bad(o.cert, names);
    const handle = await startHttpsServer({
      name: ctx.name,
      host: ctx.address,
      port: 0,
      certPem: issued.chainPem,
      keyPem: issued.keyPem,
      ...(o.mtls ? { clientCa: [ctx.pki.root.certPem] } : {}),
      routes: o.routes,
    });
    return { handle, vars: { cert: issued.certPath } };
  },
  serve: servedBy(httpsServerOptionsSchema, 'https-server', startHttpsServer),
});
