import { randomBytes, randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** Tunnel state kept by the simulator: what DescribeTunnel shows plus the data plane's relay state. */

export type PeerMode = 'source' | 'destination';
export const PEER_MODES: readonly PeerMode[] = ['source', 'destination'];

export interface Tag {
  key: string;
  value: string;
}

export interface DestinationConfig {
  thingName?: string;
  services: string[];
}

/** One connected localproxy. */
export interface Peer {
  id: string;
  mode: PeerMode;
  /** Subprotocol version: 1, 2 or 3. */
  protocol: number;
  ws: WebSocket;
  socket: Duplex;
  token: string;
  clientToken: string | undefined;
}

/** One side's access token and its single-use state. */
export interface TokenSlot {
  token: string;
  /** Set after the first successful handshake: the token is then used. */
  used: boolean;
  /** The client token bound at first use: only it may reconnect with the same token. */
  clientToken: string | undefined;
  lastUpdatedAt: number;
}

export interface Tunnel {
  tunnelId: string;
  tunnelArn: string;
  status: 'OPEN' | 'CLOSED';
  description: string | undefined;
  destinationConfig: DestinationConfig | undefined;
  maxLifetimeTimeoutMinutes: number;
  tags: Tag[];
  createdAt: number;
  lastUpdatedAt: number;
  slots: Record<PeerMode, TokenSlot>;
  peers: Partial<Record<PeerMode, Peer>>;
  /** Sides that had a WebSocket session attached: the next one of that side is a reconnection. */
  attachedBefore: Set<PeerMode>;
  /** Active stream id per service id ('' for V1 / no services). */
  streams: Map<string, number>;
  /** Service ids a stream was ever started for (late DATA after a reset is stale, not a violation). */
  started: Set<string>;
  /** V3: open connection ids per service id. */
  connections: Map<string, Set<number>>;
  lifetimeTimer: NodeJS.Timeout | undefined;
  /** Bandwidth quota: bytes allowed in the current one-second window. */
  quotaWindowStart: number;
  quotaUsed: number;
  /** Unreported traffic for the aggregated `data` event, per direction (by sender mode). */
  pending: Record<PeerMode, { bytes: number; frames: number }>;
  dataTimer: NodeJS.Timeout | undefined;
}

/** A fresh opaque access token (header-safe characters). */
export function newAccessToken(): string {
  return `AQGA${randomBytes(96).toString('base64url')}`;
}

function newSlot(now: number): TokenSlot {
  return { token: newAccessToken(), used: false, clientToken: undefined, lastUpdatedAt: now };
}

export function newTunnel(init: {
  arnPrefix: string;
  description: string | undefined;
  destinationConfig: DestinationConfig | undefined;
  maxLifetimeTimeoutMinutes: number;
  tags: Tag[];
}): Tunnel {
  const now = Date.now();
  const tunnelId = randomUUID();
  return {
    tunnelId,
    tunnelArn: `${init.arnPrefix}${tunnelId}`,
    status: 'OPEN',
    description: init.description,
    destinationConfig: init.destinationConfig,
    maxLifetimeTimeoutMinutes: init.maxLifetimeTimeoutMinutes,
    tags: init.tags,
    createdAt: now,
    lastUpdatedAt: now,
    slots: { source: newSlot(now), destination: newSlot(now) },
    peers: {},
    attachedBefore: new Set(),
    streams: new Map(),
    started: new Set(),
    connections: new Map(),
    lifetimeTimer: undefined,
    quotaWindowStart: now,
    quotaUsed: 0,
    pending: { source: { bytes: 0, frames: 0 }, destination: { bytes: 0, frames: 0 } },
    dataTimer: undefined,
  };
}

/** Replaces a side's token (rotation); the old one is revoked. Returns the revoked token. */
export function rotateSlot(t: Tunnel, mode: PeerMode): string {
  const old = t.slots[mode].token;
  t.slots[mode] = newSlot(Date.now());
  return old;
}

/** The tunnel's service ids (empty for a tunnel without destinationConfig). */
export function servicesOf(t: Tunnel): string[] {
  return t.destinationConfig?.services ?? [];
}

/** Everything the simulator knows, indexed for the API and the data plane. */
export class TunnelRegistry {
  readonly tunnels = new Map<string, Tunnel>();
  /** token → tunnel and mode, for current tokens. */
  private readonly byToken = new Map<string, { tunnel: Tunnel; mode: PeerMode }>();
  /** Revoked tokens (rotation) → tunnel id, so a rejection can say `revoked` rather than `unknown`. */
  private readonly revoked = new Map<string, string>();
  closedCount = 0;

  add(t: Tunnel): void {
    this.tunnels.set(t.tunnelId, t);
    for (const mode of PEER_MODES) this.byToken.set(t.slots[mode].token, { tunnel: t, mode });
  }

  byArn(arn: string): Tunnel | undefined {
    for (const t of this.tunnels.values()) if (t.tunnelArn === arn) return t;
    return undefined;
  }

  lookupToken(token: string): { tunnel: Tunnel; mode: PeerMode } | { revokedFrom: string } | undefined {
    const hit = this.byToken.get(token);
    if (hit) return hit;
    const rev = this.revoked.get(token);
    return rev === undefined ? undefined : { revokedFrom: rev };
  }

  rotate(t: Tunnel, mode: PeerMode): void {
    const old = rotateSlot(t, mode);
    this.byToken.delete(old);
    this.revoked.set(old, t.tunnelId);
    this.byToken.set(t.slots[mode].token, { tunnel: t, mode });
  }

  /** Forgets a deleted tunnel entirely (CloseTunnel with delete). */
  remove(t: Tunnel): void {
    this.tunnels.delete(t.tunnelId);
    for (const mode of PEER_MODES) this.byToken.delete(t.slots[mode].token);
  }

  get openCount(): number {
    let n = 0;
    for (const t of this.tunnels.values()) if (t.status === 'OPEN') n++;
    return n;
  }
}
