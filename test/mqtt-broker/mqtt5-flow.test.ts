import { type Socket, connect as tcpConnect } from 'node:net';
import { execa, type ResultPromise } from 'execa';
import mqtt from 'mqtt';
import { generate, type IConnectPacket, type IPublishPacket, parser as mqttParser } from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { type MqttBrokerHandle, type MqttBrokerOptions, start } from '../../simulators/mqtt-broker/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';

/**
 * MQTT 5 flow and routing that aedes 2.0.0-beta.1 lacks and the broker adds: shared subscriptions
 * (shared-subscriptions.ts), the client's Receive Maximum on what the broker sends (receive-maximum.ts),
 * outbound topic aliases within the client's Topic Alias Maximum (topic-alias-out.ts), and enhanced
 * authentication answered with CONNACK 0x8C, with real clients (MQTT.js and the mosquitto 2.0 clients).
 */

let broker: MqttBrokerHandle | undefined;
const clients: mqtt.MqttClient[] = [];
const children: ResultPromise[] = [];
const timers: NodeJS.Timeout[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const t of timers.splice(0)) clearInterval(t);
  for (const c of children.splice(0)) c.kill();
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await broker?.stop();
  broker = undefined;
});

async function startBroker(extra: Partial<MqttBrokerOptions> = {}): Promise<MqttBrokerHandle> {
  broker = await start({ name: 'broker', listeners: [{ protocol: 'mqtt' }], ...extra });
  return broker;
}
const port = (b: MqttBrokerHandle) => endpointOf(b, 'mqtt').port;

async function client(b: MqttBrokerHandle, opts: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  const c = await within(
    mqtt.connectAsync(endpointOf(b, 'mqtt').url!, { reconnectPeriod: 0, connectTimeout: 5000, ...opts }),
    10_000,
    'MQTT connect',
  );
  clients.push(c);
  return c;
}

/** Resolves once the broker has seen `n` more SUBSCRIBEs. */
function subscribes(b: MqttBrokerHandle, n: number): Promise<void> {
  let left = n;
  return new Promise((resolve) => {
    const onSubscribe = () => {
      if (--left > 0) return;
      b.events.off('subscribe', onSubscribe);
      resolve();
    };
    b.events.onEvent('subscribe', onSubscribe);
  });
}

/** A mosquitto_sub that prints one line per message (`%p`); `lines` collects them as they come. */
function mosquittoSub(b: MqttBrokerHandle, args: string[]): { lines: string[]; child: ResultPromise } {
  const lines: string[] = [];
  const child = execa('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(port(b)), ...args], {
    reject: false,
    timeout: 30_000,
  });
  let rest = '';
  child.stdout?.on('data', (d: Buffer) => {
    const parts = (rest + d.toString()).split('\n');
    rest = parts.pop() ?? '';
    lines.push(...parts);
  });
  children.push(child);
  return { lines, child };
}

/** Resolves when `check` holds (checked every 20 ms; the caller bounds the wait with `within`). */
function until(check: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      if (!check()) return;
      clearInterval(timer);
      resolve();
    }, 20);
    timers.push(timer);
  });
}

/**
 * A subscriber speaking MQTT on a socket itself (MQTT.js reads the next packet only once it has acknowledged
 * the last, so it cannot show what the broker sends ahead): it sends each PUBACK two event-loop turns after its
 * PUBLISH and counts how many were unacknowledged at once.
 */
async function slowSubscriber(
  b: MqttBrokerHandle,
  connect: { protocolVersion: 4 | 5; properties?: IConnectPacket['properties'] },
  filter: string,
): Promise<{ got: string[]; most(): number }> {
  let outstanding = 0;
  let most = 0;
  const got: string[] = [];
  const opts = { protocolVersion: connect.protocolVersion };
  const socket = tcpConnect(port(b), '127.0.0.1');
  sockets.push(socket);
  const parser = mqttParser(opts);
  const suback = new Promise<void>((resolve) =>
    parser.on('packet', (p) => {
      if (p.cmd === 'suback') return resolve();
      if (p.cmd !== 'publish') return;
      outstanding++;
      most = Math.max(most, outstanding);
      got.push(p.payload.toString());
      setImmediate(() =>
        setImmediate(() => {
          outstanding--;
          socket.write(generate({ cmd: 'puback', messageId: p.messageId! }, opts));
        }),
      );
    }),
  );
  socket.on('data', (d) => parser.parse(d));
  socket.write(
    generate(
      {
        cmd: 'connect',
        protocolId: 'MQTT',
        clean: true,
        clientId: `slow-${connect.protocolVersion}`,
        keepalive: 0,
        ...connect,
      },
      opts,
    ),
  );
  socket.write(
    generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] }, opts),
  );
  await within(suback, 5000, 'SUBACK');
  return { got, most: () => most };
}

