import type { ToxicSpec, ToxicType } from './spec.js';
import type { ToxicConnection, ToxicStub } from './stub.js';

/**
 * The one interface every toxic implements (Toxiproxy's `Toxic`): move items from `stub.input` to
 * `stub.output`, changing them on the way, until the stream ends (forward the end, then return) or the
 * stub is interrupted (write out anything held, then return).
 *
 *   source socket ─► [input]─ toxic A ─►[ ]─ toxic B ─►[exit]─► writer ─► sink socket
 */
export interface Toxic {
  pipe(stub: ToxicStub): Promise<void>;
}

/** Optional ability: acts on the whole connection (timeout, reset_peer, blackhole, refuse). */
export interface ConnectionToxic extends Toxic {
  /** Called once when the toxic is attached to a connection, before its pipe starts. */
  onConnection(conn: ToxicConnection): void;
}

/** Optional ability: releases timers or other resources when the toxic leaves a connection. */
export interface CleanupToxic extends Toxic {
  cleanup(): void;
}

export function isConnectionToxic(t: Toxic): t is ConnectionToxic {
  return typeof (t as Partial<ConnectionToxic>).onConnection === 'function';
}

export function isCleanupToxic(t: Toxic): t is CleanupToxic {
  return typeof (t as Partial<CleanupToxic>).cleanup === 'function';
}

/** What a relay-wide toxic (refuse) may do to the relay while it is active. */
export interface RelayControl {
  /** Stops accepting (closes the listening socket) while any caller holds it; returns the release. */
  holdListener(): () => void;
}

/** A toxic type as registered: its factory, its sentence for reports, and an optional relay-wide effect. */
export interface ToxicDefinition<T extends ToxicType = ToxicType> {
  readonly type: T;
  /** A fresh toxic for one connection (toxics keep per-connection state in their instance). */
  create(spec: Extract<ToxicSpec, { type: T }>): Toxic;
  /** What it does, for reports: `latency 200ms ±20ms`. */
  describe(spec: Extract<ToxicSpec, { type: T }>): string;
  /** Whether the direction matters (`on downstream` is appended to the description). */
  readonly directional: boolean;
  /** Relay-wide effect while active; returns the undo. */
  activate?(relay: RelayControl, spec: Extract<ToxicSpec, { type: T }>): () => void;
}
