import { createHash, X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';

/**
 * Reading certificates the way the personas need them: a distinguished name's attributes and CN (Node's
 * `X509Certificate.subject`/`.issuer` text, one `KEY=value` a line), the chain a TLS peer sent, and the
 * SHA-256 fingerprint.
 */

/** How many certificates of a presented chain are read at the most (a real chain is 2 to 4 deep). */
const MAX_CHAIN = 8;

/** The attributes of a distinguished name as Node prints it (`C=US\nO=Contoso\nCN=dev-1`); the first of a repeated one. */
export function dnAttributes(dn: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of dn.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && !out.has(line.slice(0, eq))) out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

/** The subject CN of a certificate, if it has one. */
export function commonName(cert: X509Certificate): string | undefined {
  return dnAttributes(cert.subject).get('CN');
}

/** A distinguished name for a message: its CN, else the whole name on one line (`C=US, O=Contoso`). */
export function dnLabel(dn: string): string {
  return dnAttributes(dn).get('CN') || dn.replace(/\n/g, ', ');
}

/** Whether a TLS peer sent a certificate (`getPeerCertificate()` gives `{}` when it sent none). */
export function hasPeerCertificate(peer: PeerCertificate | undefined): peer is PeerCertificate {
  return peer !== undefined && Object.keys(peer).length > 0;
}

/**
 * The certificates a TLS peer sent, leaf first, as `getPeerCertificate(true)` links them (each to the next by
 * `issuerCertificate`, a self-signed one to itself). Empty when the peer sent none.
 */
export function peerChain(peer: PeerCertificate | undefined): DetailedPeerCertificate[] {
  const out: DetailedPeerCertificate[] = [];
  const seen = new Set<string>();
  let cur = peer as DetailedPeerCertificate | undefined;
  while (cur?.raw && !seen.has(cur.fingerprint256) && out.length < MAX_CHAIN) {
    seen.add(cur.fingerprint256);
    out.push(cur);
    cur = cur.issuerCertificate;
  }
  return out;
}

/** The presented chain (see `peerChain`) parsed, leaf first. */
export function presentedChain(peer: PeerCertificate | undefined): X509Certificate[] {
  return peerChain(peer).map((c) => new X509Certificate(c.raw));
}

/** SHA-256 of a certificate's DER, lower-case hex without separators (AWS IoT's certificateId). */
export function sha256Fingerprint(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}
