import { errorCode } from '../../simulators/common/errors.js';
import type { FailureClass, Verdict } from './classes.js';

/**
 * Classifies errors thrown by Node clients (net, tls, https, dns), undici (`fetch`, `ProxyAgent`) and
 * https-proxy-agent. undici wraps the real error (`TypeError: fetch failed` → `cause`), Node's
 * happy-eyeballs wraps several in an `AggregateError`: every error in the chain is looked at, and the
 * most specific finding wins (a TLS or proxy code beats a generic abort).
 */

export interface ClassifyContext {
  /** A proxy was in the path: a TLS "wrong version number" then means the proxy URL's scheme is wrong. */
  viaProxy?: boolean;
  /** The error came from a DNS query (dns.resolve*), so ECONNREFUSED/ETIMEOUT are the DNS server's. */
  dns?: boolean;
}

interface Finding {
  cls: FailureClass;
  /** Higher wins when several errors in a chain match. */
  rank: number;
  note?: string;
}

/** Walks `cause` chains and AggregateError members, depth-first, without looping on cycles. */
export function errorChain(err: unknown): unknown[] {
  const out: unknown[] = [];
  const seen = new Set<unknown>();
  const walk = (e: unknown, depth: number) => {
    if (e === undefined || e === null || seen.has(e) || depth > 10) return;
    seen.add(e);
    out.push(e);
    if (typeof e !== 'object') return;
    const o = e as { cause?: unknown; errors?: unknown };
    if (Array.isArray(o.errors)) for (const x of o.errors) walk(x, depth + 1);
    walk(o.cause, depth + 1);
  };
  walk(err, 0);
  return out;
}

function messageOf(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (typeof e === 'object' && e !== null && 'message' in e)
    return String((e as { message: unknown }).message);
  return String(e);
}

function field(e: unknown, key: string): unknown {
  return typeof e === 'object' && e !== null ? (e as Record<string, unknown>)[key] : undefined;
}

/** Node/OpenSSL certificate verification codes (X509_V_ERR_* as Node names them). */
const CERT_CODES: Record<string, FailureClass> = {
  ERR_TLS_CERT_ALTNAME_INVALID: 'tls.hostname-mismatch',
  CERT_HAS_EXPIRED: 'tls.expired',
  CERT_NOT_YET_VALID: 'tls.not-yet-valid',
  // Rule: OpenSSL reports UNABLE_TO_VERIFY_LEAF_SIGNATURE ("unable to verify the first certificate")
  // when the chain it got holds only the leaf and the leaf's issuer is not in the trust store, i.e.
  // the server did not send its intermediate. When the server sent an intermediate whose root is
  // unknown, OpenSSL reports UNABLE_TO_GET_ISSUER_CERT_LOCALLY or SELF_SIGNED_CERT_IN_CHAIN instead.
  // So: LEAF_SIGNATURE → incomplete-chain; the others → untrusted-root. (A self-signed leaf is
  // DEPTH_ZERO_SELF_SIGNED_CERT → untrusted-root.) A leaf issued directly by an unknown root is the
  // one case this rule gets wrong (it says incomplete-chain); lab evidence (unknown_ca) can't tell
  // them apart either, so the detail names the code.
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'tls.incomplete-chain',
  SELF_SIGNED_CERT_IN_CHAIN: 'tls.untrusted-root',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'tls.untrusted-root',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'tls.untrusted-root',
  UNABLE_TO_GET_ISSUER_CERT: 'tls.untrusted-root',
  CERT_SIGNATURE_FAILURE: 'tls.untrusted-root',
  CERT_UNTRUSTED: 'tls.untrusted-root',
  CERT_REJECTED: 'tls.untrusted-root',
};

const SYS_CODES: Record<string, FailureClass> = {
  ECONNREFUSED: 'tcp.refused',
  ETIMEDOUT: 'tcp.timeout',
  ESOCKETTIMEDOUT: 'tcp.timeout',
  UND_ERR_CONNECT_TIMEOUT: 'tcp.timeout',
  UND_ERR_HEADERS_TIMEOUT: 'tcp.timeout',
  UND_ERR_BODY_TIMEOUT: 'tcp.timeout',
  ECONNRESET: 'tcp.reset',
  EPIPE: 'tcp.reset',
  UND_ERR_SOCKET: 'tcp.reset',
  ECONNABORTED: 'tcp.reset',
  EHOSTUNREACH: 'tcp.unreachable',
  ENETUNREACH: 'tcp.unreachable',
  EHOSTDOWN: 'tcp.unreachable',
  ENOTFOUND: 'dns.nxdomain',
  ENODATA: 'dns.nodata',
  ESERVFAIL: 'dns.servfail',
  EREFUSED: 'dns.refused',
  ETIMEOUT: 'dns.timeout',
  EAI_AGAIN: 'dns.timeout',
};

const NON_TLS_PEER =
  /wrong version number|packet length too long|record layer failure|unknown protocol|http request/i;

function isDnsError(e: unknown, ctx: ClassifyContext): boolean {
  const syscall = field(e, 'syscall');
  return (
    ctx.dns === true || (typeof syscall === 'string' && /^(query|getaddrinfo|getHostByAddr)/.test(syscall))
  );
}

