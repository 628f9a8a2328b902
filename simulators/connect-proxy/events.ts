/** Phase times of one client connection, in ms since it was accepted. */
export interface ConnectionTimings {
  /** Epoch ms (sub-ms precision) when the proxy accepted the TCP (or TLS) connection. */
  acceptedAt: number;
  /** When the (last) request's credentials were accepted, or the request passed without auth. */
  authMs?: number;
  /** When the connection to the destination (or upstream proxy's 200) was made. */
  upstreamMs?: number;
  closedMs: number;
}

/** What the connect proxy saw, per event name (DESIGN.md event names where they apply). */
export type ConnectProxyEvents = {
  /** A client opened a connection to the proxy port (after the TLS handshake on a TLS listener). */
  connection: { id: string; remote: string };
  /**
   * That connection closed. `bytesIn`/`bytesOut` are the client side's raw bytes (requests included);
   * `targetBytesOut`/`targetBytesIn` the destination side's. `target` is what the client asked for,
   * `mappedTarget` where it went (after `map`).
   */
  closed: {
    id: string;
    bytesIn: number;
    bytesOut: number;
    targetBytesOut: number;
    targetBytesIn: number;
    durationMs: number;
    target?: string;
    mappedTarget?: string;
    rule?: string;
    timings: ConnectionTimings;
  };
  /** A CONNECT (or plain HTTP request, `method` tells) passed the policy; `rule` is `#n 'name'`. */
  'connect-allowed': {
    target: string;
    rule: string;
    method: string;
    mappedTarget?: string;
    upstream?: string;
  };
  /**
   * A request was refused by the policy (403, `rule` is `#n 'name'`) or was malformed (400, `rule` is
   * `malformed`: an unparsable target, a non-Basic Proxy-Authorization). `reason` is the reply body.
   */
  'connect-denied': { target: string; rule: string; status: number; method: string; reason: string };
  /**
   * The proxy's destination list (a lab: the lab's hosts) refused where the request would go: 403.
   * `destination` is what the proxy would have connected to (the target, its `map` destination, or the
   * upstream proxy); `allowed` what it may reach; `reason` the reply body.
   */
  'destination-denied': {
    target: string;
    destination: string;
    method: string;
    status: 403;
    allowed: string;
    reason: string;
  };
  /** Missing or wrong proxy credentials: the client got 407 with `Proxy-Authenticate: Basic`. */
  'auth-required': { reason: 'missing' | 'wrong'; status: 407; username?: string; target: string };
  /** The destination (or upstream proxy) failed: 502 (refused, unreachable, bad upstream reply) or 504. */
  'upstream-error': { target: string; code: string; message: string; status: number };
  /**
   * A client spoke the wrong protocol to the listener: TLS to the plain proxy (`tls-to-plain-proxy`: the
   * client was given `https://` for an `http://` proxy) or plain HTTP to the TLS listener.
   */
  'protocol-error': { remote: string; reason: 'tls-to-plain-proxy' | 'plain-to-tls-proxy' | 'tls-handshake' };
  /** TLS listener only: a client's handshake failed (DESIGN.md `tls-client-error`). */
  'tls-client-error': { remote: string; alert?: string; code?: string; message: string };
};

/** Counters since `start()`. Bytes are client-side, for closed and still-open connections. */
export interface ConnectProxyStats {
  connections: number;
  active: number;
  /** Sockets to targets (or upstream proxies) still open: 0 once every tunnel has closed. */
  activeTargets: number;
  allowed: number;
  denied: number;
  authFailures: number;
  upstreamErrors: number;
  protocolErrors: number;
  /** Client → proxy bytes. */
  bytesUp: number;
  /** Proxy → client bytes. */
  bytesDown: number;
}
