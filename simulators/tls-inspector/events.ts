/** What the TLS inspector saw, per event name (DESIGN.md event names where they apply). */
export type TlsInspectorEvents = {
  /** A client opened a TCP connection to the proxy port. */
  connection: { id: string; remote: string };
  /** That connection closed; bytes are raw TCP bytes on the client side (CONNECT request included). */
  closed: { id: string; bytesIn: number; bytesOut: number; durationMs: number };
  /** A CONNECT was accepted; `rule` is `intercept` or `passthrough:<pattern>`. */
  'connect-allowed': { target: string; rule: string };
  /** A CONNECT was refused before the tunnel opened (bad request-target, unreachable passthrough). */
  'connect-denied': { target: string; rule: string; status: number };
  /**
   * The inspector's destination list (a lab: the lab's hosts) refused where the CONNECT would go: 403.
   * `destination` is what it would have connected to (the target or its `map` destination); `allowed`
   * what it may reach; `reason` the reply body.
   */
  'destination-denied': { target: string; destination: string; status: 403; allowed: string; reason: string };
  'auth-required': { reason: 'missing' | 'wrong'; status: 407 };
  /**
   * The client rejected or broke the handshake with the inspector. `alert` is the TLS alert the client
   * sent (`unknown_ca`, `bad_certificate`...), when it sent one; clients that verify after the handshake
   * (Node, Go) just hang up: then `code` is `E_CLIENT_HANGUP` and there is no alert.
   */
  'tls-client-error': {
    remote: string;
    host: string;
    /** The fault of the leaf the client was shown (`none`: valid for the name, from the inspector's CA). */
    fault?: string;
    alert?: string;
    code?: string;
    message: string;
    /**
     * With a hang-up during the handshake: raw bytes the client sent after its ClientHello (0: it dropped
     * the connection, as Node does; a few: it closed the session, e.g. s2n's close_notify).
     */
    bytesAfterHello?: number;
  };
  /** A client finished its handshake with a forged leaf; the tunnel is live. */
  intercepted: { host: string; sni?: string; alpn?: string; leafCached: boolean; issueMs: number };
  /** A tunnel to a passthrough host opened (no interception). */
  passthrough: { host: string };
  /** The real target failed (TCP, TLS or certificate); the client got a fatal alert. */
  'upstream-error': { target: string; code: string; message: string };
  /**
   * The target asked for a client certificate (mutual TLS) and then refused the session the inspector
   * opened without one: by an alert (`certificate_required`, `handshake_failure`), or by closing before
   * it sent any data. The inspector terminates TLS and holds no device key; `message` says so.
   */
  'client-cert-unavailable': {
    target: string;
    host: string;
    /**
     * `target-refused`: the target refused the certificate-less session. `device-hung-up`: the device
     * closed the session mid-handshake, right after a server flight without a CertificateRequest (what a
     * device that insists on mutual TLS does; Node, rejecting a certificate, drops without a byte).
     */
    cause: 'target-refused' | 'device-hung-up';
    alert?: string;
    message: string;
  };
  /** A forged leaf was signed. */
  'leaf-issued': { name: string; serial: string; signMs: number };
};

/** Counters since `start()`. */
export interface TlsInspectorStats {
  connections: number;
  intercepted: number;
  /** CONNECTs refused because their destination is not in the list (403). */
  denied: number;
  passthrough: number;
  /** Clients that rejected (alert) or abandoned the handshake with the inspector. */
  clientRejected: number;
  /** Tunnels whose first bytes were not a TLS ClientHello (or none came in time). */
  badClientHello: number;
  upstreamErrors: number;
  /** Sessions a target refused after asking for a client certificate the inspector could not give. */
  clientCertUnavailable: number;
  leafCacheHits: number;
  leafCacheMisses: number;
  leavesIssued: number;
}
