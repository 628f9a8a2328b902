import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import {
  configure,
  deviceClient,
  type HubLab,
  Message,
  startHubLab,
  type TransportName,
  within,
} from '../iot-hub/helpers.js';
import { amqpConnection } from './amqp-frames.js';
import { fuzz } from './harness.js';
import { mqttSession } from './mqtt-packets.js';
import { sendTls } from './mutate.js';

let pki: PkiHandle;
let lab: HubLab;
beforeAll(async () => {
  pki = await startPki({ name: 'pki' });
  lab = await startHubLab(pki);
  lab.hub.addDevice('fuzz-probe');
});
afterAll(async () => {
  await lab?.stop();
  await pki?.stop();
});

/** The Azure IoT device SDK opens on `transport`, sends one telemetry message the hub stores, closes. */
async function telemetry(transport: TransportName): Promise<void> {
  const before = lab.hub.messages('fuzz-probe').length;
  const c = deviceClient(lab, transport, 'fuzz-probe');
  try {
    await configure(c, lab);
    await within(c.open(), 8000, `${transport} open`);
    await within(c.sendEvent(new Message('still serving')), 8000, 'sendEvent');
    expect(lab.hub.messages('fuzz-probe').length).toBeGreaterThan(before);
  } finally {
    await c.close().catch(() => undefined);
  }
}

describe('fuzz: AMQP frames and MQTT packets → iot-hub', () => {
  it('keeps serving the device SDK over AMQP and returns to its heap baseline after mutated AMQP connections', async () => {
    const port = endpointOf(lab.hub, 'amqps').port;
    const r = await fuzz({
      name: 'AMQP frames → iot-hub',
      input: amqpConnection,
      send: async (frames) => {
        await sendTls(port, lab.ca, frames, 100);
      },
      probe: () => telemetry('Amqp'),
      batchSize: 80,
      batches: 4,
      concurrency: 16,
    });
    expect(r.heaps).toHaveLength(r.batches);
  }, 60_000);

  it('keeps serving the device SDK over MQTT and returns to its heap baseline after mutated MQTT sessions', async () => {
    const port = endpointOf(lab.hub, 'mqtts').port;
    const r = await fuzz({
      name: 'MQTT packets → iot-hub',
      input: mqttSession,
      send: async (packets) => {
        await sendTls(port, lab.ca, packets, 60);
      },
      probe: () => telemetry('Mqtt'),
      batchSize: 100,
      batches: 4,
      concurrency: 16,
    });
    expect(r.heaps).toHaveLength(r.batches);
  }, 60_000);
});
