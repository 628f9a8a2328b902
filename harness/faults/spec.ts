import { z } from 'zod';
import { durationSchema } from '../../simulators/common/duration.js';

/**
 * Toxic definitions as data (Toxiproxy's set plus `blackhole` and `refuse`). The same schema validates
 * scenario files, the runtime API and `fieldlab up` toggles. Attribute names follow Toxiproxy's where it
 * has the toxic, so its users read them at a glance.
 */
const common = {
  /** Unique per relay; defaults to `<type>_<stream>`. */
  name: z
    .string()
    .regex(/^[a-zA-Z0-9_.-]+$/)
    .optional(),
  /** upstream = client→server, downstream = server→client (Toxiproxy's default). */
  stream: z.enum(['upstream', 'downstream']).default('downstream'),
  /** Probability (0–1) that a new connection gets this toxic. */
  toxicity: z.number().min(0).max(1).default(1),
  /** Start this long after the relay starts (or after the toxic is added). */
  start: durationSchema.optional(),
  /** Stay active this long, then remove itself (without dropping data in flight). */
  duration: durationSchema.optional(),
};

export const toxicSpecSchema = z.discriminatedUnion('type', [
  z
    .object({
      ...common,
      type: z.literal('latency'),
      latency: durationSchema,
      jitter: durationSchema.default(0),
    })
    .strict(),
  /** rate in KB/s (1 KB = 1000 bytes... Toxiproxy uses KB = 1024; so do we). */
  z.object({ ...common, type: z.literal('bandwidth'), rate: z.number().positive() }).strict(),
  /** Stop all data and close after `timeout` (0 = hold forever, until the toxic is removed). */
  z.object({ ...common, type: z.literal('timeout'), timeout: durationSchema.default(0) }).strict(),
  /** Reset (TCP RST) the connection after `timeout` (0 = at once). */
  z.object({ ...common, type: z.literal('reset_peer'), timeout: durationSchema.default(0) }).strict(),
  /** Delay the close (FIN) by `delay`. */
  z.object({ ...common, type: z.literal('slow_close'), delay: durationSchema }).strict(),
  /** Slice data into small pieces with a delay between them (delay in microseconds, as Toxiproxy). */
  z
    .object({
      ...common,
      type: z.literal('slicer'),
      average_size: z.number().int().positive(),
      size_variation: z.number().int().nonnegative().default(0),
      delay: z.number().nonnegative().default(0),
    })
    .strict(),
  /** Close the connection after `bytes` bytes have passed in this direction. */
  z.object({ ...common, type: z.literal('limit_data'), bytes: z.number().int().nonnegative() }).strict(),
  /**
   * A path MTU black hole: writes over `mtu` bytes (and all after them) never arrive in this direction;
   * small ones pass. What `fieldlab doctor` reports as "a large TLS record stalls".
   */
  z
    .object({ ...common, type: z.literal('mtu_blackhole'), mtu: z.number().int().min(68).max(65535) })
    .strict(),
  /** Accept the connection, read and discard everything, never answer. */
  z.object({ ...common, type: z.literal('blackhole') }).strict(),
  /** Refuse new connections (the listener closes, so the kernel answers SYN with RST). */
  z.object({ ...common, type: z.literal('refuse') }).strict(),
]);

export type ToxicSpecInput = z.input<typeof toxicSpecSchema>;
export type ToxicSpec = z.output<typeof toxicSpecSchema>;
export type ToxicType = ToxicSpec['type'];
export const TOXIC_TYPES: readonly ToxicType[] = [
  'latency',
  'bandwidth',
  'timeout',
  'reset_peer',
  'slow_close',
  'slicer',
  'limit_data',
  'mtu_blackhole',
  'blackhole',
  'refuse',
];

/**
 * A fault target that names the link between two network hosts of `lab.network` (netns backend):
 * `proxy~hub`. Upstream is the first host → the second, downstream the second → the first (as a
 * relay's client → server and back, when the client's host is named first).
 */
export const LINK_TARGET = /^([a-z][a-z0-9-]{0,19})~([a-z][a-z0-9-]{0,19})$/;

/** The two hosts of a link target (`proxy~hub`), or undefined for a simulator target. */
export function linkHosts(target: string): [string, string] | undefined {
  const m = LINK_TARGET.exec(target);
  return m ? [m[1] as string, m[2] as string] : undefined;
}

/** Toxics the kernel does on a link (tc for shaping, nftables for drop/reject); others stay on relays. */
export const LINK_TOXIC_TYPES: readonly ToxicType[] = [
  'latency',
  'bandwidth',
  'timeout',
  'reset_peer',
  'mtu_blackhole',
  'blackhole',
  'refuse',
];
