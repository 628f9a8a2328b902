import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Clock } from './clock.js';
import { pooledRandomBytes } from './random.js';

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
  /** Set while a close frame awaits its answer; terminates the socket if none comes. */
  terminateTimer?: NodeJS.Timeout | undefined;
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
  /** Cancels the max-lifetime timer (set while the tunnel is open). */
  cancelLifetime: (() => void) | undefined;
  /** When the tunnel closed (its retention runs from here). */
  closedAt: number | undefined;
  /** Bandwidth quota: bytes allowed in the current one-second window. */
  quotaWindowStart: number;
  quotaUsed: number;
  /** Unreported traffic for the aggregated `data` event, per direction (by sender mode). */
  pending: Record<PeerMode, { bytes: number; frames: number }>;
  dataTimer: NodeJS.Timeout | undefined;
}

/**
 * Access tokens name their tunnel and side, sealed with a per-registry key, so a refused token can be
 * explained (`revoked`, `closed`) without keeping the tokens of rotations and closed tunnels:
 * `AQGA` + base64url(tunnel id (16) ‖ mode (1) ‖ random (63) ‖ HMAC-SHA256 (16)), 128 characters like
 * before. Clients treat tokens as opaque (localproxy sends them back as they came).
 */
const TOKEN_PREFIX = 'AQGA';
const TOKEN_BYTES = 96;
const MAC_BYTES = 16;

function uuidBytes(id: string): Buffer {
  return Buffer.from(id.replace(/-/g, ''), 'hex');
}

