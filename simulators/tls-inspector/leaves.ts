import { isIP } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import { preciseNow } from '../common/index.js';
import type { CertificateAuthority, IssuedCert } from '../pki/index.js';
import { PromiseLru } from './leaf-cache.js';

/** What the inspector does wrong on purpose when it re-signs (see the README's fault list). */
export type InspectorFault = 'none' | 'expired' | 'wrong-host' | 'missing-intermediate';

export const INSPECTOR_FAULTS: readonly InspectorFault[] = [
  'none',
  'expired',
  'wrong-host',
  'missing-intermediate',
];

/** The name a `wrong-host` leaf is issued for: `.invalid` is reserved (RFC 2606 §2), so never a target. */
export const WRONG_HOST_NAME = 'wrong-host.fieldlab.invalid';

/** A leaf ready to serve: the certificate and the TLS context built from it once. */
export interface Leaf {
  issued: IssuedCert;
  context: SecureContext;
  /** Milliseconds the signing took. */
  signMs: number;
}

/** One lookup: the leaf, whether it came from the cache (settled or pending), and how long it took. */
export interface LeafLookup {
  leaf: Leaf;
  cached: boolean;
  waitMs: number;
}

export interface LeafIssuerStats {
  leafCacheHits: number;
  leafCacheMisses: number;
  leavesIssued: number;
}

const DAY_MS = 86_400_000;

/**
 * Issues the inspector's forged leaves with its CA, one per host name (or IP) and fault, cached in a
 * bounded LRU with the TLS context built from each. Every leaf carries the CA's one reused leaf key (as
 * mitmproxy does) and is encoded from a template and signed with node:crypto (pki/leaf-der.ts): a
 * fraction of a millisecond. Most of a new host's cost is the TLS context: OpenSSL parsing the key and
 * the certificates (bench/README.md, "Reading `tls-inspector`").
 */
export class LeafIssuer {
  private readonly cache: PromiseLru<Leaf>;
  readonly counts: LeafIssuerStats = { leafCacheHits: 0, leafCacheMisses: 0, leavesIssued: 0 };

  constructor(
    private readonly ca: CertificateAuthority,
    capacity: number,
    private readonly onIssued?: (name: string, leaf: Leaf) => void,
  ) {
    this.cache = new PromiseLru(capacity);
  }

  /** The leaf for `name` (a DNS name or an IP address) under `fault`. */
  async get(name: string, fault: InspectorFault): Promise<LeafLookup> {
    const t0 = preciseNow();
    const key = `${fault}|${name.toLowerCase()}`;
    const { value, hit } = this.cache.get(key, () => this.issue(name.toLowerCase(), fault));
    if (hit) this.counts.leafCacheHits++;
    else this.counts.leafCacheMisses++;
    const leaf = await value;
    return { leaf, cached: hit, waitMs: preciseNow() - t0 };
  }

  clear(): void {
    this.cache.clear();
  }

  private async issue(name: string, fault: InspectorFault): Promise<Leaf> {
    const t0 = preciseNow();
    const ip = isIP(name) !== 0;
    const now = Date.now();
    const issued = await this.ca.issueLeaf({
      reuseKey: true,
      commonName: fault === 'wrong-host' ? WRONG_HOST_NAME : name,
      ...(fault === 'wrong-host' ? { names: [WRONG_HOST_NAME] } : ip ? { ips: [name] } : { names: [name] }),
      ...(fault === 'expired'
        ? { notBefore: new Date(now - 30 * DAY_MS), notAfter: new Date(now - DAY_MS) }
        : {}),
    });
    // missing-intermediate: serve the leaf alone, so a client holding only the root cannot build a path.
    const cert = fault === 'missing-intermediate' ? issued.certPem : issued.chainPem;
    const leaf: Leaf = {
      issued,
      context: createSecureContext({ cert, key: issued.keyPem }),
      signMs: preciseNow() - t0,
    };
    this.counts.leavesIssued++;
    this.onIssued?.(name, leaf);
    return leaf;
  }
}
