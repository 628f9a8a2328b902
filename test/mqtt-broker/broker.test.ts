import { execa } from 'execa';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { type MqttBrokerHandle, start } from '../../simulators/mqtt-broker/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { missing } from '../helpers/capability.js';

let pki: PkiHandle;
let broker: MqttBrokerHandle | undefined;
beforeAll(async () => {
  pki = await startPki({ name: 'pki' });
});
afterAll(() => pki.stop());
afterEach(async () => {
  await broker?.stop();
  broker = undefined;
});

async function startAll(extra: Partial<Parameters<typeof start>[0]> = {}): Promise<MqttBrokerHandle> {
  const cert = await pki.issueServer(['localhost', '127.0.0.1']);
  broker = await start({
    name: 'broker',
    listeners: [
      { protocol: 'mqtt' },
      { protocol: 'mqtts' },
      { protocol: 'ws' },
      { protocol: 'wss', path: '/mqtt' },
    ],
    tls: { certPem: cert.chainPem, keyPem: cert.keyPem },
    ...extra,
  });
  return broker;
}

/** Subscribes and publishes with MQTT.js over one URL; resolves with the message received. */
async function roundTrip(url: string, topic: string): Promise<string> {
  const opts = {
    ca: [pki.root.certPem],
    reconnectPeriod: 0,
    connectTimeout: 5000,
    protocolVersion: 4 as const,
  };
  const sub = await mqtt.connectAsync(url, { ...opts, clientId: `sub-${topic}` });
  const pub = await mqtt.connectAsync(url, { ...opts, clientId: `pub-${topic}` });
  try {
    await sub.subscribeAsync(topic, { qos: 1 });
    const got = new Promise<string>((resolve) => sub.once('message', (_t, p) => resolve(p.toString())));
    await pub.publishAsync(topic, `hello ${topic}`, { qos: 1 });
    return await got;
  } finally {
    await Promise.all([sub.endAsync(), pub.endAsync()]);
  }
}

