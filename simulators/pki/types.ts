/** Key algorithm of a generated key pair: EC P-256 (the default) or RSA 2048. */
export type KeyType = 'ec' | 'rsa';

/** A certificate and its key, in memory, as PEM strings. */
export interface IssuedCert {
  /** The leaf certificate only. */
  certPem: string;
  /** The leaf's private key, PKCS#8 PEM. */
  keyPem: string;
  /** Leaf + intermediates (never the root): what a server serves. */
  chainPem: string;
  /** DNS names in the subjectAltName. */
  names: string[];
  /** IP addresses in the subjectAltName. */
  ips: string[];
  /** Serial number, lowercase hex. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** An issued certificate written to disk (key file mode 0600). */
export interface IssuedCertFiles extends IssuedCert {
  certPath: string;
  keyPath: string;
  chainPath: string;
}

/** What a leaf certificate is for. */
export interface LeafOptions {
  /** DNS names for the subjectAltName; IP-looking entries become IP SANs. */
  names?: string[];
  /** IP addresses for the subjectAltName. */
  ips?: string[];
  /** Subject CN; default: the first name (or IP). */
  commonName?: string;
  /** Default `ec`. */
  keyType?: KeyType;
  /** extendedKeyUsage: serverAuth, clientAuth or both. Default `server`. */
  usage?: 'server' | 'client' | 'both';
  /** Default: an hour ago. */
  notBefore?: Date;
  /** Default: 30 days from now. */
  notAfter?: Date;
  /**
   * Reuse this CA's one leaf key pair of that key type instead of generating a new one: makes issuing
   * a certificate per intercepted host cheap, as mitmproxy does.
   */
  reuseKey?: boolean;
}

/** The bad certificates field problems need. */
export type BadCertKind =
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-host'
  | 'self-signed'
  | 'missing-intermediate'
  | 'unknown-root';

export const BAD_CERT_KINDS: readonly BadCertKind[] = [
  'expired',
  'not-yet-valid',
  'wrong-host',
  'self-signed',
  'missing-intermediate',
  'unknown-root',
];

/** One certificate issued: by the lab CAs, an authority made with `createAuthority`, or `bad()`. */
export interface IssuedEvent {
  kind: 'root' | 'intermediate' | 'leaf' | 'bad';
  /** The subject common name. */
  subject: string;
  /** DNS names and IPs in the subjectAltName (empty for CAs). */
  names: string[];
  bad?: BadCertKind;
}

export type PkiEvents = {
  issued: IssuedEvent;
};

/** Counts of certificates issued since `start()`. */
export interface PkiStats {
  roots: number;
  intermediates: number;
  leaves: number;
  bad: number;
  /** All of the above. */
  total: number;
}
