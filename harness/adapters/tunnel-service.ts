import { z } from 'zod';
import { durationSchema } from '../../simulators/common/duration.js';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { MqttBrokerHandle } from '../../simulators/mqtt-broker/index.js';
import {
  start as startTunnelService,
  tunnelServiceOptionsSchema,
} from '../../simulators/tunnel-service/index.js';
import { defineAdapter, peerOf, servedBy } from './adapter.js';
import { awsIot } from './aws-iot.js';
import { mqttBroker } from './mqtt-broker.js';

export const tunnelService = defineAdapter({
  type: 'tunnel-service',
  summary:
    'AWS IoT Secure Tunneling: management API (AWS SDK compatible) and the WebSocket data plane (v1–v3)',
  options: z
    .object({
      region: z.string().default('us-east-1'),
      /** Serve the data plane as wss with a lab certificate (the real service is TLS-only). */
      tls: z.boolean().default(true),
      maxOpenTunnels: z.number().int().positive().optional(),
      /** Overrides every tunnel's max lifetime. */
      maxLifetime: durationSchema.optional(),
      /**
       * Lab time scale (not an AWS setting): how long one minute of a tunnel's `maxLifetimeTimeoutMinutes`
       * lasts, e.g. `5s`, so a tunnel opened with 1 minute closes after 5 s (default 1m; at most 1m).
       */
      lifetimeMinute: durationSchema
        .refine((ms) => ms >= 1 && ms <= 60_000, 'a lab minute is between 1ms and 1m')
        .optional(),
      /** How long a closed tunnel stays visible to DescribeTunnel/ListTunnels (AWS: 3 hours). */
      closedTunnelRetention: durationSchema.optional(),
      /**
       * Management API authentication: `sigv4` verifies AWS Signature Version 4 against the lab
       * credentials and region (clients get `${name.accessKeyId}`, `${name.secretAccessKey}`, `${name.region}`).
       */
      auth: z.enum(['none', 'sigv4']).default('none'),
      /** The lab credentials for `auth: sigv4` (default: a fixed access key id and a random secret). */
      credentials: z
        .object({ accessKeyId: z.string().min(1).max(128), secretAccessKey: z.string().min(1).max(128) })
        .strict()
        .optional(),
      /** Per-tunnel relay quota, bytes/s (the real service publishes 800 KB/s per account). */
      bandwidthBytesPerSecond: z.number().int().positive().optional(),
      /**
       * A lab `mqtt-broker` or `aws-iot` simulator (by name): a tunnel opened for a thing publishes its
       * destination token there on `$aws/things/<thing>/tunnels/notify`, as AWS IoT does.
       */
      notify: z.string().optional(),
    })
    .strict(),
  // The broker it publishes tunnel notifications on.
  peers: (o) => [o.notify],
  async start(ctx, o) {
    const cert = o.tls ? await ctx.pki.issueServer([ctx.hostName, ctx.address]) : undefined;
    // Looked up when a tunnel opens: the broker may be declared after the tunnel service.
    const broker = (): MqttBrokerHandle | undefined => {
      const name = o.notify ?? '';
      // An mqtt-broker publishes itself; an aws-iot persona through the broker underneath it.
      return peerOf(ctx, name, mqttBroker) ?? peerOf(ctx, name, awsIot)?.broker;
    };
    const handle = await startTunnelService({
      name: ctx.name,
      host: ctx.address,
      region: o.region,
      ...(cert ? { tls: { certPem: cert.chainPem, keyPem: cert.keyPem } } : {}),
      ...(o.maxOpenTunnels ? { maxOpenTunnels: o.maxOpenTunnels } : {}),
      ...(o.maxLifetime ? { maxLifetimeMs: Math.max(1, Math.round(o.maxLifetime)) } : {}),
      ...(o.lifetimeMinute !== undefined
        ? { lifetimeMinuteMs: Math.max(1, Math.round(o.lifetimeMinute)) }
        : {}),
      ...(o.closedTunnelRetention !== undefined
        ? { closedTunnelRetentionMs: Math.round(o.closedTunnelRetention) }
        : {}),
      auth: o.auth,
      ...(o.credentials ? { credentials: o.credentials } : {}),
      ...(o.bandwidthBytesPerSecond ? { bandwidthBytesPerSecond: o.bandwidthBytesPerSecond } : {}),
      ...(o.notify !== undefined
        ? {
            notify: async (topic: string, payload: string) => {
              const b = broker();
              if (!b) throw new Error(`notify: no mqtt-broker or aws-iot simulator named ${o.notify}`);
              await b.publish(topic, payload, 1);
            },
          }
        : {}),
    });
    const { region, accessKeyId, secretAccessKey } = handle.apiClient;
    return {
      handle,
      // What a management API client is configured with (verified with auth: sigv4).
      vars: { region, accessKeyId, secretAccessKey },
      async labReady() {
        if (o.notify !== undefined && !broker()) {
          throw new FieldlabError(
            'E_BAD_OPTIONS',
            `${ctx.name} (tunnel-service): options.notify: no mqtt-broker or aws-iot simulator named ${o.notify}`,
            { hint: 'name a broker of the same lab' },
          );
        }
      },
    };
  },
  serve: servedBy(tunnelServiceOptionsSchema, 'tunnel-service', startTunnelService),
});
