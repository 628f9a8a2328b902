import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectThrottle } from '../../simulators/mqtt-broker/connect-rate.js';
import { type MqttBrokerHandle, start } from '../../simulators/mqtt-broker/index.js';

/**
 * The broker's connect throttle (`connectRate`): every CONNECT request counts in a one-second window,
 * accepted or refused; over the limit a real MQTT.js client gets CONNACK 0x03 (server unavailable).
 */
describe('connect throttle', () => {
  it('counts every request in a sliding one-second window', () => {
    let t = 10_000;
    const th = new ConnectThrottle(3, () => t);
    expect([th.admit(), th.admit(), th.admit(), th.admit()]).toEqual([true, true, true, false]);
    t += 500;
    // Still inside the window: the refused request counted too.
    expect(th.admit()).toBe(false);
    t += 600; // the first four have left the window; the one at +500 has not
    expect([th.admit(), th.admit(), th.admit()]).toEqual([true, true, false]);
    t += 5_000;
    expect(th.admit()).toBe(true);
    expect(th.refused).toBe(3);
  });

  let broker: MqttBrokerHandle | undefined;
  afterEach(async () => {
    await broker?.stop();
    broker = undefined;
  });

  it('answers CONNACK 3 past the limit, to a real client, and records why', async () => {
    broker = await start({ host: '127.0.0.1', connectRate: { perSecond: 2 } });
    const rejected: Array<{ returnCode: number; reason: string }> = [];
    broker.events.on('client-rejected', (e) => rejected.push(e));
    const url = broker.endpoints[0]!.url as string;
    const attempt = (i: number) =>
      new Promise<number>((resolve) => {
        const c = mqtt.connect(url, { clientId: `d${i}`, reconnectPeriod: 0, connectTimeout: 5000 });
        c.once('connect', () => {
          c.end(true);
          resolve(0);
        });
        c.once('error', (err) => {
          c.end(true);
          resolve(Number((err as { code?: number }).code ?? -1));
        });
      });
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push(await attempt(i));
    expect(codes).toEqual([0, 0, 3, 3]);
    expect(rejected).toEqual([
      { clientId: 'd2', returnCode: 3, reason: 'connect rate exceeded' },
      { clientId: 'd3', returnCode: 3, reason: 'connect rate exceeded' },
    ]);
  });

  it('without connectRate nothing is throttled', async () => {
    broker = await start({ host: '127.0.0.1' });
    const url = broker.endpoints[0]!.url as string;
    const ok = await Promise.all(
      Array.from(
        { length: 10 },
        (_, i) =>
          new Promise<boolean>((resolve) => {
            const c = mqtt.connect(url, { clientId: `n${i}`, reconnectPeriod: 0 });
            c.once('connect', () => {
              c.end(true);
              resolve(true);
            });
            c.once('error', () => resolve(false));
          }),
      ),
    );
    expect(ok.every(Boolean)).toBe(true);
  });
});
