import { X509Certificate } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  checkServerIdentity,
  type DetailedPeerCertificate,
  type TLSSocket,
  connect as tlsConnect,
} from 'node:tls';
import { peerChain } from '../../simulators/common/x509.js';

/**
 * The network probes `fieldlab doctor` runs, each bounded by a timeout and each resolving to what it
 * found (never throwing for a network failure): DNS through a given resolver, TCP, a CONNECT through a
 * proxy, and TLS (the chain the client really receives).
 */

export interface DnsResult {
  ok: boolean;
  /** The resolver asked (`address:port`), or `system`. */
  resolver: string;
  addresses: Array<{ address: string; ttl: number }>;
  /** On failure: NXDOMAIN, SERVFAIL, NODATA, TIMEOUT, REFUSED or the resolver's code. */
  error?: string;
  ms: number;
}

/** A / AAAA-less lookup of `host` through `server` (`address[:port]`), or the system resolver's servers. */
export async function probeDns(
  host: string,
  server: string | undefined,
  timeoutMs: number,
): Promise<DnsResult> {
  const t0 = performance.now();
  const resolver = new Resolver({ timeout: timeoutMs, tries: 1 });
  if (server) resolver.setServers([server]);
  const done = (r: Omit<DnsResult, 'ms' | 'resolver'>): DnsResult => ({
    ...r,
    resolver: server ?? resolver.getServers().join(', '),
    ms: performance.now() - t0,
  });
  try {
    const answers = await resolver.resolve4(host, { ttl: true });
    return done({
      ok: answers.length > 0,
      addresses: answers,
      ...(answers.length ? {} : { error: 'NODATA' }),
    });
  } catch (err) {
    return done({ ok: false, addresses: [], error: dnsCode((err as NodeJS.ErrnoException).code) });
  }
}

/** c-ares codes as the DNS answer a person knows (RFC 1035 §4.1.1 RCODEs, RFC 2308 NODATA). */
function dnsCode(code: string | undefined): string {
  const names: Record<string, string> = {
    ENOTFOUND: 'NXDOMAIN',
    ESERVFAIL: 'SERVFAIL',
    ENODATA: 'NODATA',
    ETIMEOUT: 'TIMEOUT',
    EREFUSED: 'REFUSED',
    ECONNREFUSED: 'REFUSED',
  };
  return names[code ?? ''] ?? code ?? 'ERROR';
}

export type TcpOutcome = 'connected' | 'refused' | 'timeout' | 'reset' | 'unreachable' | 'error';

export interface TcpResult {
  outcome: TcpOutcome;
  detail?: string;
  ms: number;
  socket?: Socket;
}

function tcpOutcome(code: string | undefined): TcpOutcome {
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'reset';
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return 'unreachable';
  if (code === 'ETIMEDOUT') return 'timeout';
  return 'error';
}

/** A TCP connection to address:port; the caller owns (and ends) the socket it gets. */
export function probeTcp(address: string, port: number, timeoutMs: number): Promise<TcpResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const socket = netConnect({ host: address, port });
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({
        outcome: 'timeout',
        detail: `no answer to SYN within ${timeoutMs} ms`,
        ms: performance.now() - t0,
      });
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve({ outcome: 'connected', ms: performance.now() - t0, socket });
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ outcome: tcpOutcome(err.code), detail: err.message, ms: performance.now() - t0 });
    });
  });
}

export interface ProxyResult {
  /** `ok` 2xx; `auth-required` 407 without credentials, `auth-rejected` with them; `bad-gateway` 502/503/504; `denied` other refusals (403). */
  outcome:
    | 'ok'
    | 'auth-required'
    | 'auth-rejected'
    | 'denied'
    | 'bad-gateway'
    | 'wrong-scheme'
    | 'unreachable'
    | 'timeout'
    | 'error';
  status?: number;
  detail?: string;
  ms: number;
  tunnel?: Duplex;
}

/**
 * CONNECT host:port through the proxy, and when that fails below HTTP, whether the proxy speaks the other
 * scheme (a TLS proxy given as http://, or the seed's case: a plain proxy given as https://).
 */
