import { connect as tcpConnect } from 'node:net';
import { execa } from 'execa';
import mqtt from 'mqtt';
import {
  generate,
  type IConnackPacket,
  type IConnectPacket,
  type IPubackPacket,
  type ISubackPacket,
  parser as mqttParser,
} from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { type MqttBrokerHandle, type MqttBrokerOptions, start } from '../../simulators/mqtt-broker/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';

/**
 * MQTT 5 on the lab broker: a v5 CONNECT gets a v5 CONNACK (not the 3.1.1 `20 02 00 01` of a broker that
 * does not speak v5), and the v5 additions a device SDK reads work end to end: reason codes on SUBACK and
 * PUBACK, user properties carried from publisher to subscriber.
 */

let broker: MqttBrokerHandle | undefined;
const clients: mqtt.MqttClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await broker?.stop();
  broker = undefined;
});

async function startBroker(extra: Partial<MqttBrokerOptions> = {}): Promise<MqttBrokerHandle> {
  broker = await start({ name: 'broker', listeners: [{ protocol: 'mqtt' }, { protocol: 'ws' }], ...extra });
  return broker;
}

const url = (b: MqttBrokerHandle) => endpointOf(b, 'mqtt').url!;
const port = (b: MqttBrokerHandle) => endpointOf(b, 'mqtt').port;

async function v5client(b: MqttBrokerHandle, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const c = await within(
    mqtt.connectAsync(url(b), { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...opts }),
    10_000,
    'MQTT 5 connect',
  );
  clients.push(c);
  return c;
}

const v5Connect = (extra: Partial<IConnectPacket> = {}) =>
  generate(
    {
      cmd: 'connect',
      protocolId: 'MQTT',
      protocolVersion: 5,
      clean: true,
      clientId: 'wire5',
      keepalive: 0,
      ...extra,
    } as IConnectPacket,
    { protocolVersion: 5 },
  );

/** Sends `bytes` on a raw socket and resolves with the broker's first MQTT 5 packet, parsed as v5. */
function firstV5Packet(p: number, bytes: Buffer): Promise<IConnackPacket> {
  const socket = tcpConnect(p, '127.0.0.1', () => socket.write(bytes));
  const parser = mqttParser({ protocolVersion: 5 });
  const got = new Promise<IConnackPacket>((resolve, reject) => {
    parser.on('packet', (packet) =>
      packet.cmd === 'connack' ? resolve(packet) : reject(new Error(`${packet.cmd} before CONNACK`)),
    );
    parser.on('error', reject);
    socket.on('data', (d) => parser.parse(d));
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed before a packet')));
  });
  return within(got, 5000, 'the broker to answer').finally(() => socket.destroy());
}

describe('mqtt-broker MQTT 5 at the wire', () => {
  it('answers a v5 CONNECT with a v5 CONNACK: reason 0x00 and the broker capabilities (MQTT 5 §3.2)', async () => {
    const b = await startBroker();
    const connack = await firstV5Packet(port(b), v5Connect({ properties: { sessionExpiryInterval: 10 } }));
    expect(connack).toMatchObject({ cmd: 'connack', reasonCode: 0, sessionPresent: false });
    // §3.2.2.3.8 Topic Alias Maximum; §3.2.2.3.13 Shared Subscription Available (shared-subscriptions.ts)
    expect(connack.properties).toMatchObject({ topicAliasMaximum: 10, sharedSubscriptionAvailable: true });
  });

  it('assigns an identifier to an empty client id even with Clean Start 0 [MQTT-3.1.3-6]', async () => {
    const b = await startBroker();
    // mqtt-packet refuses to build it: fixed header, "MQTT", level 5, flags 0 (Clean Start 0), keep-alive 0,
    // no properties, an empty client id
    const noId = Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 5, 0, 0, 0, 0, 0, 0]);
    const connack = await firstV5Packet(port(b), noId);
    expect(connack).toMatchObject({ cmd: 'connack', reasonCode: 0 });
    expect(connack.properties?.assignedClientIdentifier).toMatch(/.+/);
  });

  it('a throttled v5 CONNECT gets a v5 CONNACK 0x9F Connection rate exceeded, a 3.1.1 one 0x03', async () => {
    const b = await startBroker({ connectRate: { perSecond: 1 } });
    // one CONNECT per second passes: the first takes the slot, the next are refused in their own version
    expect(await firstV5Packet(port(b), v5Connect())).toMatchObject({ reasonCode: 0 });
    const refused = await firstV5Packet(port(b), v5Connect({ clientId: 'second' }));
    expect(refused).toMatchObject({ cmd: 'connack', reasonCode: 0x9f });
    await expect(mqtt.connectAsync(url(b), { reconnectPeriod: 0, connectTimeout: 5000 })).rejects.toThrow(
      /Server unavailable/i,
    );
  });
});

