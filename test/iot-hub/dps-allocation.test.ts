import { describe, expect, it } from 'vitest';
import { deriveDeviceKey, start as startHub } from '../../simulators/iot-hub/index.js';
import { startDpsLab } from './dps-helpers.js';
import { HUB_HOST, hubTestBench } from './helpers.js';

/**
 * DPS allocation across linked hubs and reprovisioning, with the official provisioning SDK: `hashed` spreads
 * registrations over the hubs (the same id always to the same hub), `static` / `iotHubs` pins them, and a
 * device that registers again after its enrollment moved lands on the new hub with the substatus of the
 * reprovision policy (deviceDataMigrated, deviceDataReset), or stays (updateHubAssignment: false).
 */
const HUB2 = 'hub2.iot.example.com';
const bench = hubTestBench();

async function twoHubs(extra: { allocationPolicy?: 'hashed' | 'static' } = {}) {
  const cert = await bench.pki.issueServer([HUB2], { file: 'hub2' });
  const hub2 = bench.own(
    await startHub({ name: 'hub2', hostName: HUB2, tls: { certPem: cert.chainPem, keyPem: cert.keyPem } }),
  );
  const env = bench.own(await startDpsLab(bench.pki, { linkedHubs: [hub2], ...extra }));
  return { env, hub1: env.lab.hub, hub2 };
}

describe('dps allocation policies and reprovisioning with the Azure IoT provisioning SDK', () => {
  it('hashed (the default): the devices of a group are spread over both hubs, each known only to its own', async () => {
    const { env: e, hub1, hub2: h2 } = await twoHubs();
    const groupKey = e.dps.addGroup('fleet');
    const placed: Record<string, string> = {};
    for (const regId of ['dev-a', 'dev-b', 'dev-c', 'dev-d', 'dev-e', 'dev-f']) {
      const out = await e.provision('Mqtt', regId, { key: deriveDeviceKey(groupKey, regId) });
      expect(out.error).toBeUndefined();
      placed[regId] = out.result!.assignedHub;
      const [mine, other] = out.result!.assignedHub === HUB2 ? [h2, hub1] : [hub1, h2];
      expect(mine.deviceKey(regId)).toBe(deriveDeviceKey(groupKey, regId));
      expect(other.deviceKey(regId)).toBeUndefined();
    }
    expect(new Set(Object.values(placed))).toEqual(new Set([HUB_HOST, HUB2]));
    // The same registration id hashes to the same hub again.
    const again = await e.provision('Http', 'dev-a', { key: deriveDeviceKey(groupKey, 'dev-a') });
    expect(again.result).toMatchObject({ assignedHub: placed['dev-a'], substatus: 'initialAssignment' });
  });

  it('static: an enrollment pinned to one hub goes there', async () => {
    const { env: e, hub2: h2 } = await twoHubs({ allocationPolicy: 'static' });
    const key = e.dps.addEnrollment('pinned');
    e.dps.setAllocation('pinned', { allocationPolicy: 'static', iotHubs: [HUB2] });
    const out = await e.provision('Amqp', 'pinned', { key });
    expect(out.result).toMatchObject({
      assignedHub: HUB2,
      deviceId: 'pinned',
      substatus: 'initialAssignment',
    });
    expect(h2.deviceKey('pinned')).toBe(key);
  });

  it('reprovisioning: after the enrollment moves, the device lands on the new hub per the reprovision policy', async () => {
    const { env: e, hub2: h2 } = await twoHubs();
    const key = e.dps.addEnrollment('mover');
    e.dps.setAllocation('mover', { iotHubs: [HUB_HOST] });
    expect((await e.provision('Mqtt', 'mover', { key })).result).toMatchObject({
      assignedHub: HUB_HOST,
      substatus: 'initialAssignment',
    });

    e.dps.setAllocation('mover', { iotHubs: [HUB2] });
    expect((await e.provision('Mqtt', 'mover', { key })).result).toMatchObject({
      assignedHub: HUB2,
      substatus: 'deviceDataMigrated',
    });
    expect(h2.deviceKey('mover')).toBe(key);

    e.dps.setAllocation('mover', { iotHubs: [HUB_HOST], reprovisionPolicy: { migrateDeviceData: false } });
    expect((await e.provision('Http', 'mover', { key })).result).toMatchObject({
      assignedHub: HUB_HOST,
      substatus: 'deviceDataReset',
    });

    e.dps.setAllocation('mover', { iotHubs: [HUB2], reprovisionPolicy: { updateHubAssignment: false } });
    expect((await e.provision('Http', 'mover', { key })).result).toMatchObject({
      assignedHub: HUB_HOST,
      substatus: 'initialAssignment',
    });
  });

  it('an allocation naming a hub the DPS does not have is refused with the hubs it has', async () => {
    const { env: e } = await twoHubs();
    e.dps.addEnrollment('x');
    expect(() => e.dps.setAllocation('x', { iotHubs: ['nowhere.example.com'] })).toThrow(
      expect.objectContaining({ code: 'E_BAD_OPTION', hint: expect.stringContaining(HUB2) }),
    );
  });
});
