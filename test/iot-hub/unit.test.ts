import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { buildSas, deriveDeviceKey, parseSas, start, verifySas } from '../../simulators/iot-hub/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { configure, deviceClient, type HubLab, Message, startHubLab, within } from './helpers.js';

const KEY = Buffer.alloc(32, 9).toString('base64');

describe('SAS tokens', () => {
  const now = Date.UTC(2030, 0, 1);
  const se = now / 1000 + 3600;
  it('verifies what buildSas signs, and names why others fail', () => {
    const t = buildSas('hub.example.com/devices/d1', KEY, se);
    expect(parseSas(t)).toMatchObject({ resource: 'hub.example.com/devices/d1', expiry: se });
    expect(verifySas(t, 'hub.example.com/devices/d1', [KEY], { now }).ok).toBe(true);
    expect(verifySas(t, 'hub.example.com/devices/d2', [KEY], { now })).toMatchObject({
      reason: 'wrong-resource',
    });
    expect(verifySas(t, 'hub.example.com/devices/d1', [KEY], { now: (se + 1) * 1000 })).toMatchObject({
      reason: 'expired',
    });
    const other = Buffer.alloc(32, 1).toString('base64');
    expect(verifySas(t, 'hub.example.com/devices/d1', [other], { now })).toMatchObject({
      reason: 'bad-signature',
    });
    expect(verifySas('garbage', 'x', [KEY], { now })).toMatchObject({ reason: 'malformed' });
  });

  it('ignores a lab port in the resource only when asked', () => {
    const t = buildSas('hub.example.com:8883/devices/d1', KEY, se);
    expect(verifySas(t, 'hub.example.com/devices/d1', [KEY], { now }).ok).toBe(false);
    expect(verifySas(t, 'hub.example.com/devices/d1', [KEY], { now, ignorePort: true }).ok).toBe(true);
  });

  it('derives group enrollment keys as HMAC(group key, registration id)', () => {
    // Reference: printf sensor-7 | openssl dgst -sha256 -mac HMAC -macopt hexkey:0909…09 -binary | base64
    expect(deriveDeviceKey(KEY, 'sensor-7')).toBe('jwBPGip0nEs9xu/XjxXP3qyo4uAm4l4oVtZJI0FOosA=');
  });
});

describe('iot-hub simulator', () => {
  let pki: PkiHandle;
  let lab: HubLab | undefined;
  beforeAll(async () => {
    pki = await startPki({ name: 'pki' });
  });
  afterAll(() => pki.stop());
  afterEach(async () => {
    await lab?.stop();
    lab = undefined;
  });

  it('rejects bad options with E_BAD_OPTION naming the field', async () => {
    await expect(
      start({ tls: { certPem: 'x', keyPem: 'y' }, ports: { mqtts: -1 } } as never),
    ).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
      message: expect.stringContaining('ports.mqtts'),
    });
    await expect(start({} as never)).rejects.toMatchObject({ code: 'E_BAD_OPTION' });
  });

  it('a client sending garbage on each port does not take the hub down; stop() is idempotent', async () => {
    lab = await startHubLab(pki);
    lab.hub.addDevice('dev-g');
    for (const name of ['amqps', 'mqtts', 'https']) {
      const ep = endpointOf(lab.hub, name);
      await new Promise<void>((resolve) => {
        const s = tlsConnect(
          { host: '127.0.0.1', port: ep.port, ca: lab!.ca, servername: 'localhost' },
          () => {
            s.write(Buffer.alloc(64, 0xff));
          },
        );
        s.on('close', () => resolve());
        s.on('error', () => undefined);
        s.setTimeout(1500, () => s.destroy());
      });
    }
    const c = deviceClient(lab, 'Amqp', 'dev-g');
    await configure(c, lab);
    await within(c.open(), 8000, 'open after garbage');
    await within(c.sendEvent(new Message('still here')), 8000, 'send');
    await c.close();
    expect(lab.hub.messages('dev-g')).toHaveLength(1);
    await lab.hub.stop();
    await lab.hub.stop();
  });

  it('queues C2D for a device that is offline and delivers it when it connects (Mqtt)', async () => {
    lab = await startHubLab(pki);
    lab.hub.addDevice('dev-q');
    lab.hub.sendC2D('dev-q', 'while you were away');
    const sent = new Promise((resolve) => lab!.hub.events.onceEvent('c2d-sent', resolve));
    const c = deviceClient(lab, 'Mqtt', 'dev-q');
    await configure(c, lab);
    const got = new Promise<string>((resolve) =>
      c.on('message', (m: InstanceType<typeof Message>) => resolve(String(m.data))),
    );
    await within(c.open(), 8000, 'open');
    expect(await within(got, 8000, 'queued C2D')).toBe('while you were away');
    expect(await within(sent, 1000, 'c2d-sent')).toMatchObject({ deviceId: 'dev-q', transport: 'mqtt' });
    await c.close();
  });

  it('answers a device twin GET over Mqtt (to the asking device only)', async () => {
    lab = await startHubLab(pki);
    lab.hub.addDevice('dev-t');
    const c = deviceClient(lab, 'Mqtt', 'dev-t');
    await configure(c, lab);
    await within(c.open(), 8000, 'open');
    const twin = await within(c.getTwin(), 8000, 'getTwin');
    expect(twin.properties.desired.$version).toBe(1);
    await c.close();
  });
});