describe('shared subscriptions ($share/<group>/<filter>, MQTT 5 §4.8.2)', () => {
  it('a v5 CONNACK says Shared Subscription Available; SUBACK grants $share/ (not 0x9E)', async () => {
    const b = await startBroker();
    const c = await client(b, { protocolVersion: 5, clientId: 'share-probe' });
    const granted = await c.subscribeAsync('$share/g/s/#', { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
  });

  describe.skipIf(missing('cmd:mosquitto_sub'))('with the mosquitto clients', () => {
    for (const version of ['mqttv5', 'mqttv311'] as const) {
      it(`two mosquitto_sub -V ${version} in one group: each message reaches exactly one of them, both get some; an ordinary subscriber gets all`, async () => {
        const b = await startBroker();
        const joined = subscribes(b, 3);
        const share = ['-V', version, '-q', '1', '-t', '$share/workers/jobs/+', '-F', '%t|%p'];
        const m1 = mosquittoSub(b, [...share, '-i', 'member-1']);
        const m2 = mosquittoSub(b, [...share, '-i', 'member-2']);
        const all = mosquittoSub(b, [
          '-V',
          version,
          '-q',
          '1',
          '-t',
          'jobs/+',
          '-i',
          'watcher',
          '-F',
          '%t|%p',
        ]);
        await within(joined, 10_000, 'three mosquitto_sub to subscribe');

        const n = 40;
        const input = Array.from({ length: n }, (_, i) => `job-${i}`).join('\n');
        const pub = await execa(
          'mosquitto_pub',
          ['-h', '127.0.0.1', '-p', String(port(b)), '-V', version, '-q', '1', '-t', 'jobs/a', '-l'],
          { input, reject: false, timeout: 15_000 },
        );
        expect(pub.exitCode).toBe(0);
        await within(
          until(() => all.lines.length >= n && m1.lines.length + m2.lines.length >= n),
          15_000,
          `${n} messages at the watcher and at the group`,
        );
        const expected = Array.from({ length: n }, (_, i) => `jobs/a|job-${i}`);
        expect(all.lines).toEqual(expected);
        // one member per message: together exactly the n messages, none twice
        expect([...m1.lines, ...m2.lines].sort()).toEqual([...expected].sort());
        // random choice among two members: all 40 to one member has probability 2^-39
        expect(m1.lines.length).toBeGreaterThan(0);
        expect(m2.lines.length).toBeGreaterThan(0);
      });
    }
  });

  it('a member that leaves (UNSUBSCRIBE, or its connection ends) gets no more; the rest of the group gets all', async () => {
    const b = await startBroker();
    const a = await client(b, { protocolVersion: 5, clientId: 'a' });
    const c = await client(b, { protocolVersion: 5, clientId: 'c' });
    const got: Record<string, string[]> = { a: [], c: [] };
    a.on('message', (_t, p) => got.a!.push(p.toString()));
    c.on('message', (_t, p) => got.c!.push(p.toString()));
    await a.subscribeAsync('$share/g/t', { qos: 1 });
    await c.subscribeAsync('$share/g/t', { qos: 1 });
    await a.unsubscribeAsync('$share/g/t');
    const pub = await client(b, { protocolVersion: 5, clientId: 'p' });
    for (let i = 0; i < 10; i++) await pub.publishAsync('t', `m${i}`, { qos: 1 });
    await within(
      until(() => got.c!.length >= 10),
      10_000,
      'the remaining member to get all 10',
    );
    expect(got.a).toEqual([]);
    expect(got.c).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`));
  });

  it('a malformed shared filter ($share/g with no filter, an empty ShareName) closes the connection [MQTT-4.8.2-1/2]', async () => {
    const b = await startBroker();
    // ($share/g+/t is one too, but MQTT.js refuses to send it)
    for (const bad of ['$share/g', '$share//t']) {
      const c = await client(b, { protocolVersion: 5, clientId: `bad-${bad.length}` });
      const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
      c.subscribe(bad, { qos: 0 });
      await within(closed, 5000, `the broker to close on ${bad}`);
    }
  });
});

describe('Receive Maximum on what the broker sends (MQTT 5 §4.9 [MQTT-3.3.4-9])', () => {
  it('a client with Receive Maximum 1 never has two QoS 1 messages unacknowledged during a QoS 1 flood, and gets them all in order', async () => {
    const b = await startBroker();
    const sub = await slowSubscriber(b, { protocolVersion: 5, properties: { receiveMaximum: 1 } }, 'flood/#');
    const pub = await client(b, { protocolVersion: 5, clientId: 'flooder' });
    const n = 50;
    await Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync('flood/x', `f${i}`, { qos: 1 })));
    await within(
      until(() => sub.got.length >= n),
      15_000,
      `${n} messages at the slow client`,
    );
    expect(sub.most()).toBe(1);
    expect(sub.got).toEqual(Array.from({ length: n }, (_, i) => `f${i}`));
  });

  it('the broker cap (outboundInflightMaximum, a cloud persona`s) applies to an MQTT 3.1.1 client too', async () => {
    const b = await startBroker({ limits: { outboundInflightMaximum: 2 } });
    // MQTT.js acknowledges a PUBLISH before it reads the next: this subscriber speaks MQTT on a socket itself
    const sub = await slowSubscriber(b, { protocolVersion: 4 }, 'cap/#');
    const pub = await client(b, { protocolVersion: 4, clientId: 'p311' });
    const n = 30;
    await Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync('cap/x', `c${i}`, { qos: 1 })));
    await within(
      until(() => sub.got.length >= n),
      15_000,
      `${n} messages at the 3.1.1 client`,
    );
    expect(sub.most()).toBe(2);
    expect(sub.got).toEqual(Array.from({ length: n }, (_, i) => `c${i}`));
  });

  it.skipIf(missing('cmd:mosquitto_sub'))(
    'mosquitto_sub -V mqttv5 -D connect receive-maximum 1 gets a 200-message QoS 1 flood from mosquitto_pub -l whole and in order',
    async () => {
      const b = await startBroker();
      const joined = subscribes(b, 1);
      const sub = mosquittoSub(b, [
        ...['-V', 'mqttv5', '-q', '1', '-t', 'burst/t', '-i', 'rm1'],
        ...['-D', 'connect', 'receive-maximum', '1'],
      ]);
      await within(joined, 10_000, 'mosquitto_sub to subscribe');
      const n = 200;
      const lines = Array.from({ length: n }, (_, i) => `b${i}`);
      const pub = await execa(
        'mosquitto_pub',
        ['-h', '127.0.0.1', '-p', String(port(b)), '-V', 'mqttv5', '-q', '1', '-t', 'burst/t', '-l'],
        { input: lines.join('\n'), reject: false, timeout: 20_000 },
      );
      expect(pub.exitCode).toBe(0);
      await within(
        until(() => sub.lines.length >= n),
        20_000,
        `${n} messages at mosquitto_sub`,
      );
      expect(sub.lines).toEqual(lines);
    },
  );
});

