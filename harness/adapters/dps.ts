import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import { FieldlabError } from '../../simulators/common/errors.js';
import { dpsOptionsSchema, type IotHubHandle, startDps } from '../../simulators/iot-hub/index.js';
import { defineAdapter, peerOf, servedBy } from './adapter.js';
import { refuseMainPort } from './azure-ports.js';
import { iotHub } from './iot-hub.js';

/** A dps enrollment's allocation in a scenario: policy, and the lab hubs (by simulator name) it may use. */
const dpsAllocation = {
  allocationPolicy: z.enum(['hashed', 'static']).optional(),
  iotHubs: z.array(z.string()).min(1).optional(),
};

export const dps = defineAdapter({
  type: 'dps',
  summary:
    'Azure IoT Hub Device Provisioning Service: MQTT, AMQP, HTTPS; symmetric-key and X.509 enrollments and groups',
  options: z
    .object({
      /** The lab iot-hub simulator (by name) that registrations are assigned to. */
      hub: z.string(),
      idScope: z.string().default('0ne00FAB001'),
      /**
       * Individual enrollments: symmetric key, or `x509: true` (the lab issues the device certificate, CN =
       * registration id, enrolled by thumbprint: `${name.cert-<registrationId>}`, `${name.certKey-<registrationId>}`).
       */
      enrollments: z
        .array(
          z
            .object({
              registrationId: z.string(),
              primaryKey: z.string().optional(),
              x509: z.boolean().optional(),
              ...dpsAllocation,
            })
            .strict(),
        )
        .default([]),
      /**
       * Group enrollments: a device's key is HMAC-SHA256(group key, registration id); or `x509: true`, the
       * lab intermediate CA as the group's signing certificate (devices present lab-issued chains).
       */
      groups: z
        .array(
          z
            .object({
              groupId: z.string(),
              primaryKey: z.string().optional(),
              x509: z.boolean().optional(),
              ...dpsAllocation,
            })
            .strict(),
        )
        .default([]),
      /** More lab iot-hub simulators (by name) linked to this DPS: allocation spreads devices over all. */
      linkedHubs: z.array(z.string()).default([]),
      /** How enrollments that name no policy pick a hub: hashed (even spread by registration id) or static. */
      allocationPolicy: z.enum(['hashed', 'static']).default('hashed'),
    })
    .strict(),
  // Its hub and linked hubs: it registers devices in them.
  peers: (o) => [o.hub, ...(Array.isArray(o.linkedHubs) ? o.linkedHubs : [])],
  async start(ctx, o) {
    refuseMainPort(ctx, 'dps');
    const hubNamed = (name: string, where: string): IotHubHandle => {
      const hub = peerOf(ctx, name, iotHub);
      if (!hub) {
        throw new FieldlabError(
          'E_BAD_OPTIONS',
          `${ctx.name} (dps): options.${where}: no iot-hub named ${name}`,
          {
            hint: 'name an iot-hub simulator declared before this one in lab.simulators',
          },
        );
      }
      return hub;
    };
    const primary = hubNamed(o.hub, 'hub');
    const linked = o.linkedHubs.map((n, i) => hubNamed(n, `linkedHubs[${i}]`));
    /** An enrollment's allocation, its hubs named by simulator as the DPS knows them (host names). */
    const allocation = (e: { allocationPolicy?: 'hashed' | 'static'; iotHubs?: string[] }, where: string) =>
      e.allocationPolicy || e.iotHubs
        ? {
            ...(e.allocationPolicy ? { allocationPolicy: e.allocationPolicy } : {}),
            ...(e.iotHubs ? { iotHubs: e.iotHubs.map((n) => hubNamed(n, `${where}.iotHubs`).hostName) } : {}),
          }
        : undefined;
    const cert = await ctx.pki.issueServer([ctx.hostName, ctx.address]);
    const handle = await startDps({
      name: ctx.name,
      host: ctx.address,
      hostName: ctx.hostName,
      idScope: o.idScope,
      tls: { certPem: cert.chainPem, keyPem: cert.keyPem },
      hub: primary,
      linkedHubs: linked,
      allocationPolicy: o.allocationPolicy,
    });
    // Registered here, not through startDps's options: the add* calls return the keys for
    // `${dps.idScope}`, `${dps.key-<registrationId>}`, `${dps.group-<groupId>}`.
    const vars: Record<string, string> = { idScope: handle.idScope };
    for (const [i, e] of o.enrollments.entries()) {
      if (!e.x509) vars[`key-${e.registrationId}`] = handle.addEnrollment(e.registrationId, e.primaryKey);
      else {
        const issued = await ctx.pki.issueClient(e.registrationId, {
          file: join(ctx.labDir, `${ctx.name}-${e.registrationId}`),
        });
        handle.addX509Enrollment(e.registrationId, new X509Certificate(issued.certPem).fingerprint256);
        vars[`cert-${e.registrationId}`] = issued.chainPath;
        vars[`certKey-${e.registrationId}`] = issued.keyPath;
      }
      const a = allocation(e, `enrollments[${i}]`);
      if (a) handle.setAllocation(e.registrationId, a);
    }
    for (const [i, g] of o.groups.entries()) {
      if (g.x509) handle.addX509Group(g.groupId, ctx.pki.intermediate.certPem);
      else vars[`group-${g.groupId}`] = handle.addGroup(g.groupId, g.primaryKey);
      const a = allocation(g, `groups[${i}]`);
      if (a) handle.setAllocation(g.groupId, a);
    }
    return { handle, vars };
  },
  serve: servedBy(dpsOptionsSchema, 'dps', startDps),
});
