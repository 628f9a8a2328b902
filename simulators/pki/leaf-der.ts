/**
 * Leaf certificates built straight in DER and signed with node:crypto: the same certificate
 * buildCertificate() makes for a leaf (same fields, extensions and order), for about a tenth of its
 * cost. The parts that depend only on the issuer and the leaf key (issuer name, public key, key
 * identifiers) are encoded once per template; each leaf adds its serial, validity, subject and SANs and
 * one signature. The TLS inspector issues a leaf per intercepted host through this.
 */
import { createHash, type KeyObject, sign } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { children, oid, readElement, sequence, TAG, time, tlv, unsignedInteger } from './der.js';
import type { KeyType } from './types.js';

const OID = {
  organizationName: '2.5.4.10',
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  sha256WithRsa: '1.2.840.113549.1.1.11',
} as const;

/** The issuer and the leaf key a template signs for. */
export interface LeafTemplateInit {
  /** The issuing CA's certificate, DER: its subject is copied as the leaf's issuer, byte for byte. */
  issuerCertDer: Buffer;
  /** The CA's subjectKeyIdentifier, hex (the leaf's authorityKeyIdentifier). */
  issuerKeyId: string;
  issuerKey: KeyObject;
  issuerKeyType: KeyType;
  /** The leaf's public key, SubjectPublicKeyInfo DER. */
  leafSpkiDer: Buffer;
  leafKeyType: KeyType;
}

export interface LeafFields {
  /** Positive serial, hex (randomSerial()). */
  serial: string;
  commonName: string;
  dns: readonly string[];
  ips: readonly string[];
  notBefore: Date;
  notAfter: Date;
  usage: 'server' | 'client' | 'both';
}

