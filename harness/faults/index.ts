/**
 * fieldlab's Toxiproxy: a userspace TCP relay per link with composable toxics.
 *
 *   client ──► relay (listen) ──[upstream link: toxics]──► upstream
 *          ◄──                ◄─[downstream link: toxics]──
 */
import { formatMs } from '../../simulators/common/duration.js';
import { toxicDefinition } from './registry.js';
import type { ToxicSpec } from './spec.js';

export type { Chunk, End, Item } from './channel.js';
export type { CloseReason } from './connection.js';
export {
  applyFault,
  DNS_FAULT_TYPES,
  type DnsFaultSpec,
  type DnsFaultSpecInput,
  type DnsFaultTarget,
  describeDnsFault,
  dnsFaultSpecSchema,
  dnsFaultTarget,
  isDnsFault,
} from './dns.js';
export { registerToxic, toxicDefinition } from './registry.js';
export { parseToxic, type RelayEvents, type RelayHandle, type RelayOptions, startRelay } from './relay.js';
export { TOXIC_TYPES, type ToxicSpec, type ToxicSpecInput, type ToxicType, toxicSpecSchema } from './spec.js';
export type { ToxicConnection, ToxicStub } from './stub.js';
export type { CleanupToxic, ConnectionToxic, RelayControl, Toxic, ToxicDefinition } from './toxic.js';

/**
 * One sentence for reports (mockttp's `explain()`): `latency 200ms ±20ms on downstream`, with the
 * toxicity and schedule when they are set.
 */
export function describeToxic(spec: ToxicSpec): string {
  const def = toxicDefinition(spec.type);
  let out = def.describe(spec as never);
  if (def.directional) out += ` on ${spec.stream}`;
  if (spec.toxicity < 1) out += `, ${Math.round(spec.toxicity * 1000) / 10}% of connections`;
  if (spec.start !== undefined && spec.start > 0) out += `, from ${formatMs(spec.start)}`;
  if (spec.duration !== undefined) out += `${spec.start ? '' : ','} for ${formatMs(spec.duration)}`;
  return out;
}
