import device from 'azure-iot-device';
import { describe, expect, it, vi } from 'vitest';
import { type IotHubEvents, start as startHub } from '../../simulators/iot-hub/index.js';
import {
  configure,
  HUB_HOST,
  type HubLab,
  hostFor,
  hubTestBench,
  Message,
  NoRetry,
  TRANSPORT_CTORS,
  type TransportName,
  within,
} from './helpers.js';

/**
 * Module input messages: modules get no cloud-to-device messages; what reaches them is input messages that
 * edgeHub routes (`BrokeredEndpoint("/modules/<m>/inputs/<input>")`), read with the SDK's
 * `on('inputMessage', (inputName, msg) => ...)`: MQTT `devices/<d>/modules/<m>/inputs/<input>/<props>`,
 * AMQP on the module's `/messages/events` receiver link with annotation `x-opt-input-name`. The hub takes
 * them from `sendToModuleInput` and from a device's edge routes (a module's `sendOutputEvent`).
 */
const { ModuleClient } = device;
type Module = InstanceType<typeof ModuleClient>;
type InputMessage = { inputName: string; body: string; properties: Record<string, string> };

const bench = hubTestBench();

/** A SAS ModuleClient for `<deviceId>/<moduleId>` on `transport` (closed after the test). */
async function moduleClient(l: HubLab, transport: TransportName, deviceId: string, moduleId: string) {
  const key = l.hub.deviceKey(`${deviceId}/${moduleId}`);
  const cs = `HostName=${hostFor(l, transport)};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${key}`;
  const c = bench.own(ModuleClient.fromConnectionString(cs, TRANSPORT_CTORS[transport]));
  c.setRetryPolicy(new NoRetry());
  await configure(c as never, l);
  return c;
}

/** Collects the module's input messages (completing each, as a module does); `next(n)` waits for n of them. */
function inputsOf(c: Module) {
  const got: InputMessage[] = [];
  const waiters: Array<() => void> = [];
  c.on('inputMessage', (inputName, msg) => {
    const properties: Record<string, string> = {};
    for (let i = 0; i < msg.properties.count(); i++) {
      const p = msg.properties.getItem(i);
      properties[p.key] = p.value;
    }
    got.push({ inputName, body: msg.getBytes().toString(), properties });
    c.complete(msg, () => undefined);
    for (const w of waiters.splice(0)) w();
  });
  const next = (n: number) =>
    within(
      new Promise<InputMessage[]>((resolve) => {
        const check = () => (got.length >= n ? resolve(got.slice(0, n)) : waiters.push(check));
        check();
      }),
      8000,
      `${n} input message(s)`,
    );
  return { got, next };
}

const listeningFor = (l: HubLab, deviceId: string) =>
  new Promise<IotHubEvents['listening']>((resolve) =>
    l.hub.events.onEvent('listening', (e) => {
      if (e.feature === 'inputs' && e.deviceId === deviceId) resolve(e);
    }),
  );

