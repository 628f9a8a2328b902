import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { dnLabel, sha256Fingerprint } from '../common/x509.js';

/** Certificate states of the AWS IoT registry (CertificateDescription.status). */
export type CertificateStatus = 'ACTIVE' | 'INACTIVE' | 'REVOKED' | 'PENDING_ACTIVATION';

export interface CertificateRecord {
  /** SHA-256 of the DER certificate, lowercase hex: AWS IoT's certificateId. */
  certificateId: string;
  certificatePem: string;
  status: CertificateStatus;
  thingName?: string;
  /** A fleet provisioning claim certificate (allowed the provisioning topics only). */
  claim: boolean;
  /** May subscribe to the account's event topics (`$aws/events/...`). */
  accountEvents?: boolean;
  /** How it got here: registered by the lab, created by fleet provisioning, or registered by JITP. */
  origin: 'registered' | 'fleet-provisioning' | 'jitp';
  createdAt: string;
}

export interface ThingRecord {
  thingName: string;
  certificateId: string;
  attributes: Record<string, string>;
  /** Which template made it (fleet provisioning or JITP), if any. */
  template?: string;
}

export interface CaRecord {
  certificateId: string;
  certificatePem: string;
  autoRegistration: boolean;
  /** JITP: the thing name template (placeholders: `${CommonName}`, `${SerialNumber}`...). */
  thingNameTemplate: string;
  /** JITP: the provisioning template's name and the policy it attaches. */
  templateName: string;
  policyName: string;
  x509: X509Certificate;
}

/** What the registry says about a certificate presented at CONNECT. */
export type Verdict =
  | { kind: 'known'; record: CertificateRecord }
  | { kind: 'auto-register'; ca: CaRecord; pem: string; certificateId: string; peer: PeerCertificate }
  | { kind: 'unknown'; reason: string };

export function certificateIdOf(pemOrDer: string | Buffer): string {
  return sha256Fingerprint(typeof pemOrDer === 'string' ? new X509Certificate(pemOrDer).raw : pemOrDer);
}

/** The region's registry: CA certificates, device certificates and things. */
export class Registry {
  readonly certificates = new Map<string, CertificateRecord>();
  readonly things = new Map<string, ThingRecord>();
  readonly cas = new Map<string, CaRecord>();

  addCertificate(rec: Omit<CertificateRecord, 'certificateId' | 'createdAt'>): CertificateRecord {
    const certificateId = certificateIdOf(rec.certificatePem);
    const record: CertificateRecord = { ...rec, certificateId, createdAt: new Date().toISOString() };
    this.certificates.set(certificateId, record);
    return record;
  }

  addCa(
    pem: string,
    o: Pick<CaRecord, 'autoRegistration' | 'thingNameTemplate' | 'templateName' | 'policyName'>,
  ): CaRecord {
    const x509 = new X509Certificate(pem);
    const rec: CaRecord = { certificateId: certificateIdOf(x509.raw), certificatePem: pem, ...o, x509 };
    this.cas.set(rec.certificateId, rec);
    return rec;
  }

  /** Looks the presented certificate up: registered, issued by a registered CA, or unknown. */
  verify(peer: PeerCertificate): Verdict {
    const certificateId = certificateIdOf(peer.raw);
    const record = this.certificates.get(certificateId);
    if (record) return { kind: 'known', record };
    const leaf = new X509Certificate(peer.raw);
    for (const ca of this.cas.values()) {
      // The CA that signed the device certificate must itself be registered (AWS IoT: RegisterCACertificate).
      if (leaf.checkIssued(ca.x509) && leaf.verify(ca.x509.publicKey)) {
        if (!ca.autoRegistration) {
          return { kind: 'unknown', reason: 'issued by a registered CA without auto-registration' };
        }
        return { kind: 'auto-register', ca, pem: leaf.toString(), certificateId, peer };
      }
    }
    // Name the issuer: "issued by X, not registered here" is what a user with a second region needs to read.
    return {
      kind: 'unknown',
      reason: `certificate neither registered nor issued by a registered CA (its issuer ${dnLabel(leaf.issuer)} is not registered in this region)`,
    };
  }
}
