import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { type MqttBrokerHandle, start } from '../../simulators/mqtt-broker/index.js';
import { within } from '../helpers/within.js';
import { fuzz } from './harness.js';
import { mqttSession } from './mqtt-packets.js';
import { sendTcp } from './mutate.js';

let broker: MqttBrokerHandle;
let port: number;
beforeAll(async () => {
  broker = await start({ name: 'fuzz-broker', listeners: [{ protocol: 'mqtt', port: 0 }] });
  port = endpointOf(broker).port;
});
afterAll(() => broker?.stop());

let probes = 0;
/**
 * MQTT.js subscribes, publishes and receives its own message over 3.1.1. (The broker refuses MQTT 5 with
 * CONNACK 1, see its README: v5 packets are fuzzed, a v5 round trip is not expected.)
 */
async function roundTrip(): Promise<void> {
  probes++;
  const client = await within(
    mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
      protocolVersion: 4,
      clientId: `fuzz-probe-${probes}`,
      reconnectPeriod: 0,
      connectTimeout: 3000,
    }),
    5000,
    'MQTT.js to connect',
  );
  try {
    const topic = `fuzz/probe/${probes}`;
    const got = new Promise<string>((resolve) => client.once('message', (_t, p) => resolve(p.toString())));
    await within(client.subscribeAsync(topic, { qos: 1 }), 3000, 'SUBACK');
    await within(client.publishAsync(topic, 'still serving', { qos: 1 }), 3000, 'PUBACK');
    expect(await within(got, 3000, 'the message back')).toBe('still serving');
  } finally {
    await client.endAsync(true);
  }
}

describe('fuzz: MQTT 3.1.1 and 5 packets → mqtt-broker', () => {
  it('keeps serving MQTT.js and returns to its heap baseline after mutated sessions', async () => {
    const r = await fuzz({
      name: 'MQTT packets → mqtt-broker',
      input: mqttSession,
      send: async (packets) => {
        await sendTcp(port, packets, 50);
      },
      probe: roundTrip,
      batchSize: 150,
      batches: 8,
      concurrency: 32,
    });
    expect(r.heaps).toHaveLength(r.batches);
    expect(broker.stats()).toBeDefined();
  }, 60_000);
});
