import { join } from 'node:path';
import { z } from 'zod';
import { awsIotOptionsSchema, start as startAwsIot } from '../../simulators/aws-iot/index.js';
import type { BadCertKind } from '../../simulators/pki/index.js';
import { defineAdapter, servedBy } from './adapter.js';
import { fleetClaim, jitpFiles } from './aws-iot-files.js';

/** Device Advisor's bad server certificate cases → the lab PKI's bad certificate kinds. */
const SERVER_CERT_CASES = {
  'wrong-san': 'wrong-host',
  expired: 'expired',
  'untrusted-ca': 'unknown-root',
  'missing-intermediate': 'missing-intermediate',
} as const satisfies Record<string, BadCertKind>;

export const awsIot = defineAdapter({
  type: 'aws-iot',
  summary:
    'AWS IoT Core persona for one region: mTLS, registered certificates/CAs, fleet provisioning by claim, JITP, topic policy',
  options: z
    .object({
      region: z.string().default('us-east-1'),
      listeners: z
        .array(z.object({ protocol: z.enum(['mqtts', 'wss']) }).strict())
        .min(1)
        .default([{ protocol: 'mqtts' }]),
      /** Only clients offering ALPN `x-amzn-mqtt-ca` (MQTT on 443). */
      requireAlpn: z.boolean().default(false),
      /**
       * A device's TLS max_fragment_length (RFC 6066 §4) on mqtts: `honour` (echoed, records kept to it) or
       * `ignore`, as AWS IoT Core does: not echoed, records of up to 16 KB (Device Advisor's "TLS Receive
       * Maximum Size Fragments"). `ignore` needs fieldlab-tls-front (capability `tls-front`).
       */
      maxFragmentLength: z.enum(['honour', 'ignore']).default('honour'),
      /** Fleet provisioning templates: `{ FleetTemplate: { thingNameTemplate: 'dev-${SerialNumber}' } }`. */
      templates: z
        .record(
          z.string(),
          z
            .object({
              thingNameTemplate: z.string(),
              deviceConfiguration: z.record(z.string(), z.string()).optional(),
            })
            .strict(),
        )
        .default({}),
      /** Register the lab's fleet claim certificate (vars `${name.claimCert}`, `${name.claimKey}`). */
      claim: z.boolean().default(true),
      /**
       * Just-in-time provisioning: register the lab's JITP device CA in this region with auto-registration
       * and this template. Every aws-iot simulator offers the device files: `${name.jitpCert}` (device
       * certificate + CA, as the first connection must present), `${name.jitpCertOnly}`, `${name.jitpKey}`,
       * `${name.jitpCa}`, and `${name.rogueCert}`/`${name.rogueKey}` (from a CA registered nowhere).
       */
      jitp: z
        .object({
          templateName: z.string().min(1).default('JITPTemplate'),
          /** From the certificate: `${AWS::IoT::Certificate::CommonName}`, `...::SerialNumber`, `...::Id`. */
          thingNameTemplate: z.string().min(1).default('${AWS::IoT::Certificate::CommonName}'),
          policyName: z.string().min(1).default('JITPPolicy'),
        })
        .strict()
        .optional(),
      /**
       * The server certificate the endpoint presents (Device Advisor's TLS cases): `valid`, or one a device
       * must refuse: `wrong-san` (issued for another name), `expired`, `untrusted-ca` (chains to a root
       * the device does not trust), `missing-intermediate` (served without its intermediate).
       */
      serverCertificate: z
        .enum(['valid', 'wrong-san', 'expired', 'untrusted-ca', 'missing-intermediate'])
        .default('valid'),
      /**
       * A thing with a device certificate from the lab CA, registered ACTIVE in this region (vars
       * `${name.deviceCert}`, `${name.deviceKey}`): a device that is already provisioned.
       */
      thing: z
        .string()
        .regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'a thing name: 1-128 of a-z A-Z 0-9 : _ -')
        .optional(),
      /**
       * Domain configurations (configurable endpoints with a custom domain, e.g. `global.iot.example.com`
       * in every region a geolocation record may send devices to): each gets a server certificate for
       * that name from the lab CA, served when the device asks for it by SNI.
       */
      domains: z
        .array(
          z
            .string()
            .regex(/^[a-z0-9*]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/i, 'a domain name'),
        )
        .default([]),
    })
    .strict(),
  requires: (options) => (options.maxFragmentLength === 'ignore' ? ['tls-front'] : []),
  async start(ctx, o) {
    const names = [ctx.hostName, ctx.address];
    const server =
      o.serverCertificate === 'valid'
        ? await ctx.pki.issueServer(names)
        : await ctx.pki.bad(SERVER_CERT_CASES[o.serverCertificate], names);
    const jitp = await jitpFiles(ctx);
    const device = o.thing
      ? await ctx.pki.issueClient(o.thing, { file: join(ctx.labDir, `${ctx.name}-${o.thing}`) })
      : undefined;
    const issuer = await ctx.pki.createAuthority(`fieldlab ${o.region} Device CA`);
    const claim = o.claim ? await fleetClaim(ctx) : undefined;
    const domainConfigurations = await Promise.all(
      o.domains.map(async (domainName) => {
        const c = await ctx.pki.issueServer([domainName]);
        return { domainName, certPem: c.chainPem, keyPem: c.keyPem };
      }),
    );
    const handle = await startAwsIot({
      name: ctx.name,
      region: o.region,
      host: ctx.address,
      // The regional endpoint a domain's record points at: the lab host's name
      endpoint: ctx.hostName,
      domainConfigurations,
      listeners: o.listeners.map((l) => ({ protocol: l.protocol, port: 0 })),
      tls: { certPem: server.chainPem, keyPem: server.keyPem },
      requireAlpn: o.requireAlpn,
      maxFragmentLength: o.maxFragmentLength,
      issuer,
      templates: o.templates,
      certificates: [
        ...(claim ? [{ pem: claim.certPem, claim: true }] : []),
        ...(device && o.thing ? [{ pem: device.certPem, thingName: o.thing }] : []),
      ],
      cas: o.jitp ? [{ pem: jitp.caPem, autoRegistration: true, ...o.jitp }] : [],
    });
    for (const pid of handle.frontPids) ctx.trackProcess(pid, `fieldlab-tls-front for ${ctx.name}`);
    const vars: Record<string, string> = {
      ...jitp.vars,
      ...(claim ? { claimCert: claim.certPath, claimKey: claim.keyPath } : {}),
      ...(device ? { deviceCert: device.chainPath, deviceKey: device.keyPath } : {}),
    };
    return { handle, vars };
  },
  serve: servedBy(awsIotOptionsSchema, 'aws-iot', startAwsIot),
});
