import { FieldlabError } from '../common/errors.js';
import { type KeyMaterial, normalizePem, randomSerial, signingAlgorithm, x509 } from './crypto.js';
import type { KeyType } from './types.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Subject name of every lab certificate: `O=fieldlab, CN=<cn>`. */
export function subjectName(commonName: string): x509.JsonName {
  // ub-common-name is 64 (RFC 5280 Appendix A); longer names live in the SAN only.
  const cn = commonName.length <= 64 ? commonName : `${commonName.slice(0, 61)}...`;
  return [{ O: ['fieldlab'] }, { CN: [cn] }];
}

/** The issuer side of a signature: the CA's certificate and key. */
export interface Signer {
  cert: x509.X509Certificate;
  key: KeyMaterial;
  keyId: string;
}

export interface BuildParams {
  commonName: string;
  key: KeyMaterial;
  /** Self-signed when absent. */
  issuer?: Signer;
  notBefore: Date;
  notAfter: Date;
  /** CA: basicConstraints CA:TRUE with this pathLen (undefined: no limit). Leaf when `ca` is absent. */
  ca?: { pathLength: number | undefined };
  usage?: 'server' | 'client' | 'both';
  dns?: string[];
  ips?: string[];
}

export interface Built {
  cert: x509.X509Certificate;
  certPem: string;
  keyId: string;
}

/**
 * Builds and signs one certificate with the RFC 5280 extensions TLS clients check: basicConstraints
 * (critical), keyUsage (critical), extendedKeyUsage (leaves), subjectKeyIdentifier,
 * authorityKeyIdentifier and subjectAltName.
 */
export async function buildCertificate(p: BuildParams): Promise<Built> {
  if (!(p.notBefore.getTime() < p.notAfter.getTime())) {
    throw new FieldlabError('E_BAD_OPTION', 'pki: notBefore must be before notAfter', {
      where: 'pki notBefore/notAfter',
      hint: 'give a validity window whose start is before its end',
    });
  }
  // RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey; cached for reused leaf keys.
  p.key.keyId ??= (await x509.SubjectKeyIdentifierExtension.create(p.key.keys.publicKey)).keyId;
  const ski = new x509.SubjectKeyIdentifierExtension(p.key.keyId);
  const authorityKeyId = p.issuer?.keyId ?? ski.keyId;
  const extensions: x509.Extension[] = [];
  if (p.ca) {
    // RFC 5280 §4.2.1.9: basicConstraints MUST be critical in CA certificates.
    extensions.push(new x509.BasicConstraintsExtension(true, p.ca.pathLength, true));
    extensions.push(
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
    );
  } else {
    extensions.push(new x509.BasicConstraintsExtension(false, undefined, true));
    extensions.push(new x509.KeyUsagesExtension(leafKeyUsage(p.key.type), true));
    extensions.push(new x509.ExtendedKeyUsageExtension(extendedUsages(p.usage ?? 'server'), false));
  }
  extensions.push(ski);
  // RFC 5280 §4.2.1.1: AKI in every certificate but a self-signed root's (where it may equal the SKI).
  extensions.push(new x509.AuthorityKeyIdentifierExtension(authorityKeyId, false));
  const san: x509.JsonGeneralNames = [
    ...(p.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(p.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  if (san.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(san, false));

  const signer = p.issuer ?? { cert: undefined, key: p.key };
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: subjectName(p.commonName),
    // The issuer's own encoded subject, so that name chaining matches byte for byte.
    issuer: signer.cert ? signer.cert.subjectName : subjectName(p.commonName),
    notBefore: p.notBefore,
    notAfter: p.notAfter,
    publicKey: p.key.keys.publicKey,
    signingKey: signer.key.keys.privateKey,
    signingAlgorithm: signingAlgorithm(signer.key.type),
    extensions,
  });
  return { cert, certPem: normalizePem(cert.toString('pem')), keyId: ski.keyId };
}

function leafKeyUsage(type: KeyType): x509.KeyUsageFlags {
  // RSA key exchange (TLS 1.2 RSA suites) needs keyEncipherment; ECDHE signs only.
  return type === 'rsa'
    ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
    : x509.KeyUsageFlags.digitalSignature;
}

function extendedUsages(usage: 'server' | 'client' | 'both'): string[] {
  if (usage === 'server') return [x509.ExtendedKeyUsage.serverAuth];
  if (usage === 'client') return [x509.ExtendedKeyUsage.clientAuth];
  return [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
}

/** Validity of a new root: a day back (clock skew) to ten years on. */
export function rootValidity(now = Date.now()): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(now - DAY), notAfter: new Date(now + 3650 * DAY) };
}

/** Validity of a new intermediate: a day back to five years on, clipped to the parent's. */
export function intermediateValidity(parent: x509.X509Certificate, now = Date.now()) {
  const notBefore = new Date(Math.max(now - DAY, parent.notBefore.getTime()));
  const notAfter = new Date(Math.min(now + 1825 * DAY, parent.notAfter.getTime()));
  return { notBefore, notAfter };
}

/** Default leaf validity: an hour back to thirty days on. */
export function leafValidity(now = Date.now()): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(now - HOUR), notAfter: new Date(now + 30 * DAY) };
}

export { DAY, HOUR };
