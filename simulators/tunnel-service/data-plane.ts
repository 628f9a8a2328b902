import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import { isFieldlabError } from '../common/errors.js';
import type { Emitter, TokenRejectReason, TunnelServiceEvents, TunnelServiceStats } from './events.js';
import {
  encodeMessage,
  FrameSplitter,
  MAX_WS_FRAME_BYTES,
  MessageType,
  type RawFrame,
  messageTypeName as typeName,
} from './frame.js';
import type { ResolvedTunnelServiceOptions } from './options.js';
import { pooledRandomBytes } from './random.js';
import { type Peer, type PeerMode, servicesOf, type Tunnel, type TunnelRegistry } from './tunnels.js';

/**
 * The data plane: the WebSocket handshake checks (before the upgrade, each with its HTTP status) and the
 * relay between a tunnel's source and destination.
 *
 * ```
 * source ws ──bytes──▶ FrameSplitter ──scan header──▶ checks (type, stream, service) ──original bytes──▶ dest ws
 * ```
 * DATA payloads are never decoded or copied: the relay forwards views of the received bytes.
 */

/**
 * Subprotocols by version (V1/V2/V3 protocol guides). A Map: the names come from the client's
 * Sec-WebSocket-Protocol header, and `constructor` must not look like a version.
 */
const SUBPROTOCOLS = new Map<string, number>([
  ['aws.iot.securetunneling-1.0', 1],
  ['aws.iot.securetunneling-2.0', 2],
  ['aws.iot.securetunneling-3.0', 3],
]);
const CLIENT_TOKEN = /^[a-zA-Z0-9-]{32,128}$/;
/** Handshake request (request line + headers) limit of the real service. */
export const MAX_HANDSHAKE_BYTES = 4096;
/** Pause a sender while its receiver has this much unsent. */
const HIGH_WATER = 1 << 20;

/** WebSocket close codes the service uses (RFC 6455 §7.4.1). */
export const CLOSE = {
  normal: 1000,
  protocolError: 1002,
  unsupportedData: 1003,
  policyViolation: 1008,
  internalError: 1011,
} as const;

const TOKEN_CODES: Record<TokenRejectReason, string> = {
  missing: 'E_TUNNEL_TOKEN_MISSING',
  ambiguous: 'E_TUNNEL_TOKEN_AMBIGUOUS',
  used: 'E_TUNNEL_TOKEN_USED',
  revoked: 'E_TUNNEL_TOKEN_REVOKED',
  unknown: 'E_TUNNEL_TOKEN_UNKNOWN',
  closed: 'E_TUNNEL_CLOSED',
  'mode-mismatch': 'E_TUNNEL_TOKEN_MODE_MISMATCH',
};

/** A session id shaped like the real service's (hex groups). */
function channelId(): string {
  const h = pooledRandomBytes(28).toString('hex');
  return `${h.slice(0, 16)}-${h.slice(16, 24)}-${h.slice(24, 32)}-${h.slice(32, 48)}-${h.slice(48)}`;
}

/** RFC 6455 §5.5: a close reason fits in 123 bytes of UTF-8; cut at a whole character. */
export function closeReason(reason: string): string {
  let out = '';
  let bytes = 0;
  for (const ch of reason) {
    bytes += Buffer.byteLength(ch);
    if (bytes > 123) break;
    out += ch;
  }
  return out;
}

function reject(socket: Duplex, status: number, reason: string): void {
  const text = `${reason}\n`;
  const statusText: Record<number, string> = {
    400: 'Bad Request',
    401: 'Unauthorized',
    403: 'Forbidden',
    431: 'Request Header Fields Too Large',
  };
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${status} ${statusText[status] ?? 'Error'}\r\nConnection: close\r\nchannel-id: ${channelId()}\r\n` +
        `Content-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
    );
  }
}

interface Admitted {
  tunnel: Tunnel;
  mode: PeerMode;
  token: string;
  clientToken: string | undefined;
}

interface Refused {
  status: number;
  reason: string;
  token?: { reason: TokenRejectReason; tunnel?: Tunnel; mode?: string };
}

class Violation extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly closeCode: number = CLOSE.policyViolation,
  ) {
    super(message);
  }
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Path and query of the request target. `/tunnel?...`, what every localproxy asks for, is split without
 * a full URL parse; anything else (or a fragment) goes through `URL`, as before.
 */
