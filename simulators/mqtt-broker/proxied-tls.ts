import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { DetailedPeerCertificate } from 'node:tls';
import type { ProxiedTlsFacts } from '../common/proxy-v2.js';

/**
 * The TLS facts of a connection whose TLS a front terminated (a `proxyProtocol` listener): what the hooks
 * would otherwise read from the broker's own TLS socket (`getPeerCertificate(true)`, `alpnProtocol`,
 * `servername`). Kept beside the socket, gone with it.
 */
export interface ProxiedTls {
  peerCertificate?: DetailedPeerCertificate;
  alpn?: string;
  servername?: string;
}

const bySocket = new WeakMap<object, ProxiedTls>();

export function attachProxiedTls(socket: Socket, facts: ProxiedTlsFacts): void {
  bySocket.set(socket, {
    ...(facts.certificates.length > 0 ? { peerCertificate: peerCertificateOf(facts.certificates) } : {}),
    ...(facts.alpn !== undefined ? { alpn: facts.alpn } : {}),
    ...(facts.servername !== undefined ? { servername: facts.servername } : {}),
  });
}

export function proxiedTlsOf(conn: unknown): ProxiedTls | undefined {
  return typeof conn === 'object' && conn !== null ? bySocket.get(conn) : undefined;
}

/**
 * A chain (DER, leaf first) in the shape of Node's `getPeerCertificate(true)`: each certificate's legacy
 * object linked to the next by `issuerCertificate`, a self-signed last one to itself.
 */
export function peerCertificateOf(chain: readonly Buffer[]): DetailedPeerCertificate | undefined {
  const certs = chain.map((der) => {
    const x509 = new X509Certificate(der);
    // issuerCertificate is set below, once every certificate of the chain has its object.
    const legacy = Object.assign(x509.toLegacyObject(), {
      raw: Buffer.from(der),
      fingerprint: x509.fingerprint,
      fingerprint256: x509.fingerprint256,
    }) as DetailedPeerCertificate;
    return { x509, legacy };
  });
  certs.forEach((c, i) => {
    const next = certs[i + 1];
    if (next) c.legacy.issuerCertificate = next.legacy;
    else if (c.x509.checkIssued(c.x509)) c.legacy.issuerCertificate = c.legacy;
  });
  return certs[0]?.legacy;
}
