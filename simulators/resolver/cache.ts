/**
 * The resolver's answer cache: keyed by (name, type) and, within that, by ECS scope (RFC 7871 §7.3.1:
 * an answer with SCOPE prefix-length S is served only to clients whose address matches its subnet in the
 * first S bits; scope 0 or no ECS at all is for every client). TTLs count down; an expired entry is
 * kept `maxStaleMs` longer for serve-stale (RFC 8767) and dropped after. Bounded: least recently used
 * entries go first.
 */
import { type Cidr, inCidr } from '../geo-dns/ip.js';

/** A cached answer: the records as the upstream sent them (their TTLs at `storedAt`). */
export interface CacheEntry<R extends { ttl: number }> {
  rcode: number;
  answers: R[];
  authority: R[];
  /** performance.now() when stored. */
  storedAt: number;
  /** Seconds the entry is fresh: the smallest TTL (RFC 2181 §5.2), or the negative TTL (RFC 2308 §5). */
  ttl: number;
  /** The client subnet it answers for; undefined: every client. */
  scope?: Cidr;
  /** Text of the scope for events: `127.53.1.0/24`, or `0` for every client. */
  scopeText: string;
}

export interface CacheHit<R extends { ttl: number }> {
  entry: CacheEntry<R>;
  /** Whole seconds the entry has been cached. */
  age: number;
  /** Expired, usable only as a stale answer. */
  stale: boolean;
}

export class ResolverCache<R extends { ttl: number }> {
  /** name|type|scope → entry, in least-recently-used order. */
  private readonly entries = new Map<string, CacheEntry<R>>();
  /** name|type → keys of `entries` for that record set (one per scope). */
  private readonly byName = new Map<string, Set<string>>();

  constructor(
    private readonly maxEntries: number,
    /** How long an expired entry may still be served stale (0: drop at expiry). */
    private readonly maxStaleMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * The most specific entry whose scope covers `client` (address bytes; undefined: only entries for
   * every client match). Fresh entries win over stale ones.
   */
  lookup(name: string, type: number, client: Uint8Array | undefined): CacheHit<R> | undefined {
    const setKey = `${name}|${type}`;
    const keys = this.byName.get(setKey);
    if (!keys) return undefined;
    const now = this.now();
    let best: { key: string; hit: CacheHit<R> } | undefined;
    for (const key of [...keys]) {
      const entry = this.entries.get(key);
      if (!entry) continue;
      const ageMs = now - entry.storedAt;
      if (ageMs >= entry.ttl * 1000 + this.maxStaleMs) {
        this.delete(key);
        continue;
      }
      if (entry.scope && (!client || !inCidr(client, entry.scope))) continue;
      const hit = { entry, age: Math.floor(ageMs / 1000), stale: ageMs >= entry.ttl * 1000 };
      const better =
        !best ||
        (best.hit.stale && !hit.stale) ||
        (best.hit.stale === hit.stale && (entry.scope?.prefix ?? 0) > (best.hit.entry.scope?.prefix ?? 0));
      if (better) best = { key, hit };
    }
    if (!best) return undefined;
    // Most recently used goes to the end.
    this.entries.delete(best.key);
    this.entries.set(best.key, best.hit.entry);
    return best.hit;
  }

  /** Stores an entry (replacing the one for the same name, type and scope); evicts the least recently used. */
  store(name: string, type: number, entry: CacheEntry<R>): void {
    const setKey = `${name}|${type}`;
    const key = `${setKey}|${entry.scopeText}`;
    this.entries.delete(key);
    this.entries.set(key, entry);
    let keys = this.byName.get(setKey);
    if (!keys) {
      keys = new Set();
      this.byName.set(setKey, keys);
    }
    keys.add(key);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.delete(oldest);
    }
  }

  clear(): void {
    this.entries.clear();
    this.byName.clear();
  }

  private delete(key: string): void {
    this.entries.delete(key);
    const setKey = key.slice(0, key.lastIndexOf('|'));
    const keys = this.byName.get(setKey);
    keys?.delete(key);
    if (keys?.size === 0) this.byName.delete(setKey);
  }
}
