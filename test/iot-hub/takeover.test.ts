import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { buildSas, type IotHubHandle, start as startHub } from '../../simulators/iot-hub/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { within } from '../helpers/within.js';

/**
 * A device that reconnects with its client id takes the session over (MQTT 3.1.1 §3.1.4 [MQTT-3.1.4-2]: the
 * server disconnects the existing client). C2D must then reach the new connection, whatever the old one's
 * close does afterwards.
 */
const HOST = 'localhost';
let pki: PkiHandle;
let hub: IotHubHandle | undefined;
const clients: MqttClient[] = [];
beforeAll(async () => {
  pki = await startPki({ name: 'pki' });
});
afterAll(() => pki.stop());
afterEach(async () => {
  for (const c of clients.splice(0)) await c.endAsync(true).catch(() => undefined);
  await hub?.stop();
  hub = undefined;
});

async function startLabHub(): Promise<IotHubHandle> {
  const cert = await pki.issueServer([HOST, '127.0.0.1']);
  hub = await startHub({ name: 'hub', hostName: HOST, tls: { certPem: cert.chainPem, keyPem: cert.keyPem } });
  return hub;
}

/** A device connection as the SDKs open it: clientId = device id, clean=false, SAS password. */
async function connectDevice(h: IotHubHandle, deviceId: string, clean = false): Promise<MqttClient> {
  const key = h.deviceKey(deviceId)!;
  const c = mqtt.connect({
    protocol: 'mqtts',
    host: '127.0.0.1',
    port: endpointOf(h, 'mqtts').port,
    servername: HOST,
    ca: pki.root.certPem,
    clientId: deviceId,
    clean,
    reconnectPeriod: 0,
    protocolVersion: 4,
    username: `${HOST}/${deviceId}/?api-version=2021-04-12`,
    password: buildSas(`${HOST}/devices/${deviceId}`, key, Math.floor(Date.now() / 1000) + 600),
  });
  clients.push(c);
  await within(
    new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', reject);
    }),
    5000,
    `${deviceId} CONNACK`,
  );
  return c;
}

const closed = (c: MqttClient) => new Promise<void>((resolve) => c.once('close', () => resolve()));
const nextMessage = (c: MqttClient) =>
  new Promise<{ topic: string; body: string }>((resolve) =>
    c.once('message', (topic, payload) => resolve({ topic, body: payload.toString() })),
  );

describe('iot-hub MQTT session takeover and C2D', () => {
  it('C2D reaches the connection that took the client id over (it subscribed again)', async () => {
    const h = await startLabHub();
    h.addDevice('dev-t');
    const first = await connectDevice(h, 'dev-t');
    await first.subscribeAsync('devices/dev-t/messages/devicebound/#', { qos: 1 });
    const firstClosed = closed(first);
    const second = await connectDevice(h, 'dev-t');
    await within(firstClosed, 5000, 'the first connection closed by the takeover');
    await second.subscribeAsync('devices/dev-t/messages/devicebound/#', { qos: 1 });
    const got = nextMessage(second);
    h.sendC2D('dev-t', 'after-takeover');
    const m = await within(got, 5000, 'C2D on the second connection');
    expect(m.body).toBe('after-takeover');
    expect(m.topic).toMatch(/^devices\/dev-t\/messages\/devicebound\//);
  });

  it('every later C2D message goes to the second connection, none is lost to the closed first one', async () => {
    const h = await startLabHub();
    h.addDevice('dev-u');
    const first = await connectDevice(h, 'dev-u');
    await first.subscribeAsync('devices/dev-u/messages/devicebound/#', { qos: 1 });
    const firstClosed = closed(first);
    const second = await connectDevice(h, 'dev-u');
    await second.subscribeAsync('devices/dev-u/messages/devicebound/#', { qos: 1 });
    await within(firstClosed, 5000, 'the first connection closed by the takeover');
    for (const body of ['one', 'two']) {
      const got = nextMessage(second);
      h.sendC2D('dev-u', body);
      expect((await within(got, 5000, `C2D ${body} on the second connection`)).body).toBe(body);
    }
  });

  it('a persistent session (clean=false) keeps the C2D subscription: the next connection receives without subscribing', async () => {
    const h = await startLabHub();
    h.addDevice('dev-p');
    const first = await connectDevice(h, 'dev-p');
    await first.subscribeAsync('devices/dev-p/messages/devicebound/#', { qos: 1 });
    const firstClosed = closed(first);
    const second = await connectDevice(h, 'dev-p');
    await within(firstClosed, 5000, 'the first connection closed by the takeover');
    const got = nextMessage(second);
    h.sendC2D('dev-p', 'kept');
    expect((await within(got, 5000, 'C2D through the kept subscription')).body).toBe('kept');
  });
});