describe('mqtt-broker MQTT 5 with MQTT.js', () => {
  it('SUBACK and PUBACK reason codes, user properties end to end, and a denial that keeps the connection', async () => {
    const b = await startBroker({
      hooks: {
        authorizeSubscribe: async (_c, topic) => !topic.startsWith('secret/'),
        authorizePublish: async (_c, topic) => !topic.startsWith('secret/'),
      },
    });
    const sub = await v5client(b, { clientId: 'sub5' });
    // §3.9.3: one SUBACK, a reason code per filter: 0x01 Granted QoS 1, 0x87 Not authorized (MQTT.js
    // rejects a SUBACK carrying any failure and hands the packet over)
    const suback = await sub.subscribeAsync({ 'a/+': { qos: 1 }, 'secret/x': { qos: 1 } }).then(
      () => undefined,
      (err: Error & { packet?: ISubackPacket }) => err.packet,
    );
    expect(suback?.granted).toEqual([1, 0x87]);

    const got = new Promise<{ payload: string; props: unknown }>((resolve) =>
      sub.once('message', (_t, payload, packet) =>
        resolve({ payload: payload.toString(), props: packet.properties?.userProperties }),
      ),
    );
    const pub = await v5client(b, { clientId: 'pub5' });
    const ack = await pub.publishAsync('a/1', 'hello', {
      qos: 1,
      properties: { userProperties: { device: 'd-1', batch: ['1', '2'] } },
    });
    expect((ack as IPubackPacket | undefined)?.reasonCode ?? 0).toBe(0); // PUBACK 0x00 Success
    expect(await within(got, 5000, 'the message')).toEqual({
      payload: 'hello',
      props: { device: 'd-1', batch: ['1', '2'] },
    });

    // §3.4.2.1: a refused QoS 1 PUBLISH gets PUBACK 0x87; the v5 connection stays up
    await expect(pub.publishAsync('secret/x', 'no', { qos: 1 })).rejects.toMatchObject({ code: 0x87 });
    expect(pub.connected).toBe(true);
    const again = await pub.publishAsync('a/2', 'still here', { qos: 1 });
    expect((again as IPubackPacket | undefined)?.reasonCode ?? 0).toBe(0);
  });
  it('UNSUBACK says 0x11 for a filter never subscribed (shared subscriptions: mqtt5-flow.test.ts)', async () => {
    const b = await startBroker();
    const c = await v5client(b, { clientId: 'gaps5' });
    const unsuback = await c.unsubscribeAsync('never/subscribed');
    expect(unsuback).toMatchObject({ cmd: 'unsuback', granted: [0x11] }); // §3.11.3 No subscription existed
  });
});

describe.skipIf(missing('cmd:mosquitto_pub'))('mqtt-broker MQTT 5 with the mosquitto clients', () => {
  it('mosquitto_pub -V 5 -D user-property reaches mosquitto_sub -V 5 with the property (%P)', async () => {
    const b = await startBroker();
    const subscribed = new Promise<void>((resolve) => b.events.onceEvent('subscribe', () => resolve()));
    const sub = execa(
      'mosquitto_sub',
      ['-h', '127.0.0.1', '-p', String(port(b)), '-V', '5', '-t', 'm/t', '-q', '1', '-C', '1', '-F', '%P|%p'],
      { reject: false, timeout: 15_000 },
    );
    await within(subscribed, 10_000, 'mosquitto_sub to subscribe');
    const pub = await execa(
      'mosquitto_pub',
      [
        ...['-h', '127.0.0.1', '-p', String(port(b)), '-V', '5', '-t', 'm/t', '-q', '1', '-m', 'v5 payload'],
        ...['-D', 'publish', 'user-property', 'site', 'lab-7'],
      ],
      { reject: false, timeout: 10_000 },
    );
    expect(pub.exitCode).toBe(0);
    const out = await sub;
    expect(out.exitCode).toBe(0);
    expect(out.stdout.trim()).toBe('site:lab-7|v5 payload');
  });
});
