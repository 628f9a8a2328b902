import { execa } from 'execa';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { type MqttBrokerHandle, start } from '../../simulators/mqtt-broker/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';

let pki: PkiHandle;
let broker: MqttBrokerHandle | undefined;
const clients: mqtt.MqttClient[] = [];
beforeAll(async () => {
  pki = await startPki({ name: 'pki' });
});
afterAll(() => pki.stop());
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  await broker?.stop();
  broker = undefined;
});

async function startBroker(extra: Partial<Parameters<typeof start>[0]> = {}): Promise<MqttBrokerHandle> {
  const cert = await pki.issueServer(['localhost']);
  broker = await start({
    name: 'broker',
    listeners: [{ protocol: 'mqtt' }, { protocol: 'mqtts' }, { protocol: 'wss' }],
    tls: { certPem: cert.chainPem, keyPem: cert.keyPem, alpn: ['x-amzn-mqtt-ca', 'mqtt'] },
    ...extra,
  });
  return broker;
}

async function client(url: string, opts: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const c = await mqtt.connectAsync(url, {
    ca: [pki.root.certPem],
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...opts,
  });
  clients.push(c);
  return c;
}

const nextMessage = (c: mqtt.MqttClient) =>
  within(
    new Promise<{ topic: string; payload: string; retain: boolean; qos: number }>((resolve) =>
      c.once('message', (topic, p, packet) =>
        resolve({ topic, payload: p.toString(), retain: packet.retain, qos: packet.qos }),
      ),
    ),
    5000,
    'message',
  );

describe('mqtt-broker MQTT 3.1.1 features with MQTT.js', () => {
  it('keeps retained messages, carries QoS 0/1/2, and acknowledges UNSUBSCRIBE', async () => {
    const b = await startBroker();
    const url = endpointOf(b, 'mqtt').url!;
    const pub = await client(url, { clientId: 'pub' });
    await pub.publishAsync('r/state', 'on', { qos: 1, retain: true });
    const sub = await client(url, { clientId: 'sub' });
    const retained = nextMessage(sub);
    await sub.subscribeAsync('r/#', { qos: 2 });
    expect(await retained).toMatchObject({ topic: 'r/state', payload: 'on', retain: true });
    for (const qos of [0, 1, 2] as const) {
      const got = nextMessage(sub);
      await pub.publishAsync(`r/q${qos}`, `qos ${qos}`, { qos });
      expect(await got).toMatchObject({ topic: `r/q${qos}`, payload: `qos ${qos}`, qos, retain: false });
    }
    const unsuback = await sub.unsubscribeAsync('r/#');
    expect(unsuback?.cmd).toBe('unsuback');
  });

  it('publishes the will of a client that vanishes', async () => {
    const b = await startBroker();
    const url = endpointOf(b, 'mqtt').url!;
    const watcher = await client(url, { clientId: 'watcher' });
    await watcher.subscribeAsync('wills/#', { qos: 1 });
    const doomed = await client(url, {
      clientId: 'doomed',
      will: { topic: 'wills/doomed', payload: Buffer.from('gone'), qos: 1, retain: false },
    });
    const will = nextMessage(watcher);
    doomed.stream.destroy(); // no DISCONNECT: the will goes out [MQTT-3.1.2-8]
    expect(await will).toMatchObject({ topic: 'wills/doomed', payload: 'gone' });
  });

  it('negotiates ALPN x-amzn-mqtt-ca or mqtt over TLS and carries messages over wss', async () => {
    const b = await startBroker();
    const tlsUrl = endpointOf(b, 'mqtts').url!.replace('127.0.0.1', 'localhost');
    for (const proto of ['x-amzn-mqtt-ca', 'mqtt']) {
      const c = await client(tlsUrl, { clientId: `alpn-${proto}`, ALPNProtocols: [proto] });
      expect((c.stream as unknown as { alpnProtocol?: string }).alpnProtocol).toBe(proto);
    }
    // No common protocol: the server fails the handshake (OpenSSL: no_application_protocol).
    const refused = new Promise<{ code?: string }>((r) => b.events.onceEvent('tls-client-error', r));
    await expect(
      mqtt.connectAsync(tlsUrl, {
        ca: [pki.root.certPem],
        ALPNProtocols: ['http/1.1'],
        reconnectPeriod: 0,
        connectTimeout: 5000,
      }),
    ).rejects.toThrow(/no application protocol|alert/i);
    expect((await within(refused, 5000, 'tls-client-error')).code).toBe('ERR_SSL_NO_APPLICATION_PROTOCOL');
    const ws = await client(endpointOf(b, 'wss').url!.replace('127.0.0.1', 'localhost'), { clientId: 'ws' });
    await ws.subscribeAsync('w/t', { qos: 1 });
    const got = nextMessage(ws);
    await ws.publishAsync('w/t', 'over wss', { qos: 1 });
    expect((await got).payload).toBe('over wss');
  });
});

