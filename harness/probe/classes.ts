/**
 * Failure classes: the vocabulary scenarios expect and reports print. Each class says what went wrong in
 * words a person can act on; `hint` is the usual fix. Adding a class means adding it here (the scenario
 * schema is generated from this list).
 */
export const FAILURE_CLASSES = {
  'tcp.refused': {
    summary: 'connection refused (RST to SYN)',
    hint: 'is the port open and the service listening, or does a firewall REJECT it?',
  },
  'tcp.timeout': {
    summary: 'connection or response timed out',
    hint: 'a firewall DROP, a blackholed port, a missing route or a hung peer',
  },
  'tcp.reset': {
    summary: 'connection reset by peer',
    hint: 'a middlebox or the server reset the connection',
  },
  'tcp.unreachable': {
    summary: 'no route to host / network unreachable',
    hint: 'check the routes and the interface addresses',
  },
  'tls.untrusted-root': {
    summary: 'TLS: certificate chain ends in an untrusted root',
    hint: "add the issuing root (e.g. the inspecting proxy's) to the client's trust store",
  },
  'tls.hostname-mismatch': {
    summary: 'TLS: certificate does not match the host name',
    hint: 'connect with the name the certificate was issued for, or reissue it',
  },
  'tls.expired': {
    summary: 'TLS: certificate expired',
    hint: 'renew the certificate, or check the device clock',
  },
  'tls.not-yet-valid': { summary: 'TLS: certificate not yet valid', hint: 'check the device clock' },
  'tls.incomplete-chain': {
    summary: 'TLS: server sent an incomplete chain (missing intermediate)',
    hint: 'serve the intermediate with the leaf',
  },
  'tls.handshake': {
    summary: 'TLS handshake failed',
    hint: 'protocol versions, ciphers, ALPN or a non-TLS peer',
  },
  'tls.client-cert-required': {
    summary: 'TLS: the server wanted a client certificate',
    hint: 'configure the device certificate and key',
  },
  'proxy.auth-required': {
    summary: 'proxy answered 407 Proxy Authentication Required',
    hint: 'give credentials as http://user:pass@host:port (percent-encode special characters)',
  },
  'proxy.connect-denied': {
    summary: 'proxy denied the CONNECT (403)',
    hint: 'the proxy policy blocks that host or port; use an allowed port (e.g. WebSocket on 443)',
  },
  'proxy.destination-denied': {
    summary: "the lab proxy refused a destination outside the lab's hosts (403)",
    hint: "map the name to a lab host (the proxy's map), or add it to the proxy's destinations",
  },
  'proxy.scheme-mismatch': {
    summary: 'client spoke TLS to a plain-HTTP proxy (or the reverse)',
    hint: 'use http:// for the proxy URL',
  },
  'proxy.unreachable': {
    summary: 'the proxy itself could not be reached',
    hint: 'check the proxy host and port',
  },
  'proxy.bad-gateway': {
    summary: 'proxy could not reach the target (502/504)',
    hint: 'the target is down or unreachable from the proxy',
  },
  'dns.nxdomain': { summary: 'DNS: name does not exist (NXDOMAIN)', hint: 'check the name and the zone' },
  'dns.nodata': {
    summary: 'DNS: name exists but has no record of that type',
    hint: 'e.g. a geolocation policy with no Default record',
  },
  'dns.servfail': {
    summary: 'DNS: server failure (SERVFAIL)',
    hint: 'the resolver or the authoritative server failed',
  },
  'dns.refused': {
    summary: 'DNS: query refused',
    hint: 'the server is not authoritative for the name or refuses this client',
  },
  'dns.timeout': {
    summary: 'DNS: no answer in time',
    hint: 'the DNS server is unreachable or drops the query',
  },
  'dns.wrong-region': {
    summary: "DNS: the name sent the device to another region than its location's",
    hint:
      "the device's resolver located it elsewhere (a public resolver without EDNS Client Subnet, or one in " +
      'another country): use a resolver that sends ECS or one in the device’s country; else check the geolocation records',
  },
  'tunnel.token-used': {
    summary: 'tunnel: access token already used',
    hint: 'rotate the tunnel access token, or reconnect with the same client token',
  },
  'tunnel.closed': { summary: 'tunnel: closed', hint: 'open a new tunnel' },
  'auth.rejected': {
    summary: 'the service rejected the credentials',
    hint: 'check the device key, SAS token or certificate',
  },
  'http.status': { summary: 'HTTP error status', hint: 'see the status in the detail' },
  'client.timeout': {
    summary: 'the client did not finish within the scenario timeout',
    hint: 'raise client.timeout, or look at the phase that stalled',
  },
  'client.error': {
    summary: 'the client failed in a way no rule explains',
    hint: 'see its output in the report',
  },
  'load.threshold': {
    summary: "load: a threshold was crossed (k6's rules)",
    hint: "see the load's figures in the report: which metric, its value, and the threshold",
  },
} as const satisfies Record<string, { summary: string; hint: string }>;

export type FailureClass = keyof typeof FAILURE_CLASSES;

export const FAILURE_CLASS_NAMES = Object.keys(FAILURE_CLASSES) as FailureClass[];

export function isFailureClass(s: string): s is FailureClass {
  return Object.hasOwn(FAILURE_CLASSES, s);
}

/** What a client run came to: success, or a class with the evidence behind it. */
export type Verdict =
  | { ok: true; detail?: string }
  | { ok: false; class: FailureClass; detail: string; evidence?: string[] };