describe('mqtt-broker', () => {
  it('carries QoS 1 messages over mqtt, mqtts, ws and wss with MQTT.js, and reports them', async () => {
    const b = await startAll();
    const published: string[] = [];
    b.events.onEvent('publish', (p) => published.push(p.topic));
    for (const name of ['mqtt', 'mqtts', 'ws', 'wss']) {
      const ep = endpointOf(b, name);
      const url = ep.url!.replace('127.0.0.1', 'localhost');
      expect(await roundTrip(url, `t/${name}`)).toBe(`hello t/${name}`);
    }
    expect(published).toEqual(['t/mqtt', 't/mqtts', 't/ws', 't/wss']);
    expect(b.stats().published).toBe(4);
  });

  it('rejects bad credentials with CONNACK "not authorized" and keeps serving others', async () => {
    const b = await startAll({ users: [{ username: 'dev', password: 's3cret' }] });
    const url = endpointOf(b, 'mqtt').url!;
    await expect(
      mqtt.connectAsync(url, { username: 'dev', password: 'nope', reconnectPeriod: 0 }),
    ).rejects.toThrow(/Bad username or password|Not authorized/i);
    const ok = await mqtt.connectAsync(url, { username: 'dev', password: 's3cret', reconnectPeriod: 0 });
    await ok.endAsync();
    expect(b.stats().rejected).toBe(1);
  });

  it('records a TLS client error when a Node client rejects the certificate (Node sends no alert: it verifies after the handshake)', async () => {
    const b = await startAll();
    const seen = new Promise<{ alert?: string; code?: string }>((resolve) =>
      b.events.onceEvent('tls-client-error', resolve),
    );
    await expect(
      mqtt.connectAsync(endpointOf(b, 'mqtts').url!.replace('127.0.0.1', 'localhost'), {
        reconnectPeriod: 0,
        connectTimeout: 3000,
      }),
    ).rejects.toThrow(/unable to get local issuer certificate/);
    const e = await seen;
    expect(e.alert).toBeUndefined();
    expect(e.code).toBe('ECONNRESET');
  });

  it('rejects options that cannot work, naming the field', async () => {
    await expect(start({ listeners: [{ protocol: 'mqtts' }] })).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
    });
    await expect(start({ listeners: [{ protocol: 'mqtts' }] })).rejects.toThrow(
      /listeners\[0\]\.protocol: mqtts needs the tls option/,
    );
  });

  describe.skipIf(missing('cmd:mosquitto_pub', 'cmd:mosquitto_sub'))('with the mosquitto clients', () => {
    it('mosquitto_sub receives what mosquitto_pub sends, over tcp and tls', async () => {
      const b = await startAll();
      for (const [name, tls] of [
        ['mqtt', []],
        ['mqtts', ['--cafile', pki.trust.bundlePath]],
      ] as const) {
        const ep = endpointOf(b, name);
        const conn = ['-h', 'localhost', '-p', String(ep.port), ...tls];
        const subscribed = new Promise<void>((resolve) => b.events.onceEvent('subscribe', () => resolve()));
        const sub = execa('mosquitto_sub', [...conn, '-t', `cli/${name}`, '-C', '1', '-W', '10'], {
          reject: false,
        });
        await subscribed;
        const pub = await execa(
          'mosquitto_pub',
          [...conn, '-t', `cli/${name}`, '-m', `via ${name}`, '-q', '1'],
          { reject: false, timeout: 10_000 },
        );
        expect(pub.exitCode, pub.stderr).toBe(0);
        const got = await sub;
        expect(got.stdout.trim()).toBe(`via ${name}`);
      }
    });

    it('an OpenSSL client (mosquitto_pub) that does not trust the lab root sends unknown_ca, and the broker says so', async () => {
      const b = await startAll();
      const seen = new Promise<{ alert?: string }>((resolve) =>
        b.events.onceEvent('tls-client-error', resolve),
      );
      const ep = endpointOf(b, 'mqtts');
      const pub = await execa(
        'mosquitto_pub',
        ['-h', 'localhost', '-p', String(ep.port), '--capath', '/etc/ssl/certs', '-t', 't', '-m', 'x'],
        {
          reject: false,
          timeout: 10_000,
        },
      );
      expect(pub.exitCode).not.toBe(0);
      expect((await seen).alert).toBe('unknown_ca');
    });
  });

  it('lets a persona decide with hooks: identity from the mTLS certificate, publish/subscribe policy, answers', async () => {
    const cert = await pki.issueServer(['localhost']);
    const seen: string[] = [];
    broker = await start({
      listeners: [{ protocol: 'mqtts' }],
      tls: { certPem: cert.chainPem, keyPem: cert.keyPem, clientCa: [pki.root.certPem] },
      hooks: {
        authenticate: async (c) =>
          c.peerCertificate?.subject?.CN === 'thing-1'
            ? true
            : { returnCode: 5, reason: 'unknown certificate' },
        authorizeSubscribe: async (c, topic) => topic.startsWith(`things/${c.clientId}/`),
        authorizePublish: async (c, topic) => topic.startsWith(`things/${c.clientId}/`),
        onPublish: async (c, topic, payload) => {
          seen.push(`${c.clientId} ${topic} ${payload.toString()}`);
          if (topic.endsWith('/ping')) await broker!.publish(`things/${c.clientId}/pong`, 'pong');
        },
      },
    });
    const url = endpointOf(broker, 'mqtts').url!.replace('127.0.0.1', 'localhost');
    const device = await pki.issueClient('thing-1');
    const c = await mqtt.connectAsync(url, {
      clientId: 'thing-1',
      ca: [pki.root.certPem],
      cert: device.chainPem,
      key: device.keyPem,
      reconnectPeriod: 0,
    });
    const granted = await c.subscribeAsync('things/thing-1/#', { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
    // A refused topic comes back as 0x80 in the SUBACK, which MQTT.js reports as a subscribe error.
    await expect(c.subscribeAsync('things/other/#', { qos: 1 })).rejects.toThrow(/Subscribe error/);
    const pong = new Promise<string>((resolve) => c.on('message', (t) => t.endsWith('/pong') && resolve(t)));
    await c.publishAsync('things/thing-1/ping', 'hi', { qos: 1 });
    expect(await pong).toBe('things/thing-1/pong');
    expect(seen).toEqual(['thing-1 things/thing-1/ping hi']);
    await c.endAsync();

    const stranger = await pki.issueClient('thing-2');
    await expect(
      mqtt.connectAsync(url, {
        clientId: 'thing-2',
        ca: [pki.root.certPem],
        cert: stranger.chainPem,
        key: stranger.keyPem,
        reconnectPeriod: 0,
      }),
    ).rejects.toThrow(/Not authorized/i);
    expect(broker.stats().rejected).toBe(1);
  });

  it('stop() ends open client connections', async () => {
    const b = await startAll();
    const c = await mqtt.connectAsync(endpointOf(b, 'mqtt').url!, { reconnectPeriod: 0 });
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    await b.stop();
    await closed;
    expect(c.connected).toBe(false);
    await c.endAsync(true);
  });
});
