import type { Aedes } from 'aedes';

/**
 * Caches mqemitter's topic matches per topic name. aedes hands every PUBLISH to mqemitter, which matches its
 * topic against every subscription in a qlobber trie (splitting the topic into levels and walking them);
 * a QoS 0 flood profile showed that match at about 4 % of the broker's CPU, for a topic that is the same
 * message after message. The result for a topic depends on the subscriptions alone, so it is kept until the
 * subscriptions change: any add, remove or clear on the trie empties the cache, at the moment it happens
 * (mqemitter removes a listener one turn after UNSUBSCRIBE, and the cache follows the trie, not the packet).
 *
 *   PUBLISH t ──▶ mq.emit ──▶ match(t) ──cached?──yes──▶ the same listeners, in the same order
 *                                           │ no
 *                                           ▼
 *                                   qlobber match, kept (up to MATCH_CACHE_TOPICS topics, then the cache starts over)
 *
 * The cached array is never changed after it is stored (mqemitter and fastparallel only read it); a change of
 * subscriptions stores a new one.
 */

/** Topics whose matches are kept at once; past it the cache is emptied (a lab has few hot topics). */
export const MATCH_CACHE_TOPICS = 1000;

interface Matcher {
  match(topic: string, ctx?: unknown): unknown[];
  add(...args: unknown[]): unknown;
  remove(...args: unknown[]): unknown;
  clear(...args: unknown[]): unknown;
}

/** Installs the cache on this broker's mqemitter (not the package); call right after createBroker. */
export function cacheTopicMatches(broker: Aedes, limit = MATCH_CACHE_TOPICS): void {
  const matcher = (broker as Aedes & { mq: { _matcher: Matcher } }).mq._matcher;
  const cache = new Map<string, unknown[]>();
  const match = matcher.match;
  for (const change of ['add', 'remove', 'clear'] as const) {
    const original = matcher[change];
    matcher[change] = function changed(this: Matcher, ...args: unknown[]) {
      cache.clear();
      return original.apply(this, args);
    };
  }
  matcher.match = function cachedMatch(this: Matcher, topic, ctx) {
    if (ctx !== undefined) return match.call(this, topic, ctx);
    let found = cache.get(topic);
    if (found === undefined) {
      found = match.call(this, topic);
      if (cache.size >= limit) cache.clear();
      cache.set(topic, found);
    }
    return found;
  };
}

interface OfflinePersistence {
  broadcast?: unknown;
  subscriptionsByTopic(topic: string): Promise<unknown[]>;
  addSubscriptions(...args: unknown[]): Promise<unknown>;
  removeSubscriptions(...args: unknown[]): Promise<unknown>;
  cleanSubscriptions(...args: unknown[]): Promise<unknown>;
}

/**
 * The same for the persistence's match of the subscriptions kept for offline sessions (clean session 0), which
 * aedes asks for every QoS 1 and 2 PUBLISH (its `enqueueOffline`): about 3 % of the broker's CPU in a QoS 1
 * flood, where no session is offline at all. aedes-persistence's in-memory store changes that trie only in
 * addSubscriptions, removeSubscriptions and cleanSubscriptions (synchronously, before they await anything);
 * each empties the cache before and after. A store that shares subscriptions between brokers
 * (`broadcastSubscriptions`) changes it from outside them, so it is left as it is.
 */
export function cacheOfflineMatches(broker: Aedes, limit = MATCH_CACHE_TOPICS): void {
  // aedes-persistence's default store is a callback layer over the async one that holds the trie
  const outer = (
    broker as Aedes & { persistence: OfflinePersistence & { asyncPersistence?: OfflinePersistence } }
  ).persistence;
  const persistence = outer.asyncPersistence ?? outer;
  if (persistence.broadcast !== undefined) return;
  const cache = new Map<string, Promise<unknown[]>>();
  const byTopic = persistence.subscriptionsByTopic;
  for (const change of ['addSubscriptions', 'removeSubscriptions', 'cleanSubscriptions'] as const) {
    const original = persistence[change];
    persistence[change] = function changed(this: OfflinePersistence, ...args: unknown[]) {
      cache.clear();
      return original.apply(this, args).finally(() => cache.clear());
    };
  }
  persistence.subscriptionsByTopic = function cachedByTopic(this: OfflinePersistence, topic: string) {
    let found = cache.get(topic);
    if (found === undefined) {
      found = byTopic.call(this, topic);
      if (cache.size >= limit) cache.clear();
      cache.set(topic, found);
      found.catch(() => cache.delete(topic));
    }
    return found;
  };
}
