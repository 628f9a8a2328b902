/**
 * A bounded LRU of promises: concurrent requests for one key share the pending promise, so a burst of
 * clients to one host signs one certificate. A rejected promise is dropped, so the next request retries.
 */
export class PromiseLru<V> {
  private readonly entries = new Map<string, Promise<V>>();

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError(`capacity must be ≥ 1, got ${capacity}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * The value for `key`, making it with `make` when absent. `hit` is true when an entry (settled or
   * still pending) already existed.
   */
  get(key: string, make: () => Promise<V>): { value: Promise<V>; hit: boolean } {
    const existing = this.entries.get(key);
    if (existing !== undefined) {
      // Map keeps insertion order: re-inserting moves the key to the most-recently-used end.
      this.entries.delete(key);
      this.entries.set(key, existing);
      return { value: existing, hit: true };
    }
    const value = make();
    this.entries.set(key, value);
    value.catch(() => {
      if (this.entries.get(key) === value) this.entries.delete(key);
    });
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    return { value, hit: false };
  }

  clear(): void {
    this.entries.clear();
  }
}