describe('iot-hub module input messages with the Azure IoT device SDK (ModuleClient on inputMessage)', () => {
  for (const transport of ['Mqtt', 'MqttWs', 'Amqp', 'AmqpWs'] as const) {
    it(`${transport}: input messages reach the module on their input, with their properties; one sent before it listened waits for it`, async () => {
      const lab = await bench.hubLab();
      lab.hub.addDevice('edge-in');
      lab.hub.addModule('edge-in', 'filter');
      const sent: IotHubEvents['input-sent'][] = [];
      lab.hub.events.onEvent('input-sent', (e) => sent.push(e));
      const early = lab.hub.sendToModuleInput('edge-in', 'filter', 'input1', 'queued', { k: 'v' });

      const c = await moduleClient(lab, transport, 'edge-in', 'filter');
      const listening = listeningFor(lab, 'edge-in/filter');
      const inputs = inputsOf(c);
      await within(c.open(), 8000, 'module open');
      await within(listening, 8000, 'the module listens for input messages');
      lab.hub.sendToModuleInput('edge-in', 'filter', 'control', Buffer.from('live'));

      expect(await inputs.next(2)).toEqual([
        { inputName: 'input1', body: 'queued', properties: { k: 'v' } },
        { inputName: 'control', body: 'live', properties: {} },
      ]);
      expect(sent.map((e) => `${e.deviceId}:${e.inputName}`)).toEqual([
        'edge-in/filter:input1',
        'edge-in/filter:control',
      ]);
      expect(sent[0]).toMatchObject({ messageId: early.messageId });
      // Nothing of it is the device's C2D.
      expect(lab.hub.stats()).toMatchObject({ inputsSent: 2, c2dSent: 0 });
    });
  }

  it('Amqp: the module settles its input messages (accepted), which the hub reports', async () => {
    const lab = await bench.hubLab();
    lab.hub.addDevice('edge-in');
    lab.hub.addModule('edge-in', 'filter');
    const settled = new Promise<IotHubEvents['input-settled']>((resolve) =>
      lab.hub.events.onceEvent('input-settled', resolve),
    );
    const c = await moduleClient(lab, 'Amqp', 'edge-in', 'filter');
    const inputs = inputsOf(c);
    await within(c.open(), 8000, 'module open');
    const { messageId } = lab.hub.sendToModuleInput('edge-in', 'filter', 'input1', 'x');
    await inputs.next(1);
    expect(await within(settled, 8000, 'input-settled')).toMatchObject({
      deviceId: 'edge-in/filter',
      messageId,
      outcome: 'accepted',
    });
  });

  it('modules get no C2D, and input messages name a registered module and a valid input', async () => {
    const lab = await bench.hubLab();
    lab.hub.addDevice('edge-in');
    lab.hub.addModule('edge-in', 'filter');
    expect(() => lab.hub.sendC2D('edge-in/filter', 'x')).toThrow(
      expect.objectContaining({
        code: 'E_BAD_DEVICE_ID',
        hint: expect.stringContaining('sendToModuleInput'),
      }),
    );
    expect(() => lab.hub.sendToModuleInput('edge-in', 'nope', 'input1', 'x')).toThrow(
      expect.objectContaining({ code: 'E_UNKNOWN_DEVICE' }),
    );
    expect(() => lab.hub.sendToModuleInput('edge-in', 'filter', 'in/#', 'x')).toThrow(
      expect.objectContaining({ code: 'E_BAD_OPTION' }),
    );
  });
});

/** The routes of an edge device's `$edgeHub` desired properties, as a deployment manifest writes them. */
const ROUTES = {
  sensorToFilter:
    'FROM /messages/modules/sensor/outputs/temperature INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
  filterToUpstream: { route: 'FROM /messages/modules/filter/outputs/* INTO $upstream', priority: 0 },
};

