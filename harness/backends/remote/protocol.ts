import { z } from 'zod';
import type { DnsFaultSpec } from '../../faults/dns.js';
import type { ToxicSpec } from '../../faults/spec.js';

/**
 * The control protocol of a simulator running in another process (`fieldlab serve-lab`): every
 * operation of a `RelayHandle`, as one request/reply message schema carried by two transports, the
 * worker's HTTP control API (a container, reached by address) and JSON lines on its stdin/stdout (a
 * worker in a network namespace, which its lab reaches only through the pipe).
 *
 *   request  {id?, op, target, ...}     target: the relay's fault target (`sim` or `sim.endpoint`)
 *   reply    {reply: id, ok: true, toxic?, toxics, stats, now?}
 *            {reply: id | null, ok: false, error: {code, message, hint?}, toxics?, stats?}
 *
 * Every reply about a relay carries its toxics and counters as they are after the request, so the other
 * side's mirror stays current. `clock` answers the worker's `Date.now()`, for the clock offset. DNS
 * faults go to a DNS simulator (geo-dns, resolver) by its name, as `DnsFaultTarget` has them:
 *
 *   request  {id?, op: addDnsFault, target, fault} | {op: removeDnsFault, target, name} | {op: listDnsFaults, target}
 *   reply    {reply: id, ok: true, fault?, faults}
 */

/** Where a container worker serves its HTTP control API. */
export const CONTROL_PORT = 7070;
/** The HTTP path of the control API: `POST` one request, get its reply. */
export const CONTROL_PATH = '/control';
/** Largest control request read (a toxic is a few hundred bytes). */
export const MAX_CONTROL_REQUEST = 64 * 1024;

const id = z.union([z.string().max(100), z.number().int()]);
const target = z.string().min(1);
// Toxic attributes are checked by the relay itself (`parseToxic`), which names the bad field.
const attrs = z.record(z.string(), z.unknown());

export const controlRequestSchema = z.discriminatedUnion('op', [
  z.strictObject({ id: id.optional(), op: z.literal('add'), target, toxic: attrs }),
  z.strictObject({
    id: id.optional(),
    op: z.literal('update'),
    target,
    name: z.string().min(1),
    attrs,
  }),
  z.strictObject({ id: id.optional(), op: z.literal('remove'), target, name: z.string().min(1) }),
  z.strictObject({ id: id.optional(), op: z.literal('list'), target }),
  z.strictObject({ id: id.optional(), op: z.literal('stats'), target }),
  z.strictObject({
    id: id.optional(),
    op: z.literal('setUpstream'),
    target,
    upstream: z.strictObject({ host: z.string().min(1), port: z.number().int().min(1).max(65535) }),
  }),
  z.strictObject({ id: id.optional(), op: z.literal('clock') }),
  // DNS faults are checked by the DNS simulator itself (`parseDnsFault`), which names the bad field.
  z.strictObject({ id: id.optional(), op: z.literal('addDnsFault'), target, fault: attrs }),
  z.strictObject({ id: id.optional(), op: z.literal('removeDnsFault'), target, name: z.string().min(1) }),
  z.strictObject({ id: id.optional(), op: z.literal('listDnsFaults'), target }),
]);
export type ControlRequest = z.infer<typeof controlRequestSchema>;
export type ControlOp = ControlRequest['op'];
export const CONTROL_OPS: readonly ControlOp[] = [
  'add',
  'update',
  'remove',
  'list',
  'stats',
  'setUpstream',
  'clock',
  'addDnsFault',
  'removeDnsFault',
  'listDnsFaults',
];

export interface RelayStats {
  connections: number;
  active: number;
  bytesUp: number;
  bytesDown: number;
}

const statsSchema = z.object({
  connections: z.number(),
  active: z.number(),
  bytesUp: z.number(),
  bytesDown: z.number(),
});
// The worker's relay already validated these; the host reads them back as they are.
const toxicSchema = z.custom<ToxicSpec>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string',
);
const dnsFaultSchema = z.custom<DnsFaultSpec>(
  (v) => typeof v === 'object' && v !== null && typeof (v as { name?: unknown }).name === 'string',
);

export const controlReplySchema = z.union([
  z.object({
    reply: id.nullable(),
    ok: z.literal(true),
    toxic: toxicSchema.optional(),
    toxics: z.array(toxicSchema).optional(),
    stats: statsSchema.optional(),
    now: z.number().optional(),
    fault: dnsFaultSchema.optional(),
    faults: z.array(dnsFaultSchema).optional(),
  }),
  z.object({
    reply: id.nullable(),
    ok: z.literal(false),
    error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }),
    toxics: z.array(toxicSchema).optional(),
    stats: statsSchema.optional(),
    faults: z.array(dnsFaultSchema).optional(),
  }),
]);
export type ControlReply = z.infer<typeof controlReplySchema>;
/** A request without its id (the channel numbers it). */
export type ControlRequestBody = ControlRequest extends infer R
  ? R extends unknown
    ? Omit<R, 'id'>
    : never
  : never;

/**
 * A way to send control requests to one worker (HTTP or its stdio). `request` resolves with the reply,
 * refusals included (`ok: false`); it rejects only when the worker cannot be reached or does not answer
 * in time (E_REMOTE_CONTROL).
 */
export interface ControlChannel {
  request(req: ControlRequestBody): Promise<ControlReply>;
  /** Fails every request still waiting; later requests fail at once. */
  close(): void;
}