describe.skipIf(missing('cmd:mosquitto_sub'))('Receive Maximum with QoS 2 and the mosquitto clients', () => {
  it('mosquitto_sub -D connect receive-maximum 1 at QoS 2 (libmosquitto calls a second unreleased PUBLISH a protocol error) gets a QoS 2 flood whole', async () => {
    const b = await startBroker();
    const joined = subscribes(b, 1);
    const sub = mosquittoSub(b, [
      ...['-V', 'mqttv5', '-q', '2', '-t', 'q2/t', '-i', 'rm1-q2'],
      ...['-D', 'connect', 'receive-maximum', '1'],
    ]);
    await within(joined, 10_000, 'mosquitto_sub to subscribe');
    const n = 50;
    const lines = Array.from({ length: n }, (_, i) => `q${i}`);
    const pub = await execa(
      'mosquitto_pub',
      ['-h', '127.0.0.1', '-p', String(port(b)), '-V', 'mqttv5', '-q', '2', '-t', 'q2/t', '-l'],
      { input: lines.join('\n'), reject: false, timeout: 20_000 },
    );
    expect(pub.exitCode).toBe(0);
    await within(
      until(() => sub.lines.length >= n),
      20_000,
      `${n} QoS 2 messages at mosquitto_sub`,
    );
    expect(sub.lines).toEqual(lines);
  });
});