describe('iot-hub edge routes (edgeHub) between modules', () => {
  it('sensor (Mqtt) output → filter (Amqp) input → filter output → $upstream; an unrouted message goes nowhere', async () => {
    const lab = await bench.hubLab({
      devices: [
        { deviceId: 'edge-r', modules: [{ moduleId: 'sensor' }, { moduleId: 'filter' }], routes: ROUTES },
      ],
    });
    const routed: string[] = [];
    lab.hub.events.onEvent('message-routed', (e) => routed.push(`${e.deviceId}:${e.output}:${e.route}`));
    const unrouted: IotHubEvents['message-unrouted'][] = [];
    lab.hub.events.onEvent('message-unrouted', (e) => unrouted.push(e));

    const filter = await moduleClient(lab, 'Amqp', 'edge-r', 'filter');
    const listening = listeningFor(lab, 'edge-r/filter');
    const inputs = inputsOf(filter);
    await within(filter.open(), 8000, 'filter open');
    await within(listening, 8000, 'filter listens');
    const sensor = await moduleClient(lab, 'Mqtt', 'edge-r', 'sensor');
    await within(sensor.open(), 8000, 'sensor open');

    const reading = new Message('{"t":21.5}');
    reading.properties.add('unit', 'C');
    await within(sensor.sendOutputEvent('temperature', reading), 8000, 'sensor output');
    expect(await inputs.next(1)).toEqual([
      { inputName: 'input1', body: '{"t":21.5}', properties: { unit: 'C' } },
    ]);
    // Not on a routed output: edgeHub drops it; it never reaches the hub.
    await within(sensor.sendEvent(new Message('raw')), 8000, 'sensor sendEvent');
    await within(filter.sendOutputEvent('alerts', new Message('too warm')), 8000, 'filter output');

    expect(lab.hub.messages('edge-r/filter').map((m) => m.body.toString())).toEqual(['too warm']);
    expect(lab.hub.messages('edge-r/sensor')).toHaveLength(0);
    expect(routed).toEqual([
      'edge-r/sensor:temperature:sensorToFilter',
      'edge-r/filter:alerts:filterToUpstream',
    ]);
    expect(unrouted).toEqual([{ deviceId: 'edge-r/sensor' }]);
  });

  it('messages wait for their module in route priority order (0 first) and expire after the route time-to-live', async () => {
    const lab = await bench.hubLab({
      devices: [
        {
          deviceId: 'edge-p',
          modules: [{ moduleId: 'sensor' }, { moduleId: 'filter' }],
          routes: {
            bulk: {
              route:
                'FROM /messages/modules/sensor/outputs/bulk INTO BrokeredEndpoint("/modules/filter/inputs/bulk")',
              priority: 5,
            },
            alarm:
              'FROM /messages/modules/sensor/outputs/alarm INTO BrokeredEndpoint("/modules/filter/inputs/alarm")',
            stale: {
              route:
                'FROM /messages/modules/sensor/outputs/stale INTO BrokeredEndpoint("/modules/filter/inputs/stale")',
              timeToLiveSecs: 60,
            },
          },
        },
      ],
    });
    const expired: IotHubEvents['input-expired'][] = [];
    lab.hub.events.onEvent('input-expired', (e) => expired.push(e));
    const sensor = await moduleClient(lab, 'Mqtt', 'edge-p', 'sensor');
    await within(sensor.open(), 8000, 'sensor open');
    await within(sensor.sendOutputEvent('stale', new Message('old')), 8000, 'stale');
    await within(sensor.sendOutputEvent('bulk', new Message('b1')), 8000, 'bulk 1');
    await within(sensor.sendOutputEvent('alarm', new Message('a1')), 8000, 'alarm');
    await within(sensor.sendOutputEvent('bulk', new Message('b2')), 8000, 'bulk 2');
    // Only the clock moves (no timers are faked): the filter comes online 2 minutes later.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 120_000 });
    try {
      const filter = await moduleClient(lab, 'MqttWs', 'edge-p', 'filter');
      const inputs = inputsOf(filter);
      await within(filter.open(), 8000, 'filter open');
      const got = await inputs.next(3);
      expect(got.map((m) => `${m.inputName}:${m.body}`)).toEqual(['alarm:a1', 'bulk:b1', 'bulk:b2']);
      expect(expired).toMatchObject([{ deviceId: 'edge-p/filter', inputName: 'stale' }]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('routes are read as the manifest writes them; what is not modelled is refused, naming the route', async () => {
    const cert = await bench.pki.issueServer([HUB_HOST]);
    const withRoutes = (routes: Record<string, unknown>) =>
      startHub({
        hostName: HUB_HOST,
        tls: { certPem: cert.chainPem, keyPem: cert.keyPem },
        devices: [{ deviceId: 'e', routes }],
      } as never);
    await expect(
      withRoutes({ hot: 'FROM /messages/* WHERE temperature > 30 INTO $upstream' }),
    ).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
      message: expect.stringMatching(/devices\[0\]\.routes\.hot.*WHERE conditions are not modelled/),
    });
    await expect(withRoutes({ twins: 'FROM /twinChangeNotifications INTO $upstream' })).rejects.toMatchObject(
      {
        code: 'E_BAD_OPTION',
        message: expect.stringContaining('routes.twins'),
      },
    );
    await expect(withRoutes({ odd: 'FROM /messages/* INTO storage' })).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
      hint: expect.stringContaining('$upstream'),
    });
    await expect(withRoutes({ junk: 'send everything up' })).rejects.toMatchObject({ code: 'E_BAD_OPTION' });
  });
});