export async function probeProxy(proxy: URL, target: string, timeoutMs: number): Promise<ProxyResult> {
  const first = await probeConnect(proxy, target, timeoutMs);
  if (first.outcome !== 'error' && first.outcome !== 'wrong-scheme') return first;
  const other = new URL(proxy);
  other.protocol = proxy.protocol === 'https:' ? 'http:' : 'https:';
  const second = await probeConnect(other, target, timeoutMs);
  second.tunnel?.destroy();
  if (second.status === undefined) return first;
  return {
    outcome: 'wrong-scheme',
    detail: `it answers ${other.protocol.replace(':', '')} (${second.status}): the proxy URL needs ${other.protocol}//`,
    ms: first.ms + second.ms,
  };
}

/** CONNECT host:port through the proxy (RFC 9110 §9.3.6), with the credentials in its URL (Basic, RFC 7617). */
export function probeConnect(proxy: URL, target: string, timeoutMs: number): Promise<ProxyResult> {
  const t0 = performance.now();
  const tls = proxy.protocol === 'https:';
  const headers: Record<string, string> = { host: target };
  const hasCreds = proxy.username !== '';
  if (hasCreds) {
    const cred = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    headers['proxy-authorization'] = `Basic ${Buffer.from(cred).toString('base64')}`;
  }
  const port = Number(proxy.port || (tls ? 443 : 80));
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: Omit<ProxyResult, 'ms'>) => {
      if (settled) {
        r.tunnel?.destroy();
        return;
      }
      settled = true;
      clearTimeout(timer);
      resolve({ ...r, ms: performance.now() - t0 });
    };
    const opts = {
      host: proxy.hostname,
      port,
      method: 'CONNECT',
      path: target,
      headers,
      agent: false as const,
    };
    const req = tls ? httpsRequest({ ...opts, rejectUnauthorized: false }) : httpRequest(opts);
    const timer = setTimeout(() => {
      req.destroy();
      finish({ outcome: 'timeout', detail: `the proxy did not answer CONNECT within ${timeoutMs} ms` });
    }, timeoutMs);
    req.once('connect', (res, socket) => {
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        finish({ outcome: 'ok', status, tunnel: socket });
        return;
      }
      socket.destroy();
      // RFC 9110 §15.6.3/§15.6.5: 502 and 504 are the proxy failing to reach the target, not its policy.
      const outcome =
        status === 407
          ? hasCreds
            ? 'auth-rejected'
            : 'auth-required'
          : status === 502 || status === 503 || status === 504
            ? 'bad-gateway'
            : 'denied';
      finish({ outcome, status, detail: `${status} ${res.statusMessage ?? ''}`.trim() });
    });
    req.once('response', (res) => {
      res.resume();
      finish({ outcome: 'denied', status: res.statusCode, detail: `${res.statusCode} ${res.statusMessage}` });
    });
    req.once('error', (err: NodeJS.ErrnoException) => {
      const msg = err.message;
      // A TLS proxy given as http:// answers our CONNECT text with a TLS alert; a plain proxy given as
      // https:// answers our ClientHello with HTTP text ("wrong version number").
      if (!tls && (err.code === 'HPE_INVALID_CONSTANT' || /Parse Error|Expected HTTP/i.test(msg))) {
        finish({ outcome: 'wrong-scheme', detail: 'it answered in TLS: the proxy URL needs https://' });
      } else if (tls && /wrong version number|packet length too long|WRONG_VERSION/i.test(msg)) {
        finish({ outcome: 'wrong-scheme', detail: 'it answered in plain HTTP: the proxy URL needs http://' });
      } else if (err.code === 'ECONNREFUSED' || err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH') {
        finish({ outcome: 'unreachable', detail: msg });
      } else finish({ outcome: 'error', detail: msg });
    });
    req.end();
  });
}

export interface TlsChainCert {
  subject: string;
  issuer: string;
  /** SHA-256 of the DER, colon-separated hex (as `openssl x509 -fingerprint -sha256`). */
  fingerprint256: string;
  selfSigned: boolean;
  /** The certificate itself (PEM), e.g. to recreate its subject in a lab. */
  pem: string;
}

export interface TlsResult {
  ok: boolean;
  /** The handshake finished (the chain below is what the server sent). */
  handshake: boolean;
  /** The chain verified against the trusted roots. */
  trusted: boolean;
  /** OpenSSL's verification error (UNABLE_TO_GET_ISSUER_CERT_LOCALLY...), if any. */
  verifyError?: string;
  /** The certificate does not name the host (its names otherwise). */
  nameMismatch?: string;
  /** Leaf first; the root last when the server sent it. */
  chain: TlsChainCert[];
  /** The server's `Date` header (HTTPS ports), for the clock check. */
  serverDate?: Date;
  /** Some answer came back to the HTTP request (HTTPS ports): the bytes got through both ways. */
  answered?: boolean;
  detail?: string;
  ms: number;
}