describe('mqtt-broker with names Object.prototype has (GHSA-52qw-whmv-87c5)', () => {
  it.each([4, 5] as const)(
    'client ids and topic filters "constructor", "__proto__", "toString" are ordinary names (MQTT %i)',
    async (protocolVersion) => {
      const b = await startBroker();
      const url = endpointOf(b, 'mqtt').url!;
      for (const name of ['constructor', '__proto__', 'toString']) {
        const c = await client(url, { clientId: name, protocolVersion });
        // never subscribed: an UNSUBSCRIBE of it is answered, not taken for an existing subscription
        await c.unsubscribeAsync(name);
        await c.subscribeAsync(name, { qos: 1 });
        const got = nextMessage(c);
        await c.publishAsync(name, `to ${name}`, { qos: 1 });
        expect((await got).payload).toBe(`to ${name}`);
        await c.unsubscribeAsync(name);
      }
      // the broker still serves: a second connection with one of those ids takes the session over
      const again = await client(url, { clientId: 'constructor', protocolVersion });
      await again.publishAsync('x/y', 'still serving', { qos: 1 });
      expect(b.stats().clients).toBe(4);
    },
  );
});

describe('mqtt-broker protocol faults', () => {
  it('refuses CONNACK with the given return code, at start and at run time', async () => {
    const b = await startBroker({ faults: { refuseConnect: 3 } });
    const url = endpointOf(b, 'mqtt').url!;
    const fault = new Promise<{ kind: string }>((r) => b.events.onceEvent('fault', r));
    await expect(mqtt.connectAsync(url, { reconnectPeriod: 0 })).rejects.toThrow(/Server unavailable/i);
    expect((await fault).kind).toBe('refuse-connect');
    b.setFault({ refuseConnect: 5 });
    await expect(mqtt.connectAsync(url, { reconnectPeriod: 0 })).rejects.toThrow(/Not authorized/i);
    b.setFault();
    await client(url, { clientId: 'ok' });
    expect(b.stats().faults).toBe(2);
    expect(() => b.setFault({ refuseConnect: 9 } as never)).toThrow(/refuseConnect/);
  });

  it('withholds PUBACK: the QoS 1 publish never completes while the message is delivered', async () => {
    const b = await startBroker();
    const url = endpointOf(b, 'mqtt').url!;
    const sub = await client(url, { clientId: 'sub' });
    await sub.subscribeAsync('p/#', { qos: 1 });
    const pub = await client(url, { clientId: 'pub' });
    b.setFault({ withholdPuback: true });
    const fault = new Promise<{ kind: string }>((r) => b.events.onceEvent('fault', r));
    const delivered = nextMessage(sub);
    const acked = pub.publishAsync('p/1', 'x', { qos: 1 }).then(() => 'acked');
    expect((await delivered).payload).toBe('x');
    expect((await fault).kind).toBe('withhold-puback');
    // The PUBACK would come on the same connection right after delivery; a QoS 0 round trip on it
    // proves the broker has moved on without acknowledging.
    const probe = nextMessage(sub);
    await pub.publishAsync('p/probe', 'probe', { qos: 0 });
    expect((await probe).payload).toBe('probe');
    expect(await Promise.race([acked, Promise.resolve('pending')])).toBe('pending');
  });

  it('drops the connection after N messages', async () => {
    const b = await startBroker({ faults: { dropAfterMessages: 3 } });
    const pub = await client(endpointOf(b, 'mqtt').url!, { clientId: 'counted' });
    const closed = within(new Promise<void>((r) => pub.once('close', () => r())), 5000, 'close');
    const fault = new Promise<{ kind: string; detail: string }>((r) => b.events.onceEvent('fault', r));
    for (let i = 0; i < 3; i++) pub.publish('d/t', String(i), { qos: 0 });
    await closed;
    expect(await fault).toMatchObject({ kind: 'drop-connection', detail: expect.stringMatching(/after 3/) });
  });
});

