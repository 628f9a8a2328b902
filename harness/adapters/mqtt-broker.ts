import { z } from 'zod';
import {
  connectRateSchema,
  mqttBrokerLimitsSchema,
  mqttBrokerOptionsSchema,
  start as startMqttBroker,
} from '../../simulators/mqtt-broker/index.js';
import { defineAdapter, servedBy } from './adapter.js';

export const mqttBroker = defineAdapter({
  type: 'mqtt-broker',
  summary: 'an MQTT broker (aedes) on mqtt, mqtts, ws and wss, with optional users and mutual TLS',
  options: z
    .object({
      listeners: z
        .array(
          z
            .object({ protocol: z.enum(['mqtt', 'mqtts', 'ws', 'wss']), path: z.string().optional() })
            .strict(),
        )
        .min(1)
        .default([{ protocol: 'mqtts' }]),
      users: z.array(z.object({ username: z.string(), password: z.string() }).strict()).optional(),
      mtls: z.boolean().default(false),
      alpn: z.array(z.string()).optional(),
      /** A cloud's connect throttle (AWS IoT: 500/s per account; IoT Hub S1: 100/s): CONNACK 0x03 over it. */
      connectRate: connectRateSchema.optional(),
      /** MQTT 5 flow limits: Receive Maximum, Topic Alias Maximum, and what the broker keeps towards a client. */
      limits: mqttBrokerLimitsSchema.optional(),
    })
    .strict(),
  async start(ctx, o) {
    const needsTls = o.listeners.some((l) => l.protocol === 'mqtts' || l.protocol === 'wss');
    const issued = needsTls ? await ctx.pki.issueServer([ctx.hostName, ctx.address]) : undefined;
    const handle = await startMqttBroker({
      name: ctx.name,
      host: ctx.address,
      listeners: o.listeners.map((l) => ({
        protocol: l.protocol,
        port: 0,
        ...(l.path ? { path: l.path } : {}),
      })),
      ...(issued
        ? {
            tls: {
              certPem: issued.chainPem,
              keyPem: issued.keyPem,
              ...(o.mtls ? { clientCa: [ctx.pki.root.certPem] } : {}),
              ...(o.alpn ? { alpn: o.alpn } : {}),
            },
          }
        : {}),
      ...(o.users ? { users: o.users } : {}),
      ...(o.connectRate ? { connectRate: o.connectRate } : {}),
      ...(o.limits ? { limits: o.limits } : {}),
    });
    return { handle };
  },
  serve: servedBy(mqttBrokerOptionsSchema, 'mqtt-broker', startMqttBroker),
});
