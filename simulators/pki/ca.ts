import { KeyObject, type webcrypto, X509Certificate } from 'node:crypto';
import { FieldlabError } from '../common/errors.js';
import { buildCertificate, intermediateValidity, leafValidity, rootValidity, type Signer } from './certs.js';
import {
  crypto,
  generateKey,
  importAlgorithm,
  type KeyMaterial,
  normalizePem,
  randomSerial,
  signingAlgorithm,
  x509,
} from './crypto.js';
import { pem } from './der.js';
import { LeafTemplate, plainCommonName } from './leaf-der.js';
import { splitNames } from './names.js';
import type { IssuedCert, IssuedEvent, KeyType, LeafOptions } from './types.js';

/** Internal: issue without telling the listener (the PKI handle reports bad certificates itself). */
export const SILENT: unique symbol = Symbol('fieldlab.pki.silent');
type InternalLeafOptions = LeafOptions & { [SILENT]?: boolean };

type IssueListener = (event: IssuedEvent) => void;

interface CaInit {
  commonName: string;
  built: { cert: x509.X509Certificate; certPem: string; keyId: string };
  key: KeyMaterial;
  parent: CertificateAuthority | undefined;
  pathLength: number | undefined;
  listener: IssueListener | undefined;
}

/**
 * A certificate authority held in memory: a root (self-signed) or an intermediate (with its parent).
 * Issues intermediates and leaves; every certificate carries basicConstraints, keyUsage, SKI/AKI and,
 * for leaves, extendedKeyUsage and subjectAltName.
 */
export class CertificateAuthority {
  readonly commonName: string;
  /** This CA's certificate. */
  readonly certPem: string;
  /** This CA's private key, PKCS#8 PEM. */
  readonly keyPem: string;
  /** The CA that signed this one; undefined for a root. */
  readonly parent: CertificateAuthority | undefined;
  /** This CA's own key type. */
  readonly keyType: KeyType;
  readonly #signer: Signer;
  readonly #pathLength: number | undefined;
  readonly #leafKeys = new Map<KeyType, Promise<KeyMaterial>>();
  // Leaf templates for the reused leaf keys, one per key type (see leaf-der.ts).
  readonly #templates = new Map<KeyType, LeafTemplate>();
  #listener: IssueListener | undefined;

  private constructor(init: CaInit) {
    this.commonName = init.commonName;
    this.certPem = init.built.certPem;
    this.keyPem = init.key.keyPem;
    this.parent = init.parent;
    this.keyType = init.key.type;
    this.#signer = { cert: init.built.cert, key: init.key, keyId: init.built.keyId };
    this.#pathLength = init.pathLength;
    this.#listener = init.listener;
  }

  /**
   * A new self-signed root. `pathLength` (default 1: one intermediate below the root) is its
   * basicConstraints pathLenConstraint.
   */
  static async createRoot(opts: {
    commonName: string;
    keyType?: KeyType;
    notBefore?: Date;
    notAfter?: Date;
    pathLength?: number;
  }): Promise<CertificateAuthority> {
    checkCommonName(opts.commonName);
    checkKeyType(opts.keyType ?? 'ec');
    const key = await generateKey(opts.keyType ?? 'ec');
    const validity = rootValidity();
    const pathLength = opts.pathLength ?? 1;
    const built = await buildCertificate({
      commonName: opts.commonName,
      key,
      notBefore: opts.notBefore ?? validity.notBefore,
      notAfter: opts.notAfter ?? validity.notAfter,
      ca: { pathLength },
    });
    return new CertificateAuthority({
      commonName: opts.commonName,
      built,
      key,
      parent: undefined,
      pathLength,
      listener: undefined,
    });
  }

