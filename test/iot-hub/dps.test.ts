import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type DpsOptions,
  deriveDeviceKey,
  registeredKey,
  registerKey,
} from '../../simulators/iot-hub/index.js';
import { type DpsLab, type ProvisionTransport, startDpsLab } from './dps-helpers.js';
import { configure, deviceClient, HUB_HOST, hubTestBench, Message, within } from './helpers.js';

const bench = hubTestBench();
/** The test's DPS lab (stopped after it by the bench). */
let env: DpsLab | undefined;

async function startAll(extra: Partial<DpsOptions> = {}): Promise<DpsLab> {
  env = bench.own(await startDpsLab(bench.pki, extra));
  return env;
}

/** Registers with the real provisioning SDK in a child process (NODE_EXTRA_CA_CERTS = lab root). */
const provision = (transport: ProvisionTransport, regId: string, key: string) =>
  env!.provision(transport, regId, { key });

describe('dps with the Azure IoT provisioning SDK', () => {
  for (const transport of ['Http', 'Mqtt', 'Amqp'] as const) {
    it(`${transport}: an individual enrollment is assigned to the lab hub, then the device sends`, async () => {
      const { lab: l, dps: d } = await startAll();
      const regId = `reg-${transport.toLowerCase()}`;
      const key = d.addEnrollment(regId, undefined, `device-${transport.toLowerCase()}`);
      const assigned = new Promise((resolve) => d.events.onceEvent('registration-assigned', resolve));
      const out = await provision(transport, regId, key);
      expect(out.error).toBeUndefined();
      expect(out.result).toMatchObject({
        assignedHub: HUB_HOST,
        deviceId: `device-${transport.toLowerCase()}`,
      });
      expect(await within(assigned, 2000, 'registration-assigned')).toMatchObject({
        registrationId: regId,
        transport: transport === 'Http' ? 'https' : transport.toLowerCase(),
      });
      // The hub now knows the device, with the enrollment's key.
      expect(l.hub.deviceKey(out.result!.deviceId)).toBe(key);
      const c = bench.own(deviceClient(l, 'Mqtt', out.result!.deviceId, key));
      await configure(c, l);
      await within(c.open(), 8000, 'open');
      await within(c.sendEvent(new Message('provisioned')), 8000, 'sendEvent');
      expect(l.hub.messages(out.result!.deviceId).map((m) => m.body.toString())).toEqual(['provisioned']);
    });
  }

  it('Mqtt: a group enrollment accepts a derived key', async () => {
    const { lab: l, dps: d } = await startAll();
    const groupKey = d.addGroup('sensors');
    const key = deriveDeviceKey(groupKey, 'sensor-7');
    const out = await provision('Mqtt', 'sensor-7', key);
    expect(out.result).toMatchObject({ assignedHub: HUB_HOST, deviceId: 'sensor-7' });
    expect(l.hub.deviceKey('sensor-7')).toBe(key);
  });

  it('a hub in another process learns assigned devices through the shared registry directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fl-registry-'));
    try {
      // The DPS assigns by host name only (no handle): as when DPS and hub run in different containers.
      const { dps: d } = await startAll({ hub: HUB_HOST, registryDir: dir });
      const key = deriveDeviceKey(d.addGroup('remote'), 'remote-1');
      const out = await provision('Mqtt', 'remote-1', key);
      expect(out.result).toMatchObject({ assignedHub: HUB_HOST, deviceId: 'remote-1' });
      expect(registeredKey(dir, 'remote-1')).toBe(key);
      // Names that could escape the directory are never read or written.
      registerKey(dir, '../escape', key);
      expect(registeredKey(dir, '../escape')).toBeUndefined();
      expect(existsSync(join(dir, '..', 'escape.key'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // What the provisioning SDK 1.9 makes of a refusal: Http translates 401 to UnauthorizedError; Mqtt passes
  // mqtt.js's CONNACK 5 error through; Amqp reports the SASL auth failure as NotConnectedError.
  const refusals = {
    Http: { error: 'UnauthorizedError', message: /401002/ },
    Mqtt: { error: 'Error', message: /Not authorized/ },
    Amqp: { error: 'NotConnectedError', message: /.*/ },
  };
  for (const transport of ['Http', 'Mqtt', 'Amqp'] as const) {
    it(`${transport}: a wrong key is refused as the SDK reports it, and nothing is assigned`, async () => {
      const { dps: d } = await startAll();
      d.addEnrollment('reg-bad');
      const rejected = new Promise((resolve) => d.events.onceEvent('auth-rejected', resolve));
      const out = await provision(transport, 'reg-bad', Buffer.alloc(32, 1).toString('base64'));
      expect(out.error).toBe(refusals[transport].error);
      expect(out.message).toMatch(refusals[transport].message);
      expect(await within(rejected, 2000, 'auth-rejected')).toMatchObject({ reason: 'bad-signature' });
      expect(d.stats().assigned).toBe(0);
    });
  }
});