describe.skipIf(missing('cmd:mosquitto_pub', 'cmd:mosquitto_sub'))(
  'mqtt-broker with the mosquitto clients',
  () => {
    it('mosquitto_pub negotiates ALPN x-amzn-mqtt-ca (--tls-alpn)', async () => {
      const b = await startBroker();
      const published = new Promise<{ topic: string }>((r) => b.events.onceEvent('publish', r));
      const conn = [
        '-h',
        'localhost',
        '-p',
        String(endpointOf(b, 'mqtts').port),
        '--cafile',
        pki.trust.bundlePath,
      ];
      const pub = await execa(
        'mosquitto_pub',
        [...conn, '--tls-alpn', 'x-amzn-mqtt-ca', '-t', 'a/l', '-m', 'x'],
        {
          reject: false,
          timeout: 10_000,
        },
      );
      expect(pub.exitCode, pub.stderr).toBe(0);
      expect((await within(published, 5000, 'publish')).topic).toBe('a/l');
      const bad = await execa('mosquitto_pub', [...conn, '--tls-alpn', 'http/1.1', '-t', 'a/l', '-m', 'x'], {
        reject: false,
        timeout: 10_000,
      });
      expect(bad.exitCode).not.toBe(0);
    });

    it('retained, QoS 2, will and unsubscribe over tcp and tls', async () => {
      const b = await startBroker();
      for (const [name, tls] of [
        ['mqtt', []],
        ['mqtts', ['--cafile', pki.trust.bundlePath]],
      ] as const) {
        const conn = ['-h', 'localhost', '-p', String(endpointOf(b, name).port), ...tls];
        const pub = await execa(
          'mosquitto_pub',
          [...conn, '-t', `m/${name}/ret`, '-m', 'kept', '-r', '-q', '2'],
          {
            reject: false,
            timeout: 10_000,
          },
        );
        expect(pub.exitCode, pub.stderr).toBe(0);
        // -C 1: the retained message alone ends mosquitto_sub; -v prints the topic.
        const sub = await execa(
          'mosquitto_sub',
          [...conn, '-t', `m/${name}/#`, '-q', '2', '-C', '1', '-v', '-W', '10'],
          {
            reject: false,
          },
        );
        expect(sub.stdout.trim()).toBe(`m/${name}/ret kept`);
      }
      // A will: mosquitto_sub with --will-* killed with SIGKILL (no DISCONNECT).
      const conn = ['-h', 'localhost', '-p', String(endpointOf(b, 'mqtt').port)];
      const watcher = await client(endpointOf(b, 'mqtt').url!, { clientId: 'watcher' });
      await watcher.subscribeAsync('m/will', { qos: 1 });
      const subscribed = new Promise<void>((r) =>
        b.events.onEvent('subscribe', (s) => s.topics.includes('m/idle') && r()),
      );
      const doomed = execa(
        'mosquitto_sub',
        [...conn, '-t', 'm/idle', '--will-topic', 'm/will', '--will-payload', 'bye', '--will-qos', '1'],
        { reject: false },
      );
      await within(subscribed, 5000, 'mosquitto_sub subscribed');
      const will = nextMessage(watcher);
      doomed.kill('SIGKILL');
      await doomed;
      expect((await will).payload).toBe('bye');
      // UNSUBACK: mosquitto_sub -U unsubscribes after subscribing and exits cleanly on the UNSUBACK.
      const unsub = await execa('mosquitto_sub', [...conn, '-t', 'm/x', '-U', 'm/x', '-E', '-W', '10'], {
        reject: false,
      });
      expect(unsub.exitCode, unsub.stderr).toBe(0);
    });
  },
);
