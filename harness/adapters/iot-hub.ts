import { join } from 'node:path';
import { z } from 'zod';
import { iotHubOptionsSchema, start as startIotHub } from '../../simulators/iot-hub/index.js';
import { defineAdapter, servedBy } from './adapter.js';
import { refuseMainPort } from './azure-ports.js';

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
              x509: z
                .union([
                  z.object({ ca: z.literal(true) }).strict(),
                  z.object({ thumbprint: z.string(), secondaryThumbprint: z.string().optional() }).strict(),
                ])
                .optional(),
              /** Module identities (SAS): `${name.cs-<deviceId>/<moduleId>}` is each one's connection string. */
              modules: z
                .array(z.object({ moduleId: z.string(), primaryKey: z.string().optional() }).strict())
                .default([]),
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
      for (const m of d.modules) {
        vars[`cs-${d.deviceId}/${m.moduleId}`] = handle.moduleConnectionString(d.deviceId, m.moduleId);
      }
      if (d.x509 && 'ca' in d.x509) {
        const issued = await ctx.pki.issueClient(d.deviceId, {
          file: join(ctx.labDir, `${ctx.name}-${d.deviceId}`),
        });
        vars[`cert-${d.deviceId}`] = issued.chainPath;
        vars[`certKey-${d.deviceId}`] = issued.keyPath;
      }
    }
    const first = o.devices[0]?.deviceId;
    if (first) vars.connectionString = handle.connectionString(first);
    return { handle, vars };
  },
  serve: servedBy(iotHubOptionsSchema, 'iot-hub', startIotHub),
});