function requestTarget(raw: string): { pathname: string; query: URLSearchParams } {
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  if (path === '/tunnel' && !raw.includes('#')) {
    return { pathname: path, query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)) };
  }
  const url = new URL(raw, 'http://tunnel.invalid');
  return { pathname: url.pathname, query: url.searchParams };
}

/** Handshake size: request line + raw headers as sent. */
function handshakeBytes(req: IncomingMessage): number {
  let n = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    n += (req.rawHeaders[i]?.length ?? 0) + (req.rawHeaders[i + 1]?.length ?? 0) + 4;
  }
  return n;
}

/**
 * The messages of one outgoing frame as one buffer. They are views into the received bytes, and when
 * every message of a frame is forwarded they lie back to back there: then the frame is a view too (no
 * copy, the usual case of a DATA stream); after a dropped message, a copy.
 */
export function joined(parts: Buffer[], total: number): Buffer {
  const first = parts[0] as Buffer;
  let end = first.byteOffset + first.length;
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i] as Buffer;
    if (p.buffer !== first.buffer || p.byteOffset !== end) return Buffer.concat(parts, total);
    end += p.length;
  }
  return parts.length === 1 ? first : Buffer.from(first.buffer, first.byteOffset, total);
}

export class DataPlane {
  private readonly wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    // Protocol guide: a WebSocket frame payload is at most 131076 bytes (ws closes with 1009 beyond).
    maxPayload: MAX_WS_FRAME_BYTES,
    // Echo the highest version offered; the handshake checks refused the request when none is ours.
    handleProtocols: (offered) => {
      let best: string | false = false;
      for (const p of offered) {
        const v = SUBPROTOCOLS.get(p);
        if (v !== undefined && (best === false || v > (SUBPROTOCOLS.get(best) ?? 0))) best = p;
      }
      return best;
    },
  });
  private readonly peers = new Set<Peer>();
  private readonly serviceIdsMessages = new WeakMap<readonly string[], Buffer>();

  constructor(
    private readonly registry: TunnelRegistry,
    private readonly opts: ResolvedTunnelServiceOptions,
    private readonly events: Emitter,
    private readonly stats: TunnelServiceStats,
  ) {
    // V3 guide: the 101 answer carries a `channel-id` identifying the WebSocket session.
    this.wss.on('headers', (headers) => headers.push(`channel-id: ${channelId()}`));
  }

  /** The `upgrade` listener of the data plane's HTTP(S) server. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => {});
    const a = this.admit(req);
    if ('status' in a) {
      const remote = `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`;
      if (a.token) {
        this.events.emitEvent('token-rejected', {
          ...(a.token.tunnel ? { tunnelId: a.token.tunnel.tunnelId } : {}),
          ...(a.token.mode ? { mode: a.token.mode } : {}),
          reason: a.token.reason,
          status: a.status,
          code: TOKEN_CODES[a.token.reason],
        });
      }
      this.stats.handshakesRejected++;
      this.events.emitEvent('handshake-rejected', { remote, status: a.status, reason: a.reason });
      reject(socket, a.status, a.reason);
      return;
    }
    const { tunnel: t, mode, token, clientToken } = a;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const slot = t.slots[mode];
      if (t.status !== 'OPEN' || slot.token !== token) {
        ws.close(CLOSE.policyViolation, 'tunnel changed during the handshake');
        return;
      }
      slot.used = true;
      slot.clientToken = clientToken;
      this.attach(t, mode, ws, socket, token, clientToken);
    });
  }

  /** The handshake checks, in order, each with its HTTP status (4xx: localproxy does not retry). */
  private admit(req: IncomingMessage): Admitted | Refused {
    const refuseToken = (status: number, reason: TokenRejectReason, tunnel?: Tunnel, mode?: string) => ({
      status,
      reason: `access token ${reason}`,
      token: { reason, ...(tunnel ? { tunnel } : {}), ...(mode ? { mode } : {}) },
    });
    if (handshakeBytes(req) > MAX_HANDSHAKE_BYTES)
      return { status: 431, reason: 'handshake request over 4 KB' };
    const target = requestTarget(req.url ?? '/');
    if (req.method !== 'GET' || target.pathname !== '/tunnel') {
      return { status: 400, reason: `no such path ${target.pathname}` };
    }
    const mode = target.query.get('local-proxy-mode');
    if (mode !== 'source' && mode !== 'destination') {
      return { status: 400, reason: 'local-proxy-mode must be source|destination' };
    }
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim());
    if (!offered.some((p) => SUBPROTOCOLS.has(p))) {
      return { status: 400, reason: 'no aws.iot.securetunneling-{1,2,3}.0 subprotocol offered' };
    }
    const clientToken = req.headers['client-token'];
    if (clientToken !== undefined && (typeof clientToken !== 'string' || !CLIENT_TOKEN.test(clientToken))) {
      return { status: 400, reason: 'client-token must match ^[a-zA-Z0-9-]{32,128}$' };
    }
    // Exactly one of the header and the cookie carries the access token.
    const headerToken = req.headers['access-token'];
    const cookieToken = cookie(req, 'awsiot-tunnel-token');
    if (headerToken !== undefined && cookieToken !== undefined) return refuseToken(400, 'ambiguous');
    const token = typeof headerToken === 'string' ? headerToken : cookieToken;
    if (!token) return refuseToken(401, 'missing');

    // A token of a forgotten tunnel (deleted, or past the retention) is unknown, like one never issued.
    const hit = this.registry.lookupToken(token);
    if (!hit) return refuseToken(403, 'unknown', undefined, mode);
    const t = hit.tunnel;
    if (t.status !== 'OPEN') return refuseToken(403, 'closed', t, mode);
    if (!hit.current) return refuseToken(403, 'revoked', t, mode);
    if (hit.mode !== mode) return refuseToken(403, 'mode-mismatch', t, mode);
    const slot = t.slots[mode];
    // Single-use: a used token reconnects only with the client token bound at first use.
    if (slot.used && (slot.clientToken === undefined || slot.clientToken !== clientToken)) {
      return refuseToken(403, 'used', t, mode);
    }
    return { tunnel: t, mode, token, clientToken };
  }

  private attach(
    t: Tunnel,
    mode: PeerMode,
    ws: WebSocket,
    socket: Duplex,
    token: string,
    clientToken: string | undefined,
  ): void {
    const protocol = SUBPROTOCOLS.get(ws.protocol) ?? 1;
    const peer: Peer = { id: randomUUID().slice(0, 8), mode, protocol, ws, socket, token, clientToken };
    const old = t.peers[mode];
    const replaced = old !== undefined;
    if (old) this.detach(t, old, CLOSE.normal, 'replaced by a reconnecting peer');
    // V2 guide ("Recovering from a crash"): on reconnection the service resets all active streams,
    // whether the old socket is still attached or already gone. A new localproxy session numbers its
    // streams from 1 again, so without the reset a peer would take the new STREAM_START for its old one
    // (the C++ localproxy ignores a STREAM_START repeating its current stream id).
    if (t.attachedBefore.has(mode)) this.resetPeerStreams(t, mode === 'source' ? 'destination' : 'source');
    t.attachedBefore.add(mode);
    t.peers[mode] = peer;
    t.slots[mode].lastUpdatedAt = this.opts.clock.now();
    this.peers.add(peer);
    this.stats.peers = this.peers.size;
    this.events.emitEvent('peer-connected', {
      tunnelId: t.tunnelId,
      mode,
      protocol,
      ...(clientToken ? { clientToken } : {}),
      replaced,
    });
    // V2/V3 guides: the service sends SERVICE_IDS first; localproxy waits for it. V1 has no service ids.
    if (protocol >= 2) ws.send(this.serviceIdsMessage(t));

    const splitter = new FrameSplitter();
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (t.peers[mode] !== peer) return;
      if (!isBinary)
        return this.violate(t, peer, new Violation('E_FRAME_TEXT', 'text frame', CLOSE.unsupportedData));
      try {
        const chunk = Buffer.isBuffer(data) ? data : Buffer.concat(data as Buffer[]);
        this.relay(t, peer, splitter.push(chunk));
      } catch (err) {
        if (err instanceof Violation) this.violate(t, peer, err);
        else if (isFieldlabError(err))
          this.violate(t, peer, new Violation(err.code, err.message, CLOSE.protocolError));
        // A bug must not take the server down for other tunnels: close this peer with 1011.
        else this.violate(t, peer, new Violation('E_TUNNEL_INTERNAL', String(err), CLOSE.internalError));
      }
    });
    ws.on('error', () => {});
    ws.on('close', (code, reason) => {
      this.peers.delete(peer);
      this.stats.peers = this.peers.size;
      if (peer.terminateTimer) clearTimeout(peer.terminateTimer);
      peer.terminateTimer = undefined;
      if (t.peers[mode] === peer) {
        delete t.peers[mode];
        t.slots[mode].lastUpdatedAt = this.opts.clock.now();
      }
      this.flushData(t);
      this.events.emitEvent('peer-disconnected', {
        tunnelId: t.tunnelId,
        mode,
        code,
        reason: reason.toString(),
      });
    });
  }

  /**
   * The SERVICE_IDS message of a tunnel, encoded once per list of services: both sides get the same
   * one, and a rotation with a new destinationConfig brings a new list (a WeakMap key).
   */
  private serviceIdsMessage(t: Tunnel): Buffer {
    const services = servicesOf(t);
    let message = this.serviceIdsMessages.get(services);
    if (!message) {
      message = encodeMessage({ type: MessageType.SERVICE_IDS, availableServiceIds: [...services] });
      this.serviceIdsMessages.set(services, message);
    }
    return message;
  }

  /** Checks each message against the tunnel's state and forwards the valid ones' original bytes. */
  private relay(t: Tunnel, from: Peer, frames: RawFrame[]): void {
    const to = t.peers[from.mode === 'source' ? 'destination' : 'source'];
    const out: Buffer[] = [];
    let outBytes = 0;
    let dataBytes = 0;
    const flush = () => {
      if (out.length === 0) return;
      if (to && to.ws.readyState === to.ws.OPEN) to.ws.send(joined(out, outBytes));
      out.length = 0;
      outBytes = 0;
    };
    try {
      for (const f of frames) {
        if (!this.check(t, from, f)) {
          this.stats.framesDropped++;
          continue;
        }
        if (outBytes + f.bytes.length > MAX_WS_FRAME_BYTES) flush();
        out.push(f.bytes);
        outBytes += f.bytes.length;
        this.stats.framesRelayed++;
        if (f.header.type === MessageType.DATA) {
          dataBytes += f.bytes.length;
          t.pending[from.mode].frames++;
        }
      }
    } finally {
      // Messages before a violating one were valid: they still reach the peer.
      flush();
    }
    if (dataBytes > 0) {
      this.stats.bytesRelayed += dataBytes;
      t.pending[from.mode].bytes += dataBytes;
      if (!t.dataTimer) t.dataTimer = setTimeout(() => this.flushData(t), this.opts.dataEventIntervalMs);
      this.applyBackpressure(t, from, to, dataBytes);
    }
  }

  /** True when the message is forwarded; false when dropped (stale); throws a Violation. */
  private check(t: Tunnel, from: Peer, f: RawFrame): boolean {
    const h = f.header;
    const services = servicesOf(t);
    // V2 guide: with one service the service id may be left out.
    const serviceId = h.serviceId === '' && services.length === 1 ? (services[0] as string) : h.serviceId;
    // V2 guide: "A stream start message may include one of the service ID's defined as part of the
    // tunnel, or no service ID" (the C++ localproxy's unnamed `-s 5555` on any tunnel).
    const known = serviceId === '' || services.includes(serviceId);
    const connectionId = h.connectionId === 0 ? 1 : h.connectionId; // V3 guide: 0/absent means 1
    switch (h.type) {
      case MessageType.STREAM_START: {
        // V2 guide: only the source starts streams; stream id 0 is invalid.
        if (from.mode !== 'source')
          throw new Violation('E_TUNNEL_DEST_STREAM_START', 'destination sent STREAM_START');
        if (h.streamId === 0) throw new Violation('E_TUNNEL_STREAM_ID', 'STREAM_START with stream id 0');
        if (!known)
          throw new Violation('E_TUNNEL_SERVICE_ID', `STREAM_START for unknown service ${serviceId}`);
        t.streams.set(serviceId, h.streamId);
        t.started.add(serviceId);
        t.connections.set(serviceId, new Set([connectionId]));
        this.events.emitEvent('stream-start', {
          tunnelId: t.tunnelId,
          streamId: h.streamId,
          serviceId,
          connectionId,
        });
        return true;
      }
      case MessageType.DATA:
      case MessageType.STREAM_RESET:
      case MessageType.CONNECTION_START:
      case MessageType.CONNECTION_RESET: {
        if (h.type >= MessageType.CONNECTION_START && from.protocol < 3) {
          throw new Violation('E_TUNNEL_V3_ONLY', 'CONNECTION_START/RESET needs subprotocol 3.0');
        }
        // V3 guide: stream-associated messages with stream id 0 are invalid.
        if (h.streamId === 0)
          throw new Violation('E_TUNNEL_STREAM_ID', `${typeName(h.type)} with stream id 0`);
        if (!known)
          throw new Violation('E_TUNNEL_SERVICE_ID', `${typeName(h.type)} for unknown service ${serviceId}`);
        const active = t.streams.get(serviceId);
        if (active === undefined) {
          // DATA for a service never started is a violation; after a reset it is a normal race: stale.
          if (h.type === MessageType.DATA && !t.started.has(serviceId)) {
            throw new Violation('E_TUNNEL_NO_STREAM', `DATA for service "${serviceId}" never started`);
          }
          return false;
        }
        if (h.streamId !== active) return false; // stale: drop
        const conns = t.connections.get(serviceId) ?? new Set<number>();
        if (h.type === MessageType.STREAM_RESET) {
          t.streams.delete(serviceId);
          t.connections.delete(serviceId);
          this.events.emitEvent('stream-reset', {
            tunnelId: t.tunnelId,
            streamId: h.streamId,
            serviceId,
            from: from.mode,
          });
          return true;
        }
        if (h.type === MessageType.CONNECTION_START) {
          if (from.mode !== 'source')
            throw new Violation('E_TUNNEL_DEST_CONN_START', 'destination sent CONNECTION_START');
          conns.add(connectionId);
          t.connections.set(serviceId, conns);
          this.events.emitEvent('connection-start', {
            tunnelId: t.tunnelId,
            streamId: h.streamId,
            serviceId,
            connectionId,
          });
          return true;
        }
        if (!conns.has(connectionId)) return false; // a connection already reset: stale
        if (h.type === MessageType.CONNECTION_RESET) {
          conns.delete(connectionId);
          this.events.emitEvent('connection-reset', {
            tunnelId: t.tunnelId,
            streamId: h.streamId,
            serviceId,
            connectionId,
          });
        }
        return true;
      }
      case MessageType.SERVICE_IDS:
      case MessageType.SESSION_RESET:
        throw new Violation(
          'E_TUNNEL_SERVICE_ONLY',
          `clients never send ${h.type === 5 ? 'SERVICE_IDS' : 'SESSION_RESET'}`,
        );
      default:
        // Protocol guide: a receiver may skip an unrecognised type marked ignorable, so it is relayed;
        // UNKNOWN (0) is never valid (the type must be non-zero).
        if (h.ignorable && h.type !== MessageType.UNKNOWN) return true;
        throw new Violation('E_TUNNEL_MESSAGE_TYPE', `message type ${h.type} not allowed`);
    }
  }

  /** Bandwidth quota and receiver backpressure: pauses the sender's socket, resumes it later. */
  private applyBackpressure(t: Tunnel, from: Peer, to: Peer | undefined, bytes: number): void {
    let delayMs = 0;
    const rate = this.opts.bandwidthBytesPerSecond;
    if (rate !== undefined) {
      const now = Date.now();
      if (now - t.quotaWindowStart >= 1000) {
        // Carry the overdraft into the new window so the long-run rate stays at the quota.
        t.quotaUsed = Math.max(0, t.quotaUsed - rate * Math.floor((now - t.quotaWindowStart) / 1000));
        t.quotaWindowStart = now;
      }
      t.quotaUsed += bytes;
      if (t.quotaUsed > rate) delayMs = ((t.quotaUsed - rate) / rate) * 1000;
    }
    const congested = to !== undefined && to.ws.bufferedAmount > HIGH_WATER;
    if (delayMs <= 0 && !congested) return;
    if (from.ws.isPaused) return;
    from.ws.pause();
    const resume = () => {
      if (t.peers[from.mode] === from && from.ws.isPaused) from.ws.resume();
    };
    if (congested && to) {
      // Resume on drain (after the quota delay, if any), or when the receiver goes away.
      const onDrain = () => {
        to.socket.off('close', onClose);
        if (delayMs > 0) setTimeout(resume, delayMs).unref();
        else resume();
      };
      const onClose = () => {
        to.socket.off('drain', onDrain);
        resume();
      };
      to.socket.once('drain', onDrain);
      to.socket.once('close', onClose);
    } else setTimeout(resume, delayMs).unref();
  }

  /** Emits the aggregated `data` events of a tunnel. */
  flushData(t: Tunnel): void {
    if (t.dataTimer) clearTimeout(t.dataTimer);
    t.dataTimer = undefined;
    for (const from of ['source', 'destination'] as const) {
      const p = t.pending[from];
      if (p.bytes === 0 && p.frames === 0) continue;
      this.events.emitEvent('data', { tunnelId: t.tunnelId, from, bytes: p.bytes, frames: p.frames });
      t.pending[from] = { bytes: 0, frames: 0 };
    }
  }

  private violate(t: Tunnel, peer: Peer, v: Violation): void {
    this.stats.violations++;
    this.events.emitEvent('protocol-violation', {
      tunnelId: t.tunnelId,
      mode: peer.mode,
      reason: v.message,
      code: v.code,
      closeCode: v.closeCode,
    });
    this.detach(t, peer, v.closeCode, v.message);
  }

  /** Sends STREAM_RESET for every active stream to one side (its peer was replaced), and clears them. */
  private resetPeerStreams(t: Tunnel, mode: PeerMode): void {
    const peer = t.peers[mode];
    for (const [serviceId, streamId] of t.streams) {
      // V1 messages carry no service id.
      const sid = peer && peer.protocol >= 2 ? { serviceId } : {};
      if (peer) peer.ws.send(encodeMessage({ type: MessageType.STREAM_RESET, streamId, ...sid }));
      this.events.emitEvent('stream-reset', { tunnelId: t.tunnelId, streamId, serviceId, from: 'service' });
    }
    t.streams.clear();
    t.connections.clear();
  }

  /** Closes one peer's socket (close frame; terminated if it does not answer in 1 s). */
  private detach(t: Tunnel, peer: Peer, code: number, reason: string): void {
    if (t.peers[peer.mode] === peer) delete t.peers[peer.mode];
    if (peer.ws.readyState === peer.ws.OPEN || peer.ws.readyState === peer.ws.CONNECTING) {
      peer.ws.close(code, closeReason(reason));
      // Cleared when the socket closes, so a closed peer is not held for the second.
      peer.terminateTimer = setTimeout(() => peer.ws.terminate(), 1000);
      peer.terminateTimer.unref();
    }
  }

  /** Disconnects one side (its token was rotated). */
  disconnectMode(t: Tunnel, mode: PeerMode, reason: string): void {
    const peer = t.peers[mode];
    if (peer) this.detach(t, peer, CLOSE.normal, reason);
  }

  /** Closes a tunnel: both sockets end with 1000 and it never reopens. */
  closeTunnel(t: Tunnel, reason: TunnelServiceEvents['tunnel-closed']['reason']): void {
    if (t.status === 'CLOSED') return;
    t.cancelLifetime?.();
    t.cancelLifetime = undefined;
    this.flushData(t);
    for (const mode of ['source', 'destination'] as const) {
      const peer = t.peers[mode];
      if (peer)
        this.detach(
          t,
          peer,
          CLOSE.normal,
          reason === 'lifetime' ? 'tunnel max lifetime reached' : 'tunnel closed',
        );
    }
    // Tokens released, relay state dropped, forgotten after the retention.
    this.registry.close(t);
    this.events.emitEvent('tunnel-closed', { tunnelId: t.tunnelId, reason });
  }

  /** Ends every socket immediately (simulator stop). */
  stop(): void {
    for (const p of this.peers) {
      if (p.terminateTimer) clearTimeout(p.terminateTimer);
      p.ws.terminate();
    }
    this.peers.clear();
    this.wss.close();
  }
}
