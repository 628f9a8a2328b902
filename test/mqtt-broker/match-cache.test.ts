import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { type MqttBrokerHandle, start } from '../../simulators/mqtt-broker/index.js';
import { cacheTopicMatches, MATCH_CACHE_TOPICS } from '../../simulators/mqtt-broker/match-cache.js';
import { within } from '../helpers/within.js';

/**
 * match-cache.ts keeps mqemitter's matches per topic: a subscription added or removed between two messages on
 * a topic whose matches are cached must be honoured at the next message, with real MQTT.js clients.
 */

let broker: MqttBrokerHandle | undefined;
const clients: MqttClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await broker?.stop();
  broker = undefined;
});

/** A connected MQTT.js client that records every message it receives as "topic payload". */
async function client(
  url: string,
  id: string,
): Promise<{ c: MqttClient; got: string[]; next: () => Promise<string> }> {
  const c = await mqtt.connectAsync(url, { clientId: id, reconnectPeriod: 0, connectTimeout: 5000 });
  clients.push(c);
  const got: string[] = [];
  const waiting: Array<(m: string) => void> = [];
  c.on('message', (t, p) => {
    const m = `${t} ${p.toString()}`;
    got.push(m);
    waiting.shift()?.(m);
  });
  let read = 0;
  const next = () => {
    const i = read++;
    if (i < got.length) return Promise.resolve(got[i]!);
    return within(new Promise<string>((r) => waiting.push(r)), 5000, `message ${i + 1} at ${id}`);
  };
  return { c, got, next };
}

type Matcher = { match(topic: string): unknown[] };
const matcherOf = (b: MqttBrokerHandle) => (b.broker as unknown as { mq: { _matcher: Matcher } }).mq._matcher;

describe('mqtt-broker topic match cache', () => {
  it('a subscriber added or removed between two messages on a cached topic is honoured at the next one', async () => {
    broker = await start({ name: 'cache', listeners: [{ protocol: 'mqtt' }] });
    const url = `mqtt://127.0.0.1:${broker.endpoints[0]!.port}`;
    const a = await client(url, 'a');
    const b = await client(url, 'b');
    const p = await client(url, 'p');
    await a.c.subscribeAsync(['c/t', 'marker/a'], { qos: 1 });

    await p.c.publishAsync('c/t', 'm1', { qos: 1 });
    expect(await a.next()).toBe('c/t m1');
    // the matches of c/t are cached now: the same array comes back until the subscriptions change
    const matcher = matcherOf(broker);
    expect(matcher.match('c/t')).toBe(matcher.match('c/t'));
    const before = matcher.match('c/t');

    // added: B's wildcard subscription matches the cached topic
    await b.c.subscribeAsync('c/+', { qos: 1 });
    expect(matcher.match('c/t')).not.toBe(before);
    await p.c.publishAsync('c/t', 'm2', { qos: 1 });
    expect(await a.next()).toBe('c/t m2');
    expect(await b.next()).toBe('c/t m2');

    // removed: A leaves c/t; B still gets m3, and A's next message is the marker sent after m3
    await a.c.unsubscribeAsync('c/t');
    await p.c.publishAsync('c/t', 'm3', { qos: 1 });
    expect(await b.next()).toBe('c/t m3');
    await p.c.publishAsync('marker/a', 'after m3', { qos: 1 });
    expect(await a.next()).toBe('marker/a after m3');

    // added again: A is back on c/t
    await a.c.subscribeAsync('c/t', { qos: 0 });
    await p.c.publishAsync('c/t', 'm4', { qos: 1 });
    expect(await a.next()).toBe('c/t m4');
    expect(await b.next()).toBe('c/t m4');
    expect(a.got).toEqual(['c/t m1', 'c/t m2', 'marker/a after m3', 'c/t m4']);
    expect(b.got).toEqual(['c/t m2', 'c/t m3', 'c/t m4']);
  });

  it('a persistent session that unsubscribes between two messages on a cached topic gets no copy queued', async () => {
    broker = await start({ name: 'cache-offline', listeners: [{ protocol: 'mqtt' }] });
    const url = `mqtt://127.0.0.1:${broker.endpoints[0]!.port}`;
    const p = await client(url, 'p');
    const got: string[] = [];
    const arrived: Array<() => void> = [];
    /** O's persistent session (clean session 0), listening before it connects: queued messages come at once. */
    const connectO = async () => {
      const c = mqtt.connect(url, { clientId: 'o', clean: false, reconnectPeriod: 0, connectTimeout: 5000 });
      clients.push(c);
      c.on('message', (t, m) => {
        got.push(`${t} ${m.toString()}`);
        arrived.shift()?.();
      });
      await within(new Promise((r) => c.once('connect', r)), 5000, 'O to connect');
      return c;
    };
    const nextMessage = (what: string) => within(new Promise<void>((r) => arrived.push(r)), 5000, what);

    let o = await connectO();
    await o.subscribeAsync(['o/t', 'marker/o'], { qos: 1 });
    await o.endAsync();
    await p.c.publishAsync('o/t', 'm1', { qos: 1 }); // queued for O, and o/t's offline matches cached
    let next = nextMessage('m1 queued for O');
    o = await connectO();
    await next;
    // O leaves o/t, goes offline again; m2 must not be queued for it, the marker after it must
    await o.unsubscribeAsync('o/t');
    await o.endAsync();
    await p.c.publishAsync('o/t', 'm2', { qos: 1 });
    await p.c.publishAsync('marker/o', 'after m2', { qos: 1 });
    next = nextMessage('the first message queued for O');
    await connectO();
    await next;
    expect(got).toEqual(['o/t m1', 'marker/o after m2']);
  });

  it('keeps at most its limit of topics, starting over past it; a new subscription is matched at once', async () => {
    const bare = await Aedes.createBroker();
    try {
      const mq = (bare as unknown as { mq: { _matcher: Matcher; on(t: string, f: () => void): void } }).mq;
      let computed = 0;
      const match = mq._matcher.match;
      mq._matcher.match = function counted(this: Matcher, topic: string) {
        computed++;
        return match.call(this, topic);
      };
      cacheTopicMatches(bare, 3);
      const m = mq._matcher;
      m.match('a');
      m.match('a');
      expect(computed).toBe(1);
      m.match('b');
      m.match('c');
      m.match('a');
      expect(computed).toBe(3);
      m.match('d'); // a fourth topic: the cache starts over with it
      m.match('a');
      expect(computed).toBe(5);
      const listener = () => undefined;
      mq.on('a', listener);
      expect(m.match('a')).toContain(listener);
      expect(computed).toBe(6);
      expect(MATCH_CACHE_TOPICS).toBeGreaterThanOrEqual(100);
    } finally {
      await new Promise<void>((r) => bare.close(() => r()));
    }
  });
});
