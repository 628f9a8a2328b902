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

  it('tells which alert a client sent when it rejected the certificate', async () => {
    const b = await startAll();
    const seen = new Promise<{ alert?: string }>((resolve) =>
      b.events.onceEvent('tls-client-error', resolve),
    );
    // A client that trusts only the system store rejects the lab certificate.
    await expect(
      mqtt.connectAsync(endpointOf(b, 'mqtts').url!.replace('127.0.0.1', 'localhost'), {
        reconnectPeriod: 0,
        connectTimeout: 3000,
      }),
    ).rejects.toThrow();
    expect((await seen).alert).toBe('unknown_ca');
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
