import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import { within } from '../helpers/within.js';

/** The mqtt-broker lab adapter passes the MQTT 5 `limits` option through: a real v5 client reads them in CONNACK. */
let state: string;
let lab: Lab | undefined;
beforeAll(() => {
  state = mkdtempSync(join(tmpdir(), 'fl-mqtt-limits-'));
  process.env.FIELDLAB_STATE_DIR = state;
});
afterAll(async () => {
  await lab?.stop();
  delete process.env.FIELDLAB_STATE_DIR;
  rmSync(state, { recursive: true, force: true });
});

describe('mqtt-broker limits in a lab', () => {
  it('CONNACK carries the scenario’s Receive Maximum and Topic Alias Maximum', async () => {
    lab = await startLab({
      name: 'limits',
      simulators: [
        {
          name: 'broker',
          type: 'mqtt-broker',
          host: 'broker.example.com',
          options: {
            listeners: [{ protocol: 'mqtt' }],
            limits: { receiveMaximum: 7, topicAliasMaximum: 3 },
          },
        },
      ],
    });
    const c = mqtt.connect({
      host: lab.resolveRef('broker.address'),
      port: Number(lab.resolveRef('broker.port')),
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    const connack = await within(
      new Promise<mqtt.IConnackPacket>((resolve, reject) => {
        c.once('connect', resolve);
        c.once('error', reject);
      }),
      8000,
      'CONNACK',
    );
    expect(connack.properties?.receiveMaximum).toBe(7);
    expect(connack.properties?.topicAliasMaximum).toBe(3);
    await c.endAsync();
  });
});
