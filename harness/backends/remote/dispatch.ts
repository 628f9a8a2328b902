import { FieldlabError, isFieldlabError } from '../../../simulators/common/errors.js';
import { formatPath } from '../../../simulators/common/options.js';
import { type DnsFaultSpecInput, dnsFaultTarget, type FaultableLab } from '../../faults/dns.js';
import type { RelayHandle } from '../../faults/relay.js';
import type { ToxicSpecInput } from '../../faults/spec.js';
import { CONTROL_OPS, type ControlReply, type ControlRequest, controlRequestSchema } from './protocol.js';

/** What the worker side needs of its lab: its relays by fault target, its simulators (DNS faults) by name. */
export type RelayDirectory = FaultableLab;

/** The id of a request, when it has a usable one (to answer even a malformed request by its id). */
function idOf(raw: unknown): string | number | null {
  if (typeof raw !== 'object' || raw === null || !('id' in raw)) return null;
  const v = raw.id;
  return typeof v === 'number' && Number.isInteger(v)
    ? v
    : typeof v === 'string' && v.length <= 100
      ? v
      : null;
}

/** Parses a request; E_BAD_CONTROL names the first bad field and lists the operations. */
export function parseControlRequest(raw: unknown): ControlRequest {
  const r = controlRequestSchema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = formatPath(issue?.path ?? []);
  throw new FieldlabError(
    'E_BAD_CONTROL',
    `control request${where ? `.${where}` : ''}: ${issue?.message ?? 'invalid'}`,
    { hint: `a request is {id, op, target, ...} with op one of ${CONTROL_OPS.join(', ')}` },
  );
}

/** The reply to an error: its code, message and hint (a bug shows as E_INTERNAL, never a stack trace). */
export function errorReply(id: string | number | null, err: unknown, relay?: RelayHandle): ControlReply {
  const error = isFieldlabError(err)
    ? { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) }
    : { code: 'E_INTERNAL', message: err instanceof Error ? err.message : String(err) };
  return { reply: id, ok: false, error, ...(relay ? { toxics: relay.toxics(), stats: relay.stats() } : {}) };
}

/**
 * Carries out one control request on the worker's relays and answers it; never throws (a malformed
 * request or a refused operation is an `ok: false` reply naming what is wrong).
 */
export function answerControl(lab: RelayDirectory, raw: unknown): ControlReply {
  const id = idOf(raw);
  let req: ControlRequest;
  try {
    req = parseControlRequest(raw);
  } catch (err) {
    return errorReply(id, err);
  }
  const reply = req.id ?? null;
  if (req.op === 'clock') return { reply, ok: true, now: Date.now() };
  if (req.op === 'addDnsFault' || req.op === 'removeDnsFault' || req.op === 'listDnsFaults') {
    return answerDnsFault(lab, req);
  }
  let relay: RelayHandle;
  try {
    relay = lab.relay(req.target);
  } catch (err) {
    return errorReply(reply, err);
  }
  try {
    const toxic = operate(relay, req);
    return {
      reply,
      ok: true,
      ...(toxic ? { toxic } : {}),
      toxics: relay.toxics(),
      stats: relay.stats(),
    };
  } catch (err) {
    return errorReply(reply, err, relay);
  }
}

type DnsFaultRequest = Extract<ControlRequest, { op: 'addDnsFault' | 'removeDnsFault' | 'listDnsFaults' }>;

/** A DNS fault request on a DNS simulator of the worker (the simulator validates the fault itself). */
function answerDnsFault(lab: RelayDirectory, req: DnsFaultRequest): ControlReply {
  const reply = req.id ?? null;
  try {
    const target = dnsFaultTarget(lab, req.target);
    const fault = req.op === 'addDnsFault' ? target.addDnsFault(req.fault as DnsFaultSpecInput) : undefined;
    if (req.op === 'removeDnsFault') target.removeDnsFault(req.name);
    return { reply, ok: true, ...(fault ? { fault } : {}), faults: target.dnsFaults() };
  } catch (err) {
    return errorReply(reply, err);
  }
}

function operate(relay: RelayHandle, req: Exclude<ControlRequest, { op: 'clock' } | DnsFaultRequest>) {
  switch (req.op) {
    case 'add':
      // The relay validates the toxic (E_BAD_TOXIC naming the field).
      return relay.addToxic(req.toxic as ToxicSpecInput);
    case 'update':
      return relay.updateToxic(req.name, req.attrs as Partial<ToxicSpecInput>);
    case 'remove':
      relay.removeToxic(req.name);
      return undefined;
    case 'setUpstream':
      relay.setUpstream(req.upstream);
      return undefined;
    case 'list':
    case 'stats':
      return undefined;
  }
}
