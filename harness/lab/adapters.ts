import { z } from 'zod';
import type { SimulatorHandle } from '../../simulators/common/handle.js';
import { start as startHttpsServer } from '../../simulators/https-server/index.js';
import { start as startMqttBroker } from '../../simulators/mqtt-broker/index.js';
import type { BadCertKind, PkiHandle } from '../../simulators/pki/index.js';

/**
 * How a scenario's `type:` becomes a running simulator: each adapter validates the options a scenario
 * may write, then starts the simulator on the lab host's address with what the lab provides
 * (certificates from the lab PKI, other simulators' addresses). Adding a simulator type = one entry.
 */
export interface AdapterContext {
  /** Simulator name in the lab. */
  name: string;
  /** Lab host name (a DNS name) and its address. */
  hostName: string;
  address: string;
  pki: PkiHandle;
  labDir: string;
}

export interface StartedSimulator {
  handle: SimulatorHandle;
  /** Extra `${name.<var>}` values (file paths, URLs) scenarios may reference. */
  vars?: Record<string, string>;
  /** Endpoint names that must not be fronted by a relay (UDP, or ones the simulator must own). */
  direct?: string[];
}

export interface SimulatorAdapter<S extends z.ZodType = z.ZodType> {
  type: string;
  /** One line for `fieldlab list --simulators`. */
  summary: string;
  options: S;
  start(ctx: AdapterContext, options: z.output<S>): Promise<StartedSimulator>;
}

function adapter<S extends z.ZodType>(a: SimulatorAdapter<S>): SimulatorAdapter {
  return a as unknown as SimulatorAdapter;
}

const certKind = z.enum([
  'valid',
  'expired',
  'not-yet-valid',
  'wrong-host',
  'self-signed',
  'missing-intermediate',
  'unknown-root',
]);

const httpsServer = adapter({
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
    const issued =
      o.cert === 'valid' ? await ctx.pki.issueServer(names) : await ctx.pki.bad(o.cert as BadCertKind, names);
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
});

const mqttBroker = adapter({
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
    });
    return { handle };
  },
});

const ADAPTERS = new Map<string, SimulatorAdapter>([
  [httpsServer.type, httpsServer],
  [mqttBroker.type, mqttBroker],
]);

export function adapterFor(type: string): SimulatorAdapter | undefined {
  return ADAPTERS.get(type);
}

export function adapterTypes(): string[] {
  return [...ADAPTERS.keys()].sort();
}

export function listAdapters(): Array<{ type: string; summary: string }> {
  return adapterTypes().map((t) => ({ type: t, summary: ADAPTERS.get(t)?.summary ?? '' }));
}

/** Registers an adapter (for simulators added by users or later modules). */
export function registerAdapter(a: SimulatorAdapter): void {
  ADAPTERS.set(a.type, a);
}
