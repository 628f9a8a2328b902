import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { openTunnelWith, tunnelSdk } from '../helpers/tunnel.js';
import { within } from './helpers.js';

/**
 * AWS IoT delivers a tunnel's destination token to the device on `$aws/things/<thing>/tunnels/notify`.
 * In a lab the tunnel service publishes it on the broker its `notify` option names; the device's MQTT
 * client (MQTT.js) receives it when the AWS SDK opens a tunnel for its thing.
 */
useTempStateDir('fl-notify-');
let lab: Lab | undefined;
afterAll(async () => lab?.stop());

describe('tunnel-service notify through a lab broker', () => {
  it('the device gets the destination token of a tunnel opened for its thing', {
    timeout: 30_000,
  }, async () => {
    lab = await startLab({
      name: 'notify',
      simulators: [
        {
          name: 'tunnels',
          type: 'tunnel-service',
          host: 'tunnels.example.com',
          options: { tls: false, notify: 'broker' },
        },
        {
          name: 'broker',
          type: 'mqtt-broker',
          host: 'iot.example.com',
          options: { listeners: [{ protocol: 'mqtt' }] },
        },
      ],
    });
    // By address: the lab's names resolve only through the lab, not this process's resolver.
    const mq = lab.sim('broker').endpoints[0]!;
    const device = await mqtt.connectAsync(`mqtt://${mq.host}:${mq.port}`, { clientId: 'thing-7' });
    try {
      await device.subscribeAsync('$aws/things/thing-7/tunnels/notify', { qos: 1 });
      const delivered = new Promise<Record<string, unknown>>((resolve) =>
        device.once('message', (_topic, payload) => resolve(JSON.parse(payload.toString()))),
      );
      const api = lab.sim('tunnels').endpoints.find((e) => e.name === 'api');
      const sdk = tunnelSdk(`http://${api?.host}:${api?.port}`);
      const open = await openTunnelWith(sdk, ['SSH'], 'thing-7').finally(() => sdk.destroy());
      expect(await within(delivered, 5_000, 'the notify message')).toEqual({
        clientAccessToken: open.destination,
        clientMode: 'destination',
        region: 'us-east-1',
        services: ['SSH'],
      });
    } finally {
      await device.endAsync();
    }
  });

  it('names a notify broker the lab does not have when the lab starts', async () => {
    await expect(
      startLab({
        name: 'notify-bad',
        simulators: [
          {
            name: 'tunnels',
            type: 'tunnel-service',
            host: 'tunnels.example.com',
            options: { notify: 'nope' },
          },
        ],
      }),
    ).rejects.toMatchObject({
      code: 'E_BAD_OPTIONS',
      message: expect.stringContaining('no mqtt-broker or aws-iot simulator named nope'),
    });
  });
});
