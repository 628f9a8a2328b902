import { z } from 'zod';
import { type Clock, MAX_TIMER_MS, systemClock } from './clock.js';

/** AWS IoT developer guide, "Secure tunnel lifecycle": a closed tunnel stays visible at least 3 hours. */
export const CLOSED_TUNNEL_RETENTION_MS = 3 * 60 * 60 * 1000;

/** The lab's credentials when `auth: sigv4` names none (the secret is random per start). */
export const LAB_ACCESS_KEY_ID = 'AKIAFIELDLABEXAMPLE0';

/** Options of the tunnel-service simulator (validated by `start`). */
export const tunnelServiceOptionsSchema = z
  .object({
    name: z.string().default('tunnel-service'),
    host: z.string().default('127.0.0.1'),
    /** Management API port (HTTP, AWS JSON 1.1). */
    apiPort: z.number().int().min(0).max(65535).default(0),
    /** Data plane port (ws, or wss with `tls`). */
    dataPort: z.number().int().min(0).max(65535).default(0),
    /** Serve the data plane as wss (the real service is TLS 1.2+ only). */
    tls: z.object({ certPem: z.string(), keyPem: z.string() }).strict().optional(),
    region: z.string().default('us-east-1'),
    accountId: z
      .string()
      .regex(/^\d{12}$/)
      .default('123456789012'),
    /** OpenTunnel answers LimitExceededException past this many open tunnels (off when absent). */
    maxOpenTunnels: z.number().int().positive().optional(),
    /** Overrides every tunnel's max lifetime (tests: a few hundred ms). */
    maxLifetimeMs: z.number().int().positive().max(MAX_TIMER_MS).optional(),
    /**
     * Lab time scale, not an AWS setting: how long one minute of a tunnel's `maxLifetimeTimeoutMinutes`
     * lasts (default 60000). A scenario opens a tunnel with `maxLifetimeTimeoutMinutes: 1` as a user
     * would and sees it close after this long; `maxLifetimeMs` wins when both are set.
     */
    lifetimeMinuteMs: z.number().int().positive().max(60_000).default(60_000),
    /** How long DescribeTunnel / ListTunnels still show a closed tunnel before it is forgotten. */
    closedTunnelRetentionMs: z.number().int().min(0).max(MAX_TIMER_MS).default(CLOSED_TUNNEL_RETENTION_MS),
    /**
     * Management API authentication: `none` accepts any signature (the access key id is recorded);
     * `sigv4` verifies AWS Signature Version 4 (key, secret, region, service, clock skew) like AWS.
     */
    auth: z.enum(['none', 'sigv4']).default('none'),
    /** The lab's credentials for `auth: sigv4` (default: LAB_ACCESS_KEY_ID and a random secret). */
    credentials: z
      .object({ accessKeyId: z.string().min(1).max(128), secretAccessKey: z.string().min(1).max(128) })
      .strict()
      .optional(),
    /** Time source of lifetimes, retention, timestamps and the SigV4 skew check (tests move it by hand). */
    clock: z
      .custom<Clock>(
        (v) =>
          typeof v === 'object' &&
          v !== null &&
          typeof (v as Clock).now === 'function' &&
          typeof (v as Clock).after === 'function',
        'expected a Clock { now(), after(ms, fn) }',
      )
      .default(systemClock),
    /** Per-tunnel DATA relay quota in bytes/s, both directions together (off when absent). */
    bandwidthBytesPerSecond: z.number().int().positive().optional(),
    /** How often aggregated `data` events are emitted while bytes flow. */
    dataEventIntervalMs: z.number().int().positive().default(1000),
    /** Delivers destination tokens on `$aws/things/<thing>/tunnels/notify` (the harness wires MQTT). */
    notify: z
      .custom<(topic: string, payload: string) => Promise<void> | void>((v) => typeof v === 'function')
      .optional(),
  })
  .strict();

export type TunnelServiceOptions = z.input<typeof tunnelServiceOptionsSchema>;
export type ResolvedTunnelServiceOptions = z.output<typeof tunnelServiceOptionsSchema>;