  /**
   * A CA from its certificate and PKCS#8 key (PEM), e.g. the lab CA handed to a simulator in a container
   * so it issues leaves clients of the same lab trust. The key must match the certificate.
   */
  static async fromPem(opts: {
    certPem: string;
    keyPem: string;
    parent?: CertificateAuthority;
  }): Promise<CertificateAuthority> {
    const bad = (why: string) =>
      new FieldlabError('E_PKI_BAD_CA', `pki: ${why}`, {
        hint: 'give a CA certificate (basicConstraints CA:TRUE) and its own PKCS#8 private key, PEM',
      });
    let cert: x509.X509Certificate;
    try {
      cert = new x509.X509Certificate(opts.certPem);
    } catch (err) {
      throw bad(`not a certificate: ${(err as Error).message}`);
    }
    const bc = cert.getExtension(x509.BasicConstraintsExtension);
    if (!bc?.ca) throw bad(`${cert.subject} is not a CA certificate`);
    const type: KeyType = cert.publicKey.algorithm.name === 'ECDSA' ? 'ec' : 'rsa';
    const alg = importAlgorithm(type);
    let privateKey: webcrypto.CryptoKey;
    try {
      privateKey = await crypto.subtle.importKey(
        'pkcs8',
        x509.PemConverter.decodeFirst(opts.keyPem),
        alg,
        true,
        ['sign'],
      );
    } catch (err) {
      throw bad(`not a ${type === 'ec' ? 'P-256' : 'RSA'} PKCS#8 key: ${(err as Error).message}`);
    }
    const publicKey = await cert.publicKey.export(alg, ['verify'], crypto as never);
    const probe = new TextEncoder().encode('fieldlab');
    const signature = await crypto.subtle.sign(signingAlgorithm(type), privateKey, probe);
    if (!(await crypto.subtle.verify(signingAlgorithm(type), publicKey, signature, probe))) {
      throw bad(`the key does not belong to ${cert.subject}`);
    }
    const keyId =
      cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ??
      (await x509.SubjectKeyIdentifierExtension.create(publicKey)).keyId;
    const commonName = cert.subjectName.getField('CN')[0] ?? cert.subject;
    return new CertificateAuthority({
      commonName,
      built: { cert, certPem: normalizePem(opts.certPem), keyId },
      key: { type, keys: { privateKey, publicKey }, keyPem: normalizePem(opts.keyPem), keyId },
      parent: opts.parent,
      pathLength: bc.pathLength,
      // As createIntermediate: a CA below another tells the same listener.
      listener: opts.parent ? opts.parent.#listener : undefined,
    });
  }

