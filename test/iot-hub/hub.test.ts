import { describe, expect, it } from 'vitest';
import {
  configure,
  deviceClient,
  errors,
  type HubLab,
  hubTestBench,
  Message,
  openAndSend,
  TRANSPORTS,
  within,
} from './helpers.js';

const bench = hubTestBench();

describe('iot-hub with the Azure IoT device SDK', () => {
  for (const transport of TRANSPORTS) {
    it(`${transport}: telemetry reaches the hub and a C2D message reaches the device`, async () => {
      const lab = await bench.hubLab();
      lab.hub.addDevice('dev-1');
      const c = bench.own(deviceClient(lab, transport, 'dev-1'));
      await configure(c, lab);
      await within(c.open(), 8000, 'open');

      const msg = new Message(JSON.stringify({ t: 21.5 }));
      msg.properties.add('kind', 'temp');
      await within(c.sendEvent(msg), 8000, 'sendEvent');
      const got = lab.hub.messages('dev-1');
      expect(got).toHaveLength(1);
      expect(JSON.parse(got[0]!.body.toString())).toEqual({ t: 21.5 });
      expect(got[0]!.properties.kind).toBe('temp');
      expect(got[0]!.transport).toBe(
        { Mqtt: 'mqtt', MqttWs: 'mqtt-ws', Amqp: 'amqp', AmqpWs: 'amqp-ws', Http: 'https' }[transport],
      );

      const received = new Promise<string>((resolve) => {
        c.on('message', (m: InstanceType<typeof Message>) => {
          void c.complete(m).catch(() => undefined);
          resolve(String(m.data));
        });
      });
      const settled = transport === 'Mqtt' || transport === 'MqttWs' ? undefined : waitSettled(lab);
      lab.hub.sendC2D('dev-1', 'reboot', { reason: 'test' });
      expect(await within(received, 8000, 'C2D message')).toBe('reboot');
      if (settled) expect(await within(settled, 8000, 'C2D settlement')).toMatch(/accepted|complete/);
    });

    it(`${transport}: a wrong device key fails with UnauthorizedError`, async () => {
      const lab = await bench.hubLab();
      lab.hub.addDevice('dev-2');
      const rejected = new Promise<{ reason: string; transport: string }>((resolve) =>
        lab.hub.events.onceEvent('auth-rejected', resolve),
      );
      const c = bench.own(deviceClient(lab, transport, 'dev-2', Buffer.alloc(32, 7).toString('base64')));
      await configure(c, lab);
      const err = await openAndSend(c, 'open with a wrong key');
      expect(err).toBeInstanceOf(errors.UnauthorizedError);
      expect(await within(rejected, 2000, 'auth-rejected')).toMatchObject({ reason: 'bad-signature' });
      expect(lab.hub.messages('dev-2')).toHaveLength(0);
    });
  }
});

function waitSettled(l: HubLab): Promise<string> {
  return new Promise((resolve) => l.hub.events.onceEvent('c2d-settled', (e) => resolve(e.outcome)));
}
