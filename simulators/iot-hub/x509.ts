import { X509Certificate } from 'node:crypto';
import { commonName } from '../common/x509.js';

/**
 * X.509 authentication as IoT Hub and DPS do it (Microsoft Learn, "Authenticate identities with X.509
 * certificates"): the device proves the key of its client certificate in the TLS handshake, and the service
 * accepts the certificate when
 *   - self-signed / thumbprint: its SHA-1 or SHA-256 thumbprint is one registered for the identity, or
 *   - CA-signed: it chains (through the intermediates the device sent) to a CA certificate registered with
 *     the service, and its subject CN is the identity's id (device id; `<deviceId>/<moduleId>` for a module
 *     identity, its name as the portal lists it: MicrosoftDocs/azure-docs#63273 and #111494; or the DPS
 *     registration id).
 * Every certificate checked must be within its validity period.
 */

/** An identity's X.509 credential: registered thumbprints, or `ca: true` (signed by a registered CA). */
export interface X509Credential {
  thumbprint?: string | undefined;
  secondaryThumbprint?: string | undefined;
  ca?: boolean | undefined;
}

export type CertRejectReason =
  | 'no-certificate'
  | 'thumbprint-mismatch'
  | 'untrusted-certificate'
  | 'subject-mismatch'
  | 'certificate-expired';

export type CertVerdict = { ok: true } | { ok: false; reason: CertRejectReason };

/** A thumbprint as hex without separators, upper case (the portal shows `AB12...`, openssl `AB:12:...`). */
export function normalizeThumbprint(t: string): string {
  return t.replace(/[\s:]/g, '').toUpperCase();
}

/** Whether a string is a SHA-1 (40 hex digits) or SHA-256 (64) thumbprint, separators allowed. */
export function isThumbprint(t: string): boolean {
  return /^([0-9A-F]{40}|[0-9A-F]{64})$/.test(normalizeThumbprint(t));
}

const valid = (c: X509Certificate, now: number) =>
  Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);

/** Whether `parent` issued and signed `child`. */
const signedBy = (child: X509Certificate, parent: X509Certificate) =>
  child.checkIssued(parent) && child.verify(parent.publicKey);

/**
 * Checks a presented chain (leaf first) for the identity `id` with credential `cred`. `cas` are the CA
 * certificates registered with the service (roots or intermediates).
 */
export function checkCertificate(
  chain: readonly X509Certificate[],
  id: string,
  cred: X509Credential,
  cas: readonly X509Certificate[],
  now = Date.now(),
): CertVerdict {
  const leaf = chain[0];
  if (!leaf) return { ok: false, reason: 'no-certificate' };
  if (!valid(leaf, now)) return { ok: false, reason: 'certificate-expired' };
  if (cred.ca) {
    if (commonName(leaf) !== id) return { ok: false, reason: 'subject-mismatch' };
    return chainsToCa(chain, cas, now);
  }
  const registered = [cred.thumbprint, cred.secondaryThumbprint]
    .filter((t): t is string => typeof t === 'string')
    .map(normalizeThumbprint);
  const own = [leaf.fingerprint, leaf.fingerprint256].map(normalizeThumbprint);
  return registered.some((t) => own.includes(t))
    ? { ok: true }
    : { ok: false, reason: 'thumbprint-mismatch' };
}

/** Walks from the leaf up the presented intermediates until a registered CA signed one of them. */
function chainsToCa(
  chain: readonly X509Certificate[],
  cas: readonly X509Certificate[],
  now: number,
): CertVerdict {
  let cur = chain[0]!;
  const pool = chain.slice(1);
  for (let depth = 0; depth < 8; depth++) {
    const ca = cas.find((c) => signedBy(cur, c));
    if (ca) return valid(ca, now) ? { ok: true } : { ok: false, reason: 'certificate-expired' };
    const next = pool.find((c) => c !== cur && c.ca && signedBy(cur, c));
    if (!next) return { ok: false, reason: 'untrusted-certificate' };
    if (!valid(next, now)) return { ok: false, reason: 'certificate-expired' };
    cur = next;
  }
  return { ok: false, reason: 'untrusted-certificate' };
}

/** Parses PEM CA certificates (one or more per string); throws on anything that is not one. */
export function parseCaCertificates(pems: readonly string[]): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const pem of pems) {
    for (const block of pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
      out.push(new X509Certificate(block));
    }
  }
  return out;
}