  /** A new intermediate signed by this CA, with a pathLen one less than this CA's. */
  async createIntermediate(opts: { commonName: string; keyType?: KeyType }): Promise<CertificateAuthority> {
    checkCommonName(opts.commonName);
    checkKeyType(opts.keyType ?? this.keyType);
    // RFC 5280 §4.2.1.9: pathLenConstraint 0 allows no further CA below.
    if (this.#pathLength === 0) {
      throw new FieldlabError(
        'E_PKI_PATHLEN',
        `pki: ${this.commonName} may not sign another CA (pathLen 0)`,
        {
          hint: 'create the intermediate under the root, or create the root with a larger pathLength',
        },
      );
    }
    const key = await generateKey(opts.keyType ?? this.keyType);
    const pathLength = this.#pathLength === undefined ? undefined : this.#pathLength - 1;
    const built = await buildCertificate({
      commonName: opts.commonName,
      key,
      issuer: this.#signer,
      ...intermediateValidity(this.#signer.cert),
      ca: { pathLength },
    });
    const ca = new CertificateAuthority({
      commonName: opts.commonName,
      built,
      key,
      parent: this,
      pathLength,
      listener: this.#listener,
    });
    this.#listener?.({ kind: 'intermediate', subject: opts.commonName, names: [] });
    return ca;
  }

  /** Issues a leaf signed by this CA. Its `chainPem` is the leaf plus this CA's chain (no root). */
  async issueLeaf(opts: LeafOptions = {}): Promise<IssuedCert> {
    const internal = opts as InternalLeafOptions;
    const { dns, ips } = splitNames(opts.names, opts.ips);
    const commonName = opts.commonName ?? dns[0] ?? ips[0];
    if (commonName === undefined || commonName === '') {
      throw new FieldlabError('E_BAD_OPTION', 'pki: a leaf needs names, ips or a commonName', {
        where: 'pki leaf options',
        hint: 'give at least one DNS name, IP address or commonName',
      });
    }
    const keyType = opts.keyType ?? 'ec';
    checkKeyType(keyType);
    const key = opts.reuseKey ? await this.#leafKey(keyType) : await generateKey(keyType);
    const validity = leafValidity();
    const notBefore = opts.notBefore ?? validity.notBefore;
    const notAfter = opts.notAfter ?? validity.notAfter;
    const usage = opts.usage ?? 'server';
    let certPem: string;
    let serial: string;
    let dates: { notBefore: Date; notAfter: Date };
    if (plainCommonName(commonName)) {
      if (!(notBefore.getTime() < notAfter.getTime())) {
        throw new FieldlabError('E_BAD_OPTION', 'pki: notBefore must be before notAfter', {
          where: 'pki notBefore/notAfter',
          hint: 'give a validity window whose start is before its end',
        });
      }
      // The same certificate buildCertificate() makes, encoded directly (leaf-der.ts): the ASN.1
      // library's encode and parse-back were most of a leaf's cost.
      serial = randomSerial();
      // X.509 times have whole seconds (RFC 5280 §4.1.2.5.1/.2).
      dates = { notBefore: wholeSeconds(notBefore), notAfter: wholeSeconds(notAfter) };
      const der = this.#template(key, opts.reuseKey === true).build({
        serial,
        // ub-common-name is 64 (RFC 5280 Appendix A); longer names live in the SAN only.
        commonName: commonName.length <= 64 ? commonName : `${commonName.slice(0, 61)}...`,
        dns,
        ips,
        usage,
        ...dates,
      });
      certPem = pem(der, 'CERTIFICATE');
    } else {
      const built = await buildCertificate({
        commonName,
        key,
        issuer: this.#signer,
        notBefore,
        notAfter,
        usage,
        dns,
        ips,
      });
      certPem = built.certPem;
      serial = built.cert.serialNumber;
      dates = { notBefore: built.cert.notBefore, notAfter: built.cert.notAfter };
    }
    if (!internal[SILENT]) this.#listener?.({ kind: 'leaf', subject: commonName, names: [...dns, ...ips] });
    return {
      certPem,
      keyPem: key.keyPem,
      chainPem: certPem + this.chainPem(),
      names: dns,
      ips,
      serial,
      ...dates,
    };
  }

  // A template per reused leaf key (kept), or for a fresh key (used once).
  #template(key: KeyMaterial, reused: boolean): LeafTemplate {
    const kept = reused ? this.#templates.get(key.type) : undefined;
    if (kept !== undefined) return kept;
    const template = new LeafTemplate({
      issuerCertDer: new X509Certificate(this.certPem).raw,
      issuerKeyId: this.#signer.keyId,
      issuerKey: KeyObject.from(this.#signer.key.keys.privateKey),
      issuerKeyType: this.keyType,
      leafSpkiDer: KeyObject.from(key.keys.publicKey).export({ type: 'spki', format: 'der' }),
      leafKeyType: key.type,
    });
    if (reused) this.#templates.set(key.type, template);
    return template;
  }

  /** This CA's chain up to but not including the root (empty for a root). */
  chainPem(): string {
    let out = '';
    for (let ca: CertificateAuthority | undefined = this; ca?.parent !== undefined; ca = ca.parent) {
      out += ca.certPem;
    }
    return out;
  }

  /** The root this CA chains to (itself for a root). */
  root(): CertificateAuthority {
    let ca: CertificateAuthority = this;
    while (ca.parent !== undefined) ca = ca.parent;
    return ca;
  }

  /** @internal Where this CA and the CAs it creates report what they issue. */
  static setListener(ca: CertificateAuthority, listener: IssueListener | undefined): void {
    ca.#listener = listener;
  }

  // One shared leaf key per key type, kept as a promise so concurrent first calls generate it once.
  #leafKey(type: KeyType): Promise<KeyMaterial> {
    let key = this.#leafKeys.get(type);
    if (key === undefined) {
      key = generateKey(type);
      this.#leafKeys.set(type, key);
      key.catch(() => this.#leafKeys.delete(type));
    }
    return key;
  }
}

function checkCommonName(cn: unknown): void {
  if (typeof cn !== 'string' || cn.trim() === '') {
    throw new FieldlabError('E_BAD_OPTION', 'pki: commonName must be a non-empty string', {
      where: 'pki commonName',
      hint: 'name the CA, e.g. "fieldlab Lab Root CA"',
    });
  }
}

export function checkKeyType(type: unknown): void {
  if (type !== 'ec' && type !== 'rsa') {
    throw new FieldlabError('E_BAD_OPTION', `pki: keyType ${JSON.stringify(type)} is not 'ec' or 'rsa'`, {
      where: 'pki keyType',
      hint: "use keyType 'ec' (P-256, the default) or 'rsa' (2048 bits)",
    });
  }
}

function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}
