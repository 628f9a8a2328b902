import { describe, expect, it } from 'vitest';
import { parseCidr } from '../../simulators/geo-dns/ip.js';
import { type CacheEntry, ResolverCache } from '../../simulators/resolver/cache.js';

type R = { ttl: number; data: string };

function entry(data: string, ttl: number, storedAt: number, scope?: string): CacheEntry<R> {
  const cidr = scope ? parseCidr(scope) : undefined;
  return {
    rcode: 0,
    answers: [{ ttl, data }],
    authority: [],
    storedAt,
    ttl,
    ...(cidr ? { scope: cidr } : {}),
    scopeText: scope ?? '0',
  };
}
const addr = (ip: string): Uint8Array => parseCidr(ip)!.bytes;

describe('resolver cache', () => {
  it('serves an entry only to clients inside its ECS scope, the most specific first (RFC 7871 §7.3.1)', () => {
    const c = new ResolverCache<R>(100, 0, () => 0);
    c.store('a', 1, entry('na', 60, 0, '127.53.1.0/24'));
    c.store('a', 1, entry('eu', 60, 0, '127.53.2.0/24'));
    expect(c.lookup('a', 1, addr('127.53.1.7'))?.entry.answers[0]?.data).toBe('na');
    expect(c.lookup('a', 1, addr('127.53.2.7'))?.entry.answers[0]?.data).toBe('eu');
    expect(c.lookup('a', 1, addr('127.53.3.7'))).toBeUndefined();
    expect(c.lookup('a', 1, undefined)).toBeUndefined(); // no ECS: only entries for every client
    c.store('a', 1, entry('any', 60, 0));
    expect(c.lookup('a', 1, addr('127.53.3.7'))?.entry.answers[0]?.data).toBe('any');
    expect(c.lookup('a', 1, addr('127.53.1.7'))?.entry.answers[0]?.data).toBe('na');
  });

  it('counts TTLs down, keeps an expired entry for serve-stale, then drops it', () => {
    let now = 0;
    const c = new ResolverCache<R>(100, 10_000, () => now);
    c.store('a', 1, entry('x', 5, 0));
    now = 3_500;
    expect(c.lookup('a', 1, undefined)).toMatchObject({ age: 3, stale: false });
    now = 5_000;
    expect(c.lookup('a', 1, undefined)).toMatchObject({ stale: true });
    now = 15_000;
    expect(c.lookup('a', 1, undefined)).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it('holds at most maxEntries, evicting the least recently used', () => {
    const c = new ResolverCache<R>(2, 0, () => 0);
    c.store('a', 1, entry('a', 60, 0));
    c.store('b', 1, entry('b', 60, 0));
    c.lookup('a', 1, undefined); // a is now the most recently used
    c.store('c', 1, entry('c', 60, 0));
    expect(c.size).toBe(2);
    expect(c.lookup('b', 1, undefined)).toBeUndefined();
    expect(c.lookup('a', 1, undefined)).toBeDefined();
    expect(c.lookup('c', 1, undefined)).toBeDefined();
  });
});
