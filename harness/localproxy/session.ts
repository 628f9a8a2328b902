import { connect as netConnect, type Socket } from 'node:net';
import type WebSocket from 'ws';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { SimulatorEvents } from '../../simulators/common/events.js';
import type { Target } from '../../simulators/common/targets.js';
import {
  encodeMessage,
  MessageType,
  messageTypeName,
  scanMessage,
  type TunnelMessageInput,
} from '../../simulators/tunnel-service/frame.js';
import type { LocalProxyEvents, LocalProxyStats } from './events.js';
import type { ProtocolVersion } from './options.js';
import { type DataRoute, Outbox } from './outbox.js';

/**
 * One WebSocket session of a localproxy: the streams and their local TCP connections.
 *
 * - V1/V2 (protocol guides): one stream per service at a time; a new source connection starts a new
 *   stream id, replacing the previous one; STREAM_RESET ends it.
 * - V3: one stream per service multiplexing TCP connections: the first connection goes with STREAM_START
 *   (connectionId 1), the next ones with CONNECTION_START; a closed connection sends CONNECTION_RESET.
 *
 * A session ends with its WebSocket; the local connections end with it (the service resets the other
 * side's streams when a peer reconnects).
 */

interface Conn {
  serviceId: string;
  route: DataRoute;
  socket: Socket;
  /** The remote side reset it, or we sent a reset: no more messages about it. */
  done: boolean;
}

interface Stream {
  streamId: number;
  conns: Map<number, Conn>;
  nextConnectionId: number;
}

export interface SessionConfig {
  mode: 'source' | 'destination';
  version: ProtocolVersion;
  destinations: ReadonlyMap<string, Target>;
  highWaterMark: number;
  /** Client frames masked with the zero key (the outbox then writes DATA payloads without a copy). */
  zeroMask: boolean;
}

let nextStreamId = 1;

export class Session {
  readonly outbox: Outbox;
  private readonly streams = new Map<string, Stream>();
  /** Service ids from SERVICE_IDS ([] for V1 or until they arrive). */
  serviceIds: string[] | undefined;
  private pending: Buffer | undefined;
  /** Local sockets whose write buffer is full: the WebSocket is paused until they drain. */
  private readonly blocked = new Set<Socket>();
  private ended = false;

  constructor(
    readonly ws: WebSocket,
    raw: Socket,
    private readonly cfg: SessionConfig,
    private readonly events: SimulatorEvents<LocalProxyEvents>,
    private readonly stats: LocalProxyStats,
    private readonly onServiceIds: (ids: string[]) => void,
  ) {
    this.outbox = new Outbox(ws, raw, cfg.highWaterMark, stats, cfg.zeroMask);
    ws.on('message', (data: Buffer) => this.receive(data));
    ws.resume();
  }

  private warn(message: string): void {
    this.events.emitEvent('warning', { message });
  }

  /** The service id a message is about: V2 allows leaving it out when the tunnel has one service. */
  private sid(raw: string): string {
    if (raw === '' && this.serviceIds?.length === 1) return this.serviceIds[0] as string;
    return raw;
  }

  private control(msg: TunnelMessageInput): void {
    const m: TunnelMessageInput = { ...msg };
    if (this.cfg.version < 2) delete m.serviceId;
    if (this.cfg.version < 3) delete m.connectionId;
    this.outbox.control(encodeMessage(m));
  }

  // ---- receive ----

  private receive(chunk: Buffer): void {
    this.stats.wsMessagesIn++;
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    let pos = 0;
    try {
      while (buf.length - pos >= 2) {
        const len = buf.readUInt16BE(pos);
        if (buf.length - pos - 2 < len) break;
        const h = scanMessage(buf, pos + 2, pos + 2 + len);
        pos += 2 + len;
        this.stats.tunnelMessagesIn++;
        this.handle(h, buf);
      }
    } catch (err) {
      // Protocol guide: a malformed message ends the session (1002, protocol error).
      this.warn(`bad message from the service: ${(err as Error).message}`);
      this.ws.close(1002, 'malformed message');
      return;
    }
    if (pos < buf.length) this.pending = Buffer.from(buf.subarray(pos));
  }

