import { describe, expect, it } from 'vitest';
import { pooledRandomBytes } from '../../simulators/tunnel-service/random.js';

describe('pooled random bytes', () => {
  it('hands out fresh bytes of the size asked, across pool refills, and owned by the caller', () => {
    const seen = new Set<string>();
    // 28 bytes x 1000 is several 4 KiB pools: every value still differs.
    for (let i = 0; i < 1000; i++) {
      const b = pooledRandomBytes(28);
      expect(b.length).toBe(28);
      seen.add(b.toString('hex'));
    }
    expect(seen.size).toBe(1000);
    const a = pooledRandomBytes(63);
    const copy = Buffer.from(a);
    pooledRandomBytes(4000);
    for (let i = 0; i < 200; i++) pooledRandomBytes(63);
    expect(a).toEqual(copy);
    expect(pooledRandomBytes(5000).length).toBe(5000);
  });
});