/** Whether buildLeaf() encodes `commonName` as buildCertificate() does (its name parser treats these apart). */
export function plainCommonName(commonName: string): boolean {
  return !commonName.startsWith('#') && !/["\\]/.test(commonName);
}

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits, hex. */
export function keyIdOf(spkiDer: Buffer): string {
  const spki = readElement(spkiDer, 0);
  const bits = children(spkiDer, spki)[1];
  if (bits === undefined || bits.tag !== TAG.bitString) throw new RangeError('SPKI: no subjectPublicKey');
  // Skip the BIT STRING's unused-bits octet.
  return createHash('sha1')
    .update(spkiDer.subarray(bits.contentStart + 1, bits.end))
    .digest('hex');
}

/** Subject `O=fieldlab, CN=<cn>` as subjectName() in certs.ts encodes it (the CN already clipped). */
function name(commonName: string): Buffer {
  const str = (s: string) =>
    /^[A-Za-z0-9 '()+,\-./:=?]*$/.test(s)
      ? tlv(TAG.printableString, Buffer.from(s, 'latin1'))
      : tlv(TAG.utf8String, Buffer.from(s, 'utf8'));
  const rdn = (type: string, value: string) => tlv(TAG.set, sequence(oid(type), str(value)));
  return sequence(rdn(OID.organizationName, 'fieldlab'), rdn(OID.commonName, commonName));
}

function extension(type: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? sequence(oid(type), tlv(TAG.boolean, Buffer.from([0xff])), tlv(TAG.octetString, value))
    : sequence(oid(type), tlv(TAG.octetString, value));
}

/** RFC 5280 §4.2.1.12 */
function extKeyUsage(usage: LeafFields['usage']): Buffer {
  const oids =
    usage === 'server'
      ? [OID.serverAuth]
      : usage === 'client'
        ? [OID.clientAuth]
        : [OID.serverAuth, OID.clientAuth];
  return extension(OID.extKeyUsage, false, sequence(...oids.map(oid)));
}

/** A leaf's IP SAN: 4 or 16 octets (RFC 5280 §4.2.1.6). */
function ipOctets(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail] = ip.split('::');
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  let h = groups(head);
  let t = tail === undefined ? [] : groups(tail);
  // An embedded IPv4 tail (::ffff:1.2.3.4) is two groups.
  const v4 = (list: string[]) => {
    const last = list[list.length - 1];
    if (last === undefined || !isIPv4(last)) return list;
    const b = last.split('.').map(Number);
    return [
      ...list.slice(0, -1),
      (((b[0] ?? 0) << 8) | (b[1] ?? 0)).toString(16),
      (((b[2] ?? 0) << 8) | (b[3] ?? 0)).toString(16),
    ];
  };
  if (tail === undefined) h = v4(h);
  else t = v4(t);
  const zeros = tail === undefined ? 0 : 8 - h.length - t.length;
  const all = [...h, ...Array<string>(zeros).fill('0'), ...t];
  const out = Buffer.alloc(16);
  for (const [i, g] of all.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  return out;
}

/** Leaves for one issuer and one leaf key: the fixed parts encoded once. */
export class LeafTemplate {
  private readonly version = tlv(0xa0, tlv(TAG.integer, Buffer.from([2]))); // v3
  private readonly algorithm: Buffer;
  private readonly issuer: Buffer;
  private readonly spki: Buffer;
  /** basicConstraints, keyUsage (before EKU), then SKI and AKI (after it): buildCertificate()'s order. */
  private readonly beforeEku: Buffer;
  private readonly afterEku: Buffer;

  constructor(private readonly init: LeafTemplateInit) {
    // RFC 5754 §3.2 (ECDSA: parameters absent); RFC 4055 §5 (RSA: parameters NULL).
    this.algorithm =
      init.issuerKeyType === 'ec'
        ? sequence(oid(OID.ecdsaWithSha256))
        : sequence(oid(OID.sha256WithRsa), tlv(TAG.null, Buffer.alloc(0)));
    // Certificate → tbsCertificate → [version, serial, signature, issuer, validity, subject, ...]
    const der = init.issuerCertDer;
    const tbs = children(der, readElement(der, 0))[0];
    const subject = tbs && children(der, tbs)[5];
    if (subject === undefined || subject.tag !== TAG.sequence)
      throw new RangeError('CA certificate: no subject');
    this.issuer = Buffer.from(der.subarray(subject.start, subject.end));
    this.spki = init.leafSpkiDer;
    // RFC 5280 §4.2.1.3: ECDHE signs only; RSA key exchange (TLS 1.2 RSA suites) needs keyEncipherment.
    const usageBits = init.leafKeyType === 'rsa' ? Buffer.from([0x05, 0xa0]) : Buffer.from([0x07, 0x80]);
    this.beforeEku = Buffer.concat([
      extension(OID.basicConstraints, true, sequence()), // RFC 5280 §4.2.1.9: cA FALSE (default, omitted)
      extension(OID.keyUsage, true, tlv(TAG.bitString, usageBits)),
    ]);
    this.afterEku = Buffer.concat([
      extension(
        OID.subjectKeyIdentifier,
        false,
        tlv(TAG.octetString, Buffer.from(keyIdOf(init.leafSpkiDer), 'hex')),
      ),
      // RFC 5280 §4.2.1.1: AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT ... }
      extension(OID.authorityKeyIdentifier, false, sequence(tlv(0x80, Buffer.from(init.issuerKeyId, 'hex')))),
    ]);
  }

  /** The signed leaf, DER. */
  build(f: LeafFields): Buffer {
    const san = [
      ...f.dns.map((d) => tlv(0x82, Buffer.from(d, 'latin1'))), // dNSName [2] IA5String
      ...f.ips.map((ip) => tlv(0x87, ipOctets(ip))), // iPAddress [7]
    ];
    const extensions = [this.beforeEku, extKeyUsage(f.usage), this.afterEku];
    if (san.length > 0) extensions.push(extension(OID.subjectAltName, false, sequence(...san)));
    const tbs = sequence(
      this.version,
      unsignedInteger(Buffer.from(f.serial, 'hex')),
      this.algorithm,
      this.issuer,
      sequence(time(f.notBefore), time(f.notAfter)),
      name(f.commonName),
      this.spki,
      tlv(0xa3, sequence(...extensions)),
    );
    const signature = sign('sha256', tbs, this.init.issuerKey); // ECDSA: DER Ecdsa-Sig-Value
    return sequence(tbs, this.algorithm, tlv(TAG.bitString, [Buffer.from([0]), signature]));
  }
}