describe('outbound topic aliases (MQTT 5 §3.3.2.3.4)', () => {
  it('aliases only up to the client`s Topic Alias Maximum; the first PUBLISH on a topic carries it, later ones an empty topic; MQTT.js maps them back', async () => {
    const b = await startBroker();
    const wire: Array<{ topic: string; alias: number | undefined }> = [];
    const got: string[] = [];
    const sub = await client(b, {
      protocolVersion: 5,
      clientId: 'aliased',
      properties: { topicAliasMaximum: 2 },
    });
    sub.on('packetreceive', (p) => {
      if (p.cmd === 'publish') {
        const pub = p as IPublishPacket;
        wire.push({ topic: pub.topic, alias: pub.properties?.topicAlias });
      }
    });
    sub.on('message', (t, p) => got.push(`${t}=${p.toString()}`));
    await sub.subscribeAsync('al/#', { qos: 0 });
    const pub = await client(b, { protocolVersion: 5, clientId: 'al-pub' });
    const sent: string[] = [];
    for (let round = 0; round < 3; round++) {
      for (const t of ['al/one', 'al/two', 'al/three']) {
        sent.push(`${t}=${round}`);
        await pub.publishAsync(t, String(round), { qos: 1 });
      }
    }
    await within(
      until(() => got.length >= sent.length),
      10_000,
      'the aliased messages',
    );
    expect(got).toEqual(sent);
    // round 0 sets aliases 1 and 2 with the topic; al/three finds none left and goes as itself
    expect(wire.slice(0, 3)).toEqual([
      { topic: 'al/one', alias: 1 },
      { topic: 'al/two', alias: 2 },
      { topic: 'al/three', alias: undefined },
    ]);
    expect(wire.slice(3, 6)).toEqual([
      { topic: '', alias: 1 },
      { topic: '', alias: 2 },
      { topic: 'al/three', alias: undefined },
    ]);
    expect(wire.every((w) => w.alias === undefined || w.alias <= 2)).toBe(true);
  });

  it('a client without Topic Alias Maximum gets no alias [MQTT-3.1.2-26]; the broker cap lowers the client`s', async () => {
    const b = await startBroker({ limits: { outboundTopicAliasMaximum: 1 } });
    const seen = async (clientId: string, properties: mqtt.IClientOptions['properties']) => {
      const wire: Array<number | undefined> = [];
      const c = await client(b, { protocolVersion: 5, clientId, ...(properties ? { properties } : {}) });
      c.on('packetreceive', (p) => {
        if (p.cmd === 'publish') wire.push((p as IPublishPacket).properties?.topicAlias);
      });
      await c.subscribeAsync(`na/${clientId}/#`, { qos: 0 });
      const pub = await client(b, { protocolVersion: 5, clientId: `${clientId}-pub` });
      for (const t of ['a', 'b', 'a', 'b']) await pub.publishAsync(`na/${clientId}/${t}`, t, { qos: 1 });
      await within(
        until(() => wire.length >= 4),
        10_000,
        `4 messages at ${clientId}`,
      );
      return wire;
    };
    expect(await seen('plain', undefined)).toEqual([undefined, undefined, undefined, undefined]);
    expect(await seen('wants10', { topicAliasMaximum: 10 })).toEqual([1, undefined, 1, undefined]);
  });
});

describe('enhanced authentication (MQTT 5 §4.12): not offered, as AWS IoT Core', () => {
  it('a CONNECT with an Authentication Method gets CONNACK 0x8C Bad authentication method (MQTT.js)', async () => {
    const b = await startBroker();
    await expect(
      mqtt.connectAsync(endpointOf(b, 'mqtt').url!, {
        protocolVersion: 5,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        properties: { authenticationMethod: 'SCRAM-SHA-256' },
      }),
    ).rejects.toMatchObject({ code: 0x8c });
  });

  it.skipIf(missing('cmd:mosquitto_pub'))(
    'mosquitto_pub -D connect authentication-method is refused with "Bad authentication method"',
    async () => {
      const b = await startBroker();
      const pub = await execa(
        'mosquitto_pub',
        [
          ...['-h', '127.0.0.1', '-p', String(port(b)), '-V', 'mqttv5', '-t', 'x', '-m', 'y'],
          ...['-D', 'connect', 'authentication-method', 'SCRAM-SHA-256'],
        ],
        { reject: false, timeout: 10_000 },
      );
      expect(pub.exitCode).not.toBe(0);
      expect(pub.stderr).toMatch(/bad authentication method/i);
    },
  );
});
