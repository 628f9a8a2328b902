import { z } from 'zod';

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
    maxLifetimeMs: z.number().int().positive().optional(),
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