  private handle(h: ReturnType<typeof scanMessage>, buf: Buffer): void {
    const serviceId = this.sid(h.serviceId);
    const connectionId = h.connectionId === 0 ? 1 : h.connectionId; // V3 guide: 0/absent = 1
    switch (h.type) {
      case MessageType.DATA: {
        const conn = this.streams.get(serviceId)?.conns.get(connectionId);
        if (!conn || conn.done || conn.route.streamId !== h.streamId) {
          this.stats.dropped++;
          return;
        }
        const payload = buf.subarray(h.payloadOffset, h.payloadOffset + h.payloadLength);
        this.stats.bytesFromService += payload.length;
        if (!conn.socket.write(payload) && !this.blocked.has(conn.socket)) {
          this.blocked.add(conn.socket);
          this.ws.pause();
          conn.socket.once('drain', () => this.unblock(conn.socket));
        }
        return;
      }
      case MessageType.SERVICE_IDS:
        this.serviceIds = h.availableServiceIds;
        this.events.emitEvent('service-ids', { serviceIds: [...h.availableServiceIds] });
        this.onServiceIds(h.availableServiceIds);
        return;
      case MessageType.STREAM_START:
        if (this.cfg.mode === 'destination') this.destStreamStart(serviceId, h.streamId, connectionId);
        else this.warn('the service sent STREAM_START to a source; ignored');
        return;
      case MessageType.CONNECTION_START:
        if (this.cfg.mode === 'destination') this.destConnectionStart(serviceId, h.streamId, connectionId);
        else this.warn('the service sent CONNECTION_START to a source; ignored');
        return;
      case MessageType.STREAM_RESET: {
        const s = this.streams.get(serviceId);
        if (!s || s.streamId !== h.streamId) return;
        this.dropStream(serviceId, 'remote');
        return;
      }
      case MessageType.CONNECTION_RESET: {
        const s = this.streams.get(serviceId);
        const conn = s?.conns.get(connectionId);
        if (!s || !conn || s.streamId !== h.streamId) return;
        this.endConn(conn, 'remote');
        return;
      }
      case MessageType.SESSION_RESET:
        for (const id of [...this.streams.keys()]) this.dropStream(id, 'session');
        return;
      default:
        // Protocol guide: unknown ignorable messages are skipped.
        if (!h.ignorable) this.warn(`unexpected ${messageTypeName(h.type)} from the service; ignored`);
    }
  }

  private unblock(s: Socket): void {
    this.blocked.delete(s);
    if (this.blocked.size === 0 && !this.ended) this.ws.resume();
  }

  // ---- local connections ----

  private attach(conn: Conn): void {
    const s = conn.socket;
    s.setNoDelay(true);
    this.stats.tcpConnections++;
    this.stats.activeTcpConnections++;
    s.on('data', (chunk: Buffer) => {
      if (!conn.done) this.outbox.data(conn.route, chunk, s);
    });
    // No half-close in the tunnel protocol: EOF from the app ends the connection (after queued DATA).
    s.on('end', () => this.endConn(conn, 'local'));
    s.on('error', () => this.endConn(conn, 'local'));
    s.on('close', () => {
      this.stats.activeTcpConnections--;
      this.outbox.forget(s);
      if (this.blocked.has(s)) this.unblock(s);
      this.endConn(conn, 'local');
    });
    // Held while reconnecting (paused): flowing now, unless the WebSocket is congested.
    s.resume();
    this.outbox.pauseSocket(s);
  }

  /** Local sockets whose writes are blocked (the WebSocket is paused for them). */
  get blockedCount(): number {
    return this.blocked.size;
  }

  /** Ends a local connection; `local` sends the reset to the service. */
  private endConn(conn: Conn, from: 'local' | 'remote' | 'session'): void {
    if (conn.done) return;
    conn.done = true;
    const s = this.streams.get(conn.serviceId);
    const { streamId, connectionId } = conn.route;
    if (from === 'local') {
      // Queued DATA goes out first (same outbox), then the reset.
      // V3 guide: CONNECTION_RESET closes one connection and the stream stays; V1/V2: STREAM_RESET.
      const type = this.cfg.version >= 3 ? MessageType.CONNECTION_RESET : MessageType.STREAM_RESET;
      this.control({ type, streamId, serviceId: conn.serviceId, connectionId });
    }
    conn.route.live = false;
    if (s && s.conns.get(connectionId) === conn) {
      s.conns.delete(connectionId);
      if (this.cfg.version < 3) this.streams.delete(conn.serviceId);
    }
    this.events.emitEvent('stream-reset', {
      serviceId: conn.serviceId,
      streamId,
      ...(this.cfg.version >= 3 ? { connectionId } : {}),
      from,
    });
    // Written data is flushed before FIN; a socket that errored is already gone.
    if (from === 'local') conn.socket.destroySoon();
    else {
      // Nothing more is read from it: once our data and FIN are out, it can go.
      conn.socket.once('finish', () => conn.socket.destroy());
      conn.socket.end();
    }
  }

