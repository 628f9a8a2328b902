import { RotateTunnelAccessTokenCommand } from '@aws-sdk/client-iotsecuretunneling';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import type { TunnelServiceEvents } from '../../simulators/tunnel-service/index.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { openTunnelWith, tunnelSdk } from '../helpers/tunnel.js';
import { connect, refusal, startLab as startService, stopLab, within } from './helpers.js';

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

describe('tunnel-service notify hook', () => {
  it('delivers the destination token on OpenTunnel and on a DESTINATION rotation, and says so (notified)', async () => {
    const published: Array<{ topic: string; token: string }> = [];
    const lab2 = await startService({
      notify: (topic, payload) => {
        published.push({
          topic,
          token: (JSON.parse(payload) as { clientAccessToken: string }).clientAccessToken,
        });
      },
    });
    try {
      const notified: Array<TunnelServiceEvents['notified']> = [];
      lab2.svc.events.onEvent('notified', (e) => notified.push(e));
      const open = await openTunnelWith(lab2.sdk, ['SSH'], 'thing-9');
      const topic = '$aws/things/thing-9/tunnels/notify';
      expect(published).toEqual([{ topic, token: open.destination }]);
      expect(notified).toEqual([{ tunnelId: open.tunnelId, thingName: 'thing-9', topic, reason: 'opened' }]);

      // SOURCE: nothing for the device.
      await lab2.sdk.send(
        new RotateTunnelAccessTokenCommand({ tunnelId: open.tunnelId, clientMode: 'SOURCE' }),
      );
      expect(published).toHaveLength(1);

      const rotated = await lab2.sdk.send(
        new RotateTunnelAccessTokenCommand({ tunnelId: open.tunnelId, clientMode: 'DESTINATION' }),
      );
      expect(published[1]).toEqual({ topic, token: rotated.destinationAccessToken });
      expect(notified.map((n) => n.reason)).toEqual(['opened', 'rotated']);
      // The first destination token is revoked; the delivered one connects.
      expect(await refusal(connect(lab2, { mode: 'destination', token: open.destination }))).toBe(403);
      const dst = await connect(lab2, {
        mode: 'destination',
        token: rotated.destinationAccessToken as string,
      });
      dst.close();
    } finally {
      await stopLab(lab2);
    }
  });

  it('emits no notified event when the publish failed (notify-error instead)', async () => {
    const lab2 = await startService({
      notify: () => {
        throw new Error('broker down');
      },
    });
    try {
      const seen: string[] = [];
      lab2.svc.events.onEvent('notified', () => seen.push('notified'));
      lab2.svc.events.onEvent('notify-error', () => seen.push('notify-error'));
      await openTunnelWith(lab2.sdk, ['SSH'], 'thing-9');
      expect(seen).toEqual(['notify-error']);
    } finally {
      await stopLab(lab2);
    }
  });
});
