import { type CertificateAuthority, SILENT } from './ca.js';
import { buildCertificate, DAY, leafValidity } from './certs.js';
import { generateKey } from './crypto.js';
import { splitNames } from './names.js';
import type { BadCertKind, IssuedCert, KeyType } from './types.js';

/** Host name a wrong-host certificate is issued for: `.invalid` never resolves (RFC 2606 §2). */
export const WRONG_HOST = 'wrong-host.fieldlab.invalid';

export interface BadContext {
  /** The lab CA that issues good leaves. */
  issuer: CertificateAuthority;
  /** An intermediate under a root nobody trusts, made on first use. */
  unknown: () => Promise<CertificateAuthority>;
  keyType: KeyType;
}

/**
 * A server certificate for `names` that a client trusting the lab root must reject, and how:
 * - expired: notAfter a day ago → CERT_HAS_EXPIRED
 * - not-yet-valid: notBefore a day ahead → CERT_NOT_YET_VALID
 * - wrong-host: SAN/CN name another host → ERR_TLS_CERT_ALTNAME_INVALID (hostname mismatch)
 * - self-signed: the leaf signs itself → DEPTH_ZERO_SELF_SIGNED_CERT
 * - missing-intermediate: a good leaf served without its intermediate → UNABLE_TO_VERIFY_LEAF_SIGNATURE
 * - unknown-root: leaf + intermediate under a root the client doesn't trust
 *   → UNABLE_TO_GET_ISSUER_CERT_LOCALLY
 */
export async function makeBad(kind: BadCertKind, names: string[], ctx: BadContext): Promise<IssuedCert> {
  const base = { names, keyType: ctx.keyType, usage: 'server' as const, [SILENT]: true };
  const now = Date.now();
  switch (kind) {
    case 'expired':
      return ctx.issuer.issueLeaf({
        ...base,
        notBefore: new Date(now - 30 * DAY),
        notAfter: new Date(now - DAY),
      });
    case 'not-yet-valid':
      return ctx.issuer.issueLeaf({
        ...base,
        notBefore: new Date(now + DAY),
        notAfter: new Date(now + 31 * DAY),
      });
    case 'wrong-host':
      return ctx.issuer.issueLeaf({ ...base, names: [WRONG_HOST] });
    case 'missing-intermediate': {
      const leaf = await ctx.issuer.issueLeaf(base);
      return { ...leaf, chainPem: leaf.certPem };
    }
    case 'unknown-root':
      return (await ctx.unknown()).issueLeaf(base);
    case 'self-signed':
      return selfSigned(names, ctx.keyType);
  }
}

async function selfSigned(names: string[], keyType: KeyType): Promise<IssuedCert> {
  const { dns, ips } = splitNames(names);
  const key = await generateKey(keyType);
  const commonName = dns[0] ?? ips[0] ?? 'self-signed';
  const built = await buildCertificate({ commonName, key, ...leafValidity(), usage: 'server', dns, ips });
  return {
    certPem: built.certPem,
    keyPem: key.keyPem,
    chainPem: built.certPem,
    names: dns,
    ips,
    serial: built.cert.serialNumber,
    notBefore: built.cert.notBefore,
    notAfter: built.cert.notAfter,
  };
}