function uuidOf(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class TokenSealer {
  private readonly key = randomBytes(32);

  private mac(body: Buffer): Buffer {
    return createHmac('sha256', this.key).update(body).digest().subarray(0, MAC_BYTES);
  }

  /** A fresh token for one side of a tunnel (header-safe characters). */
  mint(tunnelId: string, mode: PeerMode): string {
    const body = Buffer.concat([
      uuidBytes(tunnelId),
      Buffer.from([mode === 'source' ? 0 : 1]),
      pooledRandomBytes(TOKEN_BYTES - 17 - MAC_BYTES),
    ]);
    return `${TOKEN_PREFIX}${Buffer.concat([body, this.mac(body)]).toString('base64url')}`;
  }

  /** The tunnel and side a token was minted for; undefined for a token this registry never minted. */
  open(token: string): { tunnelId: string; mode: PeerMode } | undefined {
    if (!token.startsWith(TOKEN_PREFIX) || token.length !== TOKEN_PREFIX.length + 128) return undefined;
    const raw = Buffer.from(token.slice(TOKEN_PREFIX.length), 'base64url');
    if (raw.length !== TOKEN_BYTES) return undefined;
    const body = raw.subarray(0, TOKEN_BYTES - MAC_BYTES);
    if (!timingSafeEqual(this.mac(body), raw.subarray(TOKEN_BYTES - MAC_BYTES))) return undefined;
    return { tunnelId: uuidOf(body.subarray(0, 16)), mode: body[16] === 0 ? 'source' : 'destination' };
  }
}

const NO_SERVICES: readonly string[] = [];

/** The tunnel's service ids (empty for a tunnel without destinationConfig). */
export function servicesOf(t: Tunnel): readonly string[] {
  return t.destinationConfig?.services ?? NO_SERVICES;
}

/** What a presented access token is. */
export interface TokenHit {
  tunnel: Tunnel;
  /** The side the token was minted for. */
  mode: PeerMode;
  /** False for a token replaced by rotation, or any token of a closed tunnel. */
  current: boolean;
}

/**
 * Everything the simulator knows, indexed for the API and the data plane, and bounded: only open
 * tunnels' current tokens are indexed, and a closed tunnel is forgotten `retentionMs` after it closed
 * (AWS IoT developer guide, "Secure tunnel lifecycle": DescribeTunnel and ListTunnels show a closed
 * tunnel for at least three hours, then it is deleted). One timer, armed for the oldest closed tunnel,
 * does the forgetting.
 */
export class TunnelRegistry {
  readonly tunnels = new Map<string, Tunnel>();
  /** Current token → tunnel and side, for open tunnels only. */
  private readonly byToken = new Map<string, { tunnel: Tunnel; mode: PeerMode }>();
  /** Closed tunnels in closing order (a Set keeps insertion order; the head is the next to forget). */
  private readonly closed = new Set<Tunnel>();
  private cancelSweep: (() => void) | undefined;
  private readonly sealer = new TokenSealer();
  private open = 0;
  closedCount = 0;

  constructor(
    private readonly clock: Clock,
    private readonly retentionMs: number,
  ) {}

  /** A new open tunnel, not yet added. */
  create(init: {
    arnPrefix: string;
    description: string | undefined;
    destinationConfig: DestinationConfig | undefined;
    maxLifetimeTimeoutMinutes: number;
    tags: Tag[];
  }): Tunnel {
    const now = this.clock.now();
    const tunnelId = randomUUID();
    const slot = (mode: PeerMode): TokenSlot => ({
      token: this.sealer.mint(tunnelId, mode),
      used: false,
      clientToken: undefined,
      lastUpdatedAt: now,
    });
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
      slots: { source: slot('source'), destination: slot('destination') },
      peers: {},
      attachedBefore: new Set(),
      streams: new Map(),
      started: new Set(),
      connections: new Map(),
      cancelLifetime: undefined,
      closedAt: undefined,
      quotaWindowStart: now,
      quotaUsed: 0,
      pending: { source: { bytes: 0, frames: 0 }, destination: { bytes: 0, frames: 0 } },
      dataTimer: undefined,
    };
  }

  add(t: Tunnel): void {
    this.tunnels.set(t.tunnelId, t);
    this.open++;
    for (const mode of PEER_MODES) this.byToken.set(t.slots[mode].token, { tunnel: t, mode });
  }

  /** The tunnel of an ARN (`arn:aws:iot:<region>:<account>:tunnel/<id>`). */
  byArn(arn: string): Tunnel | undefined {
    const t = this.tunnels.get(arn.slice(arn.lastIndexOf('/') + 1));
    return t?.tunnelArn === arn ? t : undefined;
  }

  lookupToken(token: string): TokenHit | undefined {
    const hit = this.byToken.get(token);
    if (hit) return { ...hit, current: true };
    const sealed = this.sealer.open(token);
    const tunnel = sealed && this.tunnels.get(sealed.tunnelId);
    return sealed && tunnel ? { tunnel, mode: sealed.mode, current: false } : undefined;
  }

  /** Replaces a side's token (RotateTunnelAccessToken); the old one is revoked. */
  rotate(t: Tunnel, mode: PeerMode): void {
    this.byToken.delete(t.slots[mode].token);
    t.slots[mode] = {
      token: this.sealer.mint(t.tunnelId, mode),
      used: false,
      clientToken: undefined,
      lastUpdatedAt: this.clock.now(),
    };
    this.byToken.set(t.slots[mode].token, { tunnel: t, mode });
  }

  /**
   * Marks a tunnel closed for good: its tokens are released at once (a later handshake with one is
   * still refused as `closed` while the tunnel is retained), its relay state is dropped, and it is
   * forgotten after the retention.
   */
  close(t: Tunnel): void {
    if (t.status === 'CLOSED') return;
    const now = this.clock.now();
    t.status = 'CLOSED';
    t.closedAt = now;
    t.lastUpdatedAt = now;
    this.open--;
    this.closedCount++;
    for (const mode of PEER_MODES) this.byToken.delete(t.slots[mode].token);
    t.streams.clear();
    t.started.clear();
    t.connections.clear();
    t.attachedBefore.clear();
    this.closed.add(t);
    this.armSweep();
  }

  /** Forgets a tunnel now (CloseTunnel with `delete`, or its retention ended). */
  remove(t: Tunnel): void {
    if (this.tunnels.get(t.tunnelId) !== t) return;
    this.tunnels.delete(t.tunnelId);
    if (t.status === 'OPEN') this.open--;
    for (const mode of PEER_MODES) this.byToken.delete(t.slots[mode].token);
    this.closed.delete(t);
    if (this.closed.size === 0) {
      this.cancelSweep?.();
      this.cancelSweep = undefined;
    }
  }

  private armSweep(): void {
    if (this.cancelSweep) return;
    const first = this.closed.values().next();
    if (first.done) return;
    const due = (first.value.closedAt ?? 0) + this.retentionMs - this.clock.now();
    this.cancelSweep = this.clock.after(Math.max(0, due), () => {
      this.cancelSweep = undefined;
      const now = this.clock.now();
      for (const t of this.closed) {
        if ((t.closedAt ?? 0) + this.retentionMs > now) break;
        this.remove(t);
      }
      this.armSweep();
    });
  }

  get openCount(): number {
    return this.open;
  }

  /** Current tokens indexed (two per open tunnel). */
  get tokenCount(): number {
    return this.byToken.size;
  }

  /** Cancels every timer (simulator stop). */
  stop(): void {
    this.cancelSweep?.();
    this.cancelSweep = undefined;
    for (const t of this.tunnels.values()) {
      t.cancelLifetime?.();
      t.cancelLifetime = undefined;
    }
  }
}
