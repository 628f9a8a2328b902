import type { FailureClass } from '../probe/classes.js';

/** Why a localproxy ended. */
export type CloseReason =
  /** `stop()` was called. */
  | 'stopped'
  /** The service sent a WebSocket close frame (tunnel closed, token rotated, replaced, violation). */
  | 'close-frame'
  /** The handshake got a 4xx (token used, revoked, unknown...): never retried. */
  | 'handshake-rejected'
  /** 5xx / TLS / TCP failures went on past `maxRetries`. */
  | 'retries-exhausted'
  /** A local configuration problem found once connected (e.g. a -s id the tunnel does not have). */
  | 'config';

/** Events of a localproxy (typed; each also goes out as a `LabEvent` on `'event'`). */
export interface LocalProxyEvents {
  [key: string]: unknown;
  /** A WebSocket session is up. */
  connected: { url: string; protocol: string; channelId?: string; attempt: number; reconnect: boolean };
  /** SERVICE_IDS received (V2/V3). */
  'service-ids': { serviceIds: string[] };
  /** A source listener is bound. */
  listening: { serviceId: string; host: string; port: number };
  /** A stream (or a V3 connection within it) started; `local` when this proxy started it. */
  'stream-start': { serviceId: string; streamId: number; connectionId: number; local: boolean };
  /** A stream (or a V3 connection) ended; `from` says who reset it. */
  'stream-reset': {
    serviceId: string;
    streamId: number;
    connectionId?: number;
    from: 'local' | 'remote' | 'session';
  };
  /** The WebSocket dropped or an attempt failed; the next attempt is in `delayMs`. */
  reconnecting: { attempt: number; delayMs: number; reason: string; failureClass?: FailureClass };
  /** Something odd but not fatal (an unmapped service id, an unknown message type...). */
  warning: { message: string };
  /** The localproxy ended. */
  closed: {
    reason: CloseReason;
    message: string;
    /** Stable code: E_TUNNEL_TOKEN_USED, E_TUNNEL_HANDSHAKE_REJECTED, E_TUNNEL_CLOSED... */
    code?: string;
    status?: number;
    closeCode?: number;
    failureClass?: FailureClass;
  };
}

export interface LocalProxyStats {
  [key: string]: unknown;
  state: 'connecting' | 'connected' | 'reconnecting' | 'closed';
  /** Successful WebSocket handshakes (1 + reconnects). */
  connects: number;
  /** Failed attempts and drops. */
  failures: number;
  /** Local TCP connections accepted (source) or opened (destination). */
  tcpConnections: number;
  activeTcpConnections: number;
  /** Payload bytes read from local TCP sockets and sent as DATA. */
  bytesToService: number;
  /** Payload bytes received as DATA and written to local TCP sockets. */
  bytesFromService: number;
  wsMessagesOut: number;
  wsMessagesIn: number;
  tunnelMessagesOut: number;
  tunnelMessagesIn: number;
  /** DATA for an unknown stream or connection (stale), dropped. */
  dropped: number;
  pings: number;
  pongs: number;
  /** Backpressure now: local sockets paused because the WebSocket has too much unsent. */
  localReadsPaused: number;
  /** Backpressure now: local sockets with full write buffers (the WebSocket is paused meanwhile). */
  localWritesBlocked: number;
}