  private dropStream(serviceId: string, from: 'remote' | 'session'): void {
    const s = this.streams.get(serviceId);
    if (!s) return;
    this.streams.delete(serviceId);
    for (const c of s.conns.values()) this.endConn(c, from);
  }

  private newConn(serviceId: string, streamId: number, connectionId: number, socket: Socket): Conn {
    return {
      serviceId,
      socket,
      done: false,
      route: {
        streamId,
        serviceId: this.cfg.version >= 2 && serviceId !== '' ? Buffer.from(serviceId) : undefined,
        connectionId: this.cfg.version >= 3 ? connectionId : 0,
        live: true,
      },
    };
  }

  /** Source: a local TCP connection accepted for `serviceId`. */
  sourceAccept(serviceId: string, socket: Socket): void {
    if (this.ended) {
      socket.destroy();
      return;
    }
    let s = this.streams.get(serviceId);
    if (s && this.cfg.version >= 3) {
      // V3 guide: another connection in the same stream.
      const connectionId = s.nextConnectionId++;
      const conn = this.newConn(serviceId, s.streamId, connectionId, socket);
      s.conns.set(connectionId, conn);
      this.control({ type: MessageType.CONNECTION_START, streamId: s.streamId, serviceId, connectionId });
      this.events.emitEvent('stream-start', { serviceId, streamId: s.streamId, connectionId, local: true });
      this.attach(conn);
      return;
    }
    if (s) {
      // V2: the new connection replaces the stream; the old connection is closed locally.
      this.streams.delete(serviceId);
      for (const c of s.conns.values()) {
        c.done = true;
        c.route.live = false;
        c.socket.end();
        this.events.emitEvent('stream-reset', { serviceId, streamId: s.streamId, from: 'local' });
      }
    }
    const streamId = nextStreamId++;
    s = { streamId, conns: new Map(), nextConnectionId: 2 };
    const conn = this.newConn(serviceId, streamId, 1, socket);
    s.conns.set(1, conn);
    this.streams.set(serviceId, s);
    this.control({ type: MessageType.STREAM_START, streamId, serviceId, connectionId: 1 });
    this.events.emitEvent('stream-start', { serviceId, streamId, connectionId: 1, local: true });
    this.attach(conn);
  }

  private target(serviceId: string): Target | undefined {
    const d = this.cfg.destinations;
    if (d.has(serviceId)) return d.get(serviceId);
    return d.size === 1 && d.has('') ? d.get('') : undefined;
  }

  private connectLocal(serviceId: string, streamId: number, connectionId: number): Conn | undefined {
    const t = this.target(serviceId);
    if (!t) {
      this.warn(`no destination (-d) for service "${serviceId}"; resetting its stream`);
      this.control({ type: MessageType.STREAM_RESET, streamId, serviceId, connectionId });
      return undefined;
    }
    const socket = netConnect({ host: t.host, port: t.port });
    const conn = this.newConn(serviceId, streamId, connectionId, socket);
    this.attach(conn);
    return conn;
  }

  /** Destination: STREAM_START replaces the service's stream and opens connection 1 (or the one given). */
  private destStreamStart(serviceId: string, streamId: number, connectionId: number): void {
    const old = this.streams.get(serviceId);
    if (old) {
      this.streams.delete(serviceId);
      for (const c of old.conns.values()) this.endConn(c, 'remote');
    }
    const s: Stream = { streamId, conns: new Map(), nextConnectionId: connectionId + 1 };
    this.streams.set(serviceId, s);
    this.events.emitEvent('stream-start', { serviceId, streamId, connectionId, local: false });
    const conn = this.connectLocal(serviceId, streamId, connectionId);
    if (conn) s.conns.set(connectionId, conn);
    else this.streams.delete(serviceId);
  }

  private destConnectionStart(serviceId: string, streamId: number, connectionId: number): void {
    const s = this.streams.get(serviceId);
    if (!s || s.streamId !== streamId) return;
    this.events.emitEvent('stream-start', { serviceId, streamId, connectionId, local: false });
    const conn = this.connectLocal(serviceId, streamId, connectionId);
    if (conn) s.conns.set(connectionId, conn);
  }

  /** Ends every local connection (the WebSocket went away). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.outbox.close();
    for (const id of [...this.streams.keys()]) this.dropStream(id, 'session');
  }
}

/** A configuration problem found once the service's ids are known. */
export function mappingError(message: string): FieldlabError {
  return new FieldlabError('E_LOCALPROXY_SERVICE_MAPPING', message, {
    hint: 'name each port after a service of the tunnel: -s ID=port[,ID=port] (or -d ID=host:port)',
  });
}
