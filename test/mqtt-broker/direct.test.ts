import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { topicMatches } from '../../simulators/mqtt-broker/direct.js';
import { type MqttBrokerHandle, start } from '../../simulators/mqtt-broker/index.js';
import { within } from '../helpers/within.js';

let broker: MqttBrokerHandle | undefined;
const clients: mqtt.MqttClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await broker?.stop();
  broker = undefined;
});

/** An MQTT.js client that records every PUBLISH it receives. */
async function client(url: string, clientId: string) {
  const c = await mqtt.connectAsync(url, { clientId, reconnectPeriod: 0, connectTimeout: 5000 });
  clients.push(c);
  const received: Array<{ topic: string; payload: string; qos: number }> = [];
  c.on('message', (topic, payload, packet) =>
    received.push({ topic, payload: payload.toString(), qos: packet.qos }),
  );
  const next = (topic: string) =>
    within(
      new Promise<string>((resolve) => {
        const on = (t: string, p: Buffer) => {
          if (t !== topic) return;
          c.off('message', on);
          resolve(p.toString());
        };
        c.on('message', on);
      }),
      5000,
      `${clientId} message on ${topic}`,
    );
  return { c, received, next };
}

describe('topicMatches (MQTT 3.1.1 §4.7)', () => {
  it.each([
    ['a/b', 'a/b', true],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['+/+', 'a/b', true],
    ['#', '$aws/things/x', false],
    ['+/things/x', '$aws/things/x', false],
    ['$aws/+/x', '$aws/things/x', true],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
  ])('%s against %s → %s', (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
});

describe('publishTo: one connection, not every subscriber', () => {
  it('answers the connection that asked only, through its subscription and at its granted QoS', async () => {
    let b: MqttBrokerHandle | undefined;
    b = await start({
      name: 'broker',
      hooks: {
        // Every request on req/<id> is answered on the reply topic all clients share.
        onPublish: async (c, topic, payload) => {
          if (topic.startsWith('req/')) await b?.publishTo(c.connection, 'res/shared', payload, 1);
        },
      },
    });
    broker = b;
    const url = endpointOf(b, 'mqtt').url!;
    const asker = await client(url, 'asker');
    const other = await client(url, 'other');
    await asker.c.subscribeAsync('res/shared', { qos: 1 });
    await other.c.subscribeAsync('res/#', { qos: 0 });

    const answer = asker.next('res/shared');
    await asker.c.publishAsync('req/asker', 'for asker', { qos: 1 });
    expect(await answer).toBe('for asker');
    // The other client's own request: its answer comes after anything sent to it before.
    const own = other.next('res/shared');
    await other.c.publishAsync('req/other', 'for other', { qos: 1 });
    expect(await own).toBe('for other');

    expect(asker.received).toEqual([{ topic: 'res/shared', payload: 'for asker', qos: 1 }]);
    // Subscribed with QoS 0: the QoS 1 answer is downgraded [MQTT-3.3.5-1].
    expect(other.received).toEqual([{ topic: 'res/shared', payload: 'for other', qos: 0 }]);
  });

  it('by client id: delivered to its current connection; not connected, not subscribed and $ topics say so', async () => {
    const b = await start({ name: 'broker' });
    broker = b;
    const url = endpointOf(b, 'mqtt').url!;
    const dev = await client(url, 'dev');
    await dev.c.subscribeAsync('#', { qos: 1 });

    const got = dev.next('c2d/dev');
    expect(await b.publishTo('dev', 'c2d/dev', 'hello', 1)).toBe('delivered');
    expect(await got).toBe('hello');
    expect(await b.publishTo('nobody', 'c2d/dev', 'hello', 1)).toBe('not-connected');
    // [MQTT-4.7.2-1] `#` does not match a topic starting with `$`.
    expect(await b.publishTo('dev', '$aws/things/dev/shadow/get/accepted', '{}', 1)).toBe('not-subscribed');
  });
});
