import { join } from 'node:path';
import { z } from 'zod';
import {
  iotHubOptionsSchema,
  routeSpecSchema,
  start as startIotHub,
} from '../../simulators/iot-hub/index.js';
import { defineAdapter, servedBy } from './adapter.js';
import { refuseMainPort } from './azure-ports.js';

/**
 * X.509 instead of a key: `ca: true` (the lab issues the identity a certificate from the lab CA, which the
 * hub has registered), or the `thumbprint` of the identity's own certificate.
 */
const x509Option = z.union([
  z.object({ ca: z.literal(true) }).strict(),
  z.object({ thumbprint: z.string(), secondaryThumbprint: z.string().optional() }).strict(),
]);

export const iotHub = defineAdapter({
  type: 'iot-hub',
  summary:
    'Azure IoT Hub: MQTT, AMQP, and MQTT/AMQP over WebSocket + HTTPS on one port; SAS and X.509 devices, modules, twins, methods, C2D',
  options: z
    .object({
      devices: z
        .array(
          z
            .object({
              deviceId: z.string(),
              primaryKey: z.string().optional(),
              /**
               * X.509 instead of a key: `ca: true` (the lab issues the device a certificate, CN = device id, from
               * the lab CA, which the hub has registered: `${name.cert-<deviceId>}` chain and
               * `${name.certKey-<deviceId>}` key files), or the `thumbprint` of the device's own certificate.
               */
              x509: x509Option.optional(),
              /**
               * Module identities (`${name.cs-<deviceId>/<moduleId>}` is each one's connection string): SAS, or
               * X.509 as for devices (`ca: true`: CN `<deviceId>/<moduleId>`, files
               * `${name.cert-<deviceId>/<moduleId>}` and `${name.certKey-<deviceId>/<moduleId>}`).
               */
              modules: z
                .array(
                  z
                    .object({
                      moduleId: z.string(),
                      primaryKey: z.string().optional(),
                      x509: x509Option.optional(),
                    })
                    .strict(),
                )
                .default([]),
              /**
               * IoT Edge routes of the device, as the `$edgeHub` manifest writes them (name → `FROM ... INTO
               * $upstream | BrokeredEndpoint("/modules/<m>/inputs/<i>")`, or `{ route, priority,
               * timeToLiveSecs }`): module outputs go where they say, as edgeHub routes them.
               */
              routes: z.record(z.string(), routeSpecSchema).optional(),
            })
            .strict(),
        )
        .default([]),
    })
    .strict(),
  async start(ctx, o) {
    refuseMainPort(ctx, 'iot-hub');
    const cert = await ctx.pki.issueServer([ctx.hostName, ctx.address]);
    const handle = await startIotHub({
      name: ctx.name,
      host: ctx.address,
      hostName: ctx.hostName,
      tls: { certPem: cert.chainPem, keyPem: cert.keyPem },
      devices: o.devices,
      // The lab CA is the one CA registered (and verified) in the lab hub.
      caCertificates: [ctx.pki.root.certPem],
    });
    // `${hub.connectionString}` is the first device's; `${hub.cs-<deviceId>}` any device's,
    // `${hub.cs-<deviceId>/<moduleId>}` a module's.
    const vars: Record<string, string> = {};
    for (const d of o.devices) {
      vars[`cs-${d.deviceId}`] = handle.connectionString(d.deviceId);
      // A CA-signed identity's certificate: CN = its identity name (`<deviceId>` or `<deviceId>/<moduleId>`).
      const issueFor = async (identity: string, x509: z.infer<typeof x509Option> | undefined) => {
        if (!x509 || !('ca' in x509)) return;
        const issued = await ctx.pki.issueClient(identity, {
          file: join(ctx.labDir, `${ctx.name}-${identity.replace('/', '-')}`),
        });
        vars[`cert-${identity}`] = issued.chainPath;
        vars[`certKey-${identity}`] = issued.keyPath;
      };
      for (const m of d.modules) {
        const id = `${d.deviceId}/${m.moduleId}`;
        vars[`cs-${id}`] = handle.moduleConnectionString(d.deviceId, m.moduleId);
        await issueFor(id, m.x509);
      }
      await issueFor(d.deviceId, d.x509);
    }
    const first = o.devices[0]?.deviceId;
    if (first) vars.connectionString = handle.connectionString(first);
    return { handle, vars };
  },
  serve: servedBy(iotHubOptionsSchema, 'iot-hub', startIotHub),
});