const cn = (dn: { CN?: string | string[]; O?: string | string[] } | undefined): string => {
  const v = dn?.CN ?? dn?.O ?? '';
  return Array.isArray(v) ? v.join(', ') : v;
};

function chainOf(peer: DetailedPeerCertificate): TlsChainCert[] {
  return peerChain(peer).map((c) => {
    const x = new X509Certificate(c.raw);
    return {
      subject: cn(c.subject),
      issuer: cn(c.issuer),
      fingerprint256: c.fingerprint256,
      selfSigned: x.checkIssued(x),
      pem: x.toString(),
    };
  });
}

/**
 * A TLS handshake to `host` over `socket` (direct or a proxy tunnel), trusting `ca` (PEM; default Node's
 * roots). It accepts any certificate to see the chain, then judges it as a client would. On an HTTPS
 * port it also asks for `HEAD /` to read the server's clock.
 */
export function probeTls(
  socket: Duplex,
  host: string,
  opts: {
    ca?: string[];
    timeoutMs: number;
    httpDate: boolean;
    /**
     * Pad the request with a header of this many bytes, sent as one TLS record: more than a packet holds,
     * so a path that drops large packets (a PMTU black hole) never delivers it. Waits `timeoutMs` for it.
     */
    padding?: number;
  },
): Promise<TlsResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const tls: TLSSocket = tlsConnect({
      socket,
      servername: host,
      rejectUnauthorized: false,
      ...(opts.ca ? { ca: opts.ca } : {}),
    });
    const finish = (r: Omit<TlsResult, 'ms'>) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      tls.destroy();
      resolve({ ...r, ms: performance.now() - t0 });
    };
    let timer = setTimeout(
      () =>
        finish({
          ok: false,
          handshake: false,
          trusted: false,
          chain: [],
          detail: `no TLS handshake within ${opts.timeoutMs} ms`,
        }),
      opts.timeoutMs,
    );
    tls.once('secureConnect', () => {
      const peer = tls.getPeerCertificate(true);
      const chain = peer?.raw ? chainOf(peer) : [];
      const mismatch = peer?.raw ? checkServerIdentity(host, peer) : undefined;
      const trusted = tls.authorized;
      const verifyError = tls.authorizationError ? String(tls.authorizationError) : undefined;
      const result: Omit<TlsResult, 'ms'> = {
        ok: trusted && !mismatch,
        handshake: true,
        trusted,
        chain,
        ...(verifyError ? { verifyError } : {}),
        ...(mismatch ? { nameMismatch: peer.subjectaltname ?? cn(peer.subject) } : {}),
      };
      if (!opts.httpDate) {
        finish(result);
        return;
      }
      // RFC 9110 §6.6.1: an origin server with a clock sends Date. Best effort: a server that does not
      // speak HTTP gives no date, which is no failure.
      clearTimeout(timer);
      timer = setTimeout(
        () => finish({ ...result, answered: false }),
        opts.padding ? opts.timeoutMs : Math.min(opts.timeoutMs, 2_000),
      );
      let head = '';
      tls.on('data', (d: Buffer) => {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0 && head.length < 16_384) return;
        const date = /^date:\s*(.+)$/im.exec(head.slice(0, end < 0 ? undefined : end))?.[1];
        const parsed = date ? new Date(date.trim()) : undefined;
        finish({
          ...result,
          answered: true,
          ...(parsed && !Number.isNaN(parsed.getTime()) ? { serverDate: parsed } : {}),
        });
      });
      // A close after our request is an answer too (a server refusing a large header closes): it got there.
      tls.once('end', () => finish({ ...result, answered: head.length > 0 || opts.padding !== undefined }));
      const pad = opts.padding ? `X-Fieldlab-Padding: ${'p'.repeat(opts.padding)}\r\n` : '';
      // One write, so one TLS record (up to 16 KiB, RFC 8446 §5.1) carries the whole request.
      tls.write(
        `HEAD / HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: fieldlab-doctor\r\n${pad}Connection: close\r\n\r\n`,
      );
    });
    tls.once('error', (err: NodeJS.ErrnoException) =>
      finish({
        ok: false,
        handshake: false,
        trusted: false,
        chain: [],
        detail: `${err.code ?? 'error'}: ${err.message}`,
      }),
    );
  });
}