function proxyStatusFinding(status: number): Finding {
  if (status === 407) return { cls: 'proxy.auth-required', rank: 9 };
  if (status === 403) return { cls: 'proxy.connect-denied', rank: 9 };
  if (status === 502 || status === 504) return { cls: 'proxy.bad-gateway', rank: 9 };
  return { cls: 'proxy.connect-denied', rank: 8, note: `the proxy answered CONNECT with ${status}` };
}

function findingOf(e: unknown, ctx: ClassifyContext): Finding | undefined {
  const code = errorCode(e);
  const msg = messageOf(e);
  // undici ProxyAgent: RequestAbortedError "Proxy response (407) !== 200 when HTTP Tunneling".
  const proxyStatus =
    /Proxy response \((\d{3})\)|CONNECT tunnel failed, response (\d{3})|HTTP code (\d{3}) from proxy/i.exec(
      msg,
    );
  if (proxyStatus) return proxyStatusFinding(Number(proxyStatus.slice(1).find(Boolean)));
  if (code && CERT_CODES[code]) return { cls: CERT_CODES[code], rank: 10 };
  if (/Hostname\/IP does not match certificate/i.test(msg)) return { cls: 'tls.hostname-mismatch', rank: 10 };
  if (code === 'EPROTO' || code?.startsWith('ERR_SSL_') || /SSL routines/i.test(msg)) {
    if (
      NON_TLS_PEER.test(msg) ||
      code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
      code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG'
    ) {
      return ctx.viaProxy
        ? {
            cls: 'proxy.scheme-mismatch',
            rank: 9,
            note: 'the proxy answered TLS with plain HTTP: use http:// for the proxy URL',
          }
        : { cls: 'tls.handshake', rank: 7, note: 'the peer does not speak TLS on that port' };
    }
    if (/certificate required|alert handshake failure/i.test(msg) && /certificate/i.test(msg)) {
      return { cls: 'tls.client-cert-required', rank: 8 };
    }
    return { cls: 'tls.handshake', rank: 6 };
  }
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT')
    return { cls: 'tcp.timeout', rank: 5, note: 'TLS handshake timed out' };
  if (code && SYS_CODES[code]) {
    let cls = SYS_CODES[code];
    if (isDnsError(e, ctx)) {
      if (code === 'ECONNREFUSED') cls = 'dns.refused';
      else if (code === 'ETIMEDOUT') cls = 'dns.timeout';
    }
    // A socket that closes during the handshake surfaces as ECONNRESET "socket disconnected before
    // secure TLS connection was established": still a reset, but say where.
    const note = /before secure TLS connection/i.test(msg) ? 'closed during the TLS handshake' : undefined;
    return { cls, rank: 5, ...(note ? { note } : {}) };
  }
  const name = e instanceof Error ? e.name : field(e, 'name');
  if (name === 'TimeoutError' || code === 'ABORT_ERR' || name === 'AbortError') {
    // AbortSignal.timeout() aborts with a TimeoutError; a plain abort has no cause of its own.
    const reason = field(e, 'cause');
    const timeout = name === 'TimeoutError' || (reason instanceof Error && reason.name === 'TimeoutError');
    return timeout ? { cls: 'tcp.timeout', rank: 3 } : { cls: 'client.error', rank: 1, note: 'aborted' };
  }
  if (/socket hang up/i.test(msg))
    return { cls: 'tcp.reset', rank: 4, note: 'the peer closed without answering' };
  if (/other side closed|SocketError/i.test(msg)) return { cls: 'tcp.reset', rank: 4 };
  return undefined;
}

/** Maps any error a Node client throws to a verdict. Unknown errors are `client.error`. */
export function classifyError(err: unknown, ctx: ClassifyContext = {}): Verdict {
  const chain = errorChain(err);
  let best: { f: Finding; e: unknown } | undefined;
  for (const e of chain) {
    const f = findingOf(e, ctx);
    if (f && (!best || f.rank > best.f.rank)) best = { f, e };
  }
  const describe = (e: unknown) => {
    const code = errorCode(e);
    return code ? `${code}: ${messageOf(e)}` : messageOf(e);
  };
  const evidence = chain.length > 1 ? chain.map(describe) : undefined;
  if (!best)
    return { ok: false, class: 'client.error', detail: describe(err), ...(evidence ? { evidence } : {}) };
  const detail = best.f.note ? `${describe(best.e)} (${best.f.note})` : describe(best.e);
  return { ok: false, class: best.f.cls, detail, ...(evidence ? { evidence } : {}) };
}

/**
 * A response status the client got instead of an error. https-proxy-agent (v7) does not throw when the
 * proxy refuses CONNECT: it replays the proxy's answer as the response, so a 407 shows up as
 * `res.statusCode === 407`. With `viaProxy`, 403 and 502/504 from a CONNECT are the proxy's too.
 */
export function classifyStatus(status: number, ctx: { viaProxyConnect?: boolean } = {}): Verdict {
  if (status < 400) return { ok: true, detail: `HTTP ${status}` };
  if (status === 407)
    return { ok: false, class: 'proxy.auth-required', detail: `HTTP ${status} from the proxy` };
  if (ctx.viaProxyConnect && (status === 403 || status === 502 || status === 504)) {
    const f = proxyStatusFinding(status);
    return { ok: false, class: f.cls, detail: `the proxy answered CONNECT with ${status}` };
  }
  return { ok: false, class: 'http.status', detail: `HTTP ${status}` };
}
