import { X509Certificate } from 'node:crypto';
import device from 'azure-iot-device';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { CertificateAuthority } from '../../simulators/pki/index.js';
import {
  Client,
  configure,
  errors,
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
 * Module identities, twins and direct methods with the official Node SDK (`ModuleClient`, `Client`):
 * MQTT client id `<device>/<module>`, SAS `sr=<host>/devices/<device>/modules/<module>`, module telemetry on
 * `devices/<d>/modules/<m>/messages/events/`, twin GET / reported PATCH / desired patches, method calls.
 */
const { ModuleClient } = device;
type Twin = Awaited<ReturnType<InstanceType<typeof Client>['getTwin']>>;

const bench = hubTestBench();

/** A ModuleClient (closed after the test). */
async function moduleClient(
  l: HubLab,
  transport: TransportName,
  cs: string,
  x509?: { cert: string; key: string },
): Promise<InstanceType<typeof ModuleClient>> {
  const c = bench.own(ModuleClient.fromConnectionString(cs, TRANSPORT_CTORS[transport]));
  c.setRetryPolicy(new NoRetry());
  await configure(c as never, l, 1, x509);
  return c;
}

/** A device Client with its SAS key (closed after the test). */
async function deviceClient(l: HubLab, transport: TransportName, deviceId: string) {
  const key = l.hub.deviceKey(deviceId)!;
  const c = bench.own(
    Client.fromConnectionString(
      `HostName=${hostFor(l, transport)};DeviceId=${deviceId};SharedAccessKey=${key}`,
      TRANSPORT_CTORS[transport],
    ),
  );
  c.setRetryPolicy(new NoRetry());
  await configure(c, l);
  return c;
}

/** The first desired document or patch the SDK emits with at least `version` (it emits the GET's first). */
const desiredFrom = (twin: Twin, version: number) =>
  new Promise<Record<string, unknown>>((resolve) =>
    twin.on('properties.desired', (d: Record<string, unknown>) => {
      if (typeof d.$version === 'number' && d.$version >= version) resolve(d);
    }),
  );

describe('iot-hub module identities with the Azure IoT device SDK', () => {
  for (const transport of ['Mqtt', 'MqttWs', 'Amqp', 'AmqpWs'] as const) {
    it(`${transport}: a module with a SAS key sends telemetry as <device>/<module>`, async () => {
      const lab = await bench.hubLab();
      lab.hub.addDevice('edge-1');
      lab.hub.addModule('edge-1', 'sensor');
      const cs = lab.hub.moduleConnectionString('edge-1', 'sensor', {
        ...(hostFor(lab, transport).includes(':')
          ? { port: Number(hostFor(lab, transport).split(':')[1]) }
          : {}),
        hostName: HUB_HOST,
      });
      const c = await moduleClient(lab, transport, cs);
      await within(c.open(), 8000, 'module open');
      await within(c.sendEvent(new Message('from-module')), 8000, 'module sendEvent');
      const got = lab.hub.messages('edge-1/sensor');
      expect(got.map((m) => m.body.toString())).toEqual(['from-module']);
      expect(lab.hub.messages('edge-1')).toHaveLength(0);
    });
  }

  it('Mqtt: a module key does not open the device, nor another module', async () => {
    const lab = await bench.hubLab();
    lab.hub.addDevice('edge-2');
    const key = lab.hub.addModule('edge-2', 'a');
    lab.hub.addModule('edge-2', 'b');
    const reasons: string[] = [];
    lab.hub.events.onEvent('auth-rejected', (e) => reasons.push(`${e.deviceId}:${e.reason}`));
    const host = hostFor(lab, 'Mqtt');
    const other = await moduleClient(
      lab,
      'Mqtt',
      `HostName=${host};DeviceId=edge-2;ModuleId=b;SharedAccessKey=${key}`,
    );
    const err = await within(
      other.open().then(
        () => undefined,
        (e: unknown) => e,
      ),
      8000,
      'open module b with module a key',
    );
    expect(err).toBeInstanceOf(errors.UnauthorizedError);
    expect(reasons).toEqual(['edge-2/b:bad-signature']);
  });

  it('MQTT (MQTT.js, as the docs describe it): a module with an X.509 thumbprint connects with its certificate', async () => {
    // The Node SDK's ModuleClient takes SAS only; other SDKs and devices without an SDK connect modules with
    // X.509: client id <device>/<module>, username <host>/<device>/<module>/?api-version=..., no password.
    const lab = await bench.hubLab();
    lab.hub.addDevice('edge-3');
    const own = await CertificateAuthority.createRoot({ commonName: 'edge-3-mod' });
    lab.hub.addModule('edge-3', 'mod', {
      x509: { thumbprint: new X509Certificate(own.certPem).fingerprint256 },
    });
    const connect = (cert: { certPem: string; keyPem: string }) =>
      mqtt.connectAsync({
        protocol: 'mqtts',
        host: '127.0.0.1',
        port: endpointOf(lab.hub, 'mqtts').port,
        servername: HUB_HOST,
        ca: bench.pki.root.certPem,
        cert: cert.certPem,
        key: cert.keyPem,
        clientId: 'edge-3/mod',
        username: `${HUB_HOST}/edge-3/mod/?api-version=2021-04-12`,
        protocolVersion: 4,
        reconnectPeriod: 0,
      });
    const m = await within(connect(own), 8000, 'x509 module CONNACK');
    await m.publishAsync('devices/edge-3/modules/mod/messages/events/', 'x509-module', { qos: 1 });
    await m.endAsync();
    expect(lab.hub.messages('edge-3/mod').map((x) => x.body.toString())).toEqual(['x509-module']);
    const other = await CertificateAuthority.createRoot({ commonName: 'edge-3-mod' });
    const err = await within(
      connect(other).then(
        (c) => c.endAsync().then(() => undefined),
        (e: unknown) => e,
      ),
      8000,
      'refused CONNACK',
    );
    expect(err).toMatchObject({ code: 5 });
  });
});

describe('iot-hub twins and direct methods with the Azure IoT device SDK', () => {
  for (const transport of ['Mqtt', 'MqttWs', 'Amqp', 'AmqpWs'] as const) {
    it(`${transport}: module twin: GET, reported patch (versioned), desired patch pushed to the module`, async () => {
      const lab = await bench.hubLab();
      lab.hub.addDevice('edge-4');
      lab.hub.addModule('edge-4', 'agent');
      lab.hub.updateDesired('edge-4/agent', { schemaVersion: '1.1' });
      const listening = new Promise<void>((resolve) =>
        lab.hub.events.onEvent('listening', (e) => e.feature === 'desired' && resolve()),
      );
      const host = hostFor(lab, transport);
      const c = await moduleClient(
        lab,
        transport,
        `HostName=${host};DeviceId=edge-4;ModuleId=agent;SharedAccessKey=${lab.hub.deviceKey('edge-4/agent')}`,
      );
      await within(c.open(), 8000, 'open');
      const twin = await within(c.getTwin(), 8000, 'getTwin');
      expect(twin.properties.desired.schemaVersion).toBe('1.1');
      expect(twin.properties.desired.$version).toBe(2);

      await within(
        new Promise<void>((resolve, reject) =>
          twin.properties.reported.update({ lastStart: 'now', nested: { a: 1 } }, (e?: Error) =>
            e ? reject(e) : resolve(),
          ),
        ),
        8000,
        'reported update',
      );
      expect(lab.hub.twin('edge-4/agent').reported).toMatchObject({
        lastStart: 'now',
        nested: { a: 1 },
        $version: 2,
      });
      expect(lab.hub.twin('edge-4').reported).not.toHaveProperty('lastStart');

      const patch = desiredFrom(twin, 3);
      await within(listening, 5000, 'the module subscribed to desired patches');
      const version = lab.hub.updateDesired('edge-4/agent', { modules: { sensor: { image: 'x' } } });
      expect(await within(patch, 8000, 'desired patch')).toMatchObject({
        modules: { sensor: { image: 'x' } },
        $version: version,
      });
    });

    it(`${transport}: a direct method reaches the device and its answer comes back; not listening (before, after close) gives 404`, async () => {
      const lab = await bench.hubLab();
      lab.hub.addDevice('dev-m');
      expect(await lab.hub.invokeMethod('dev-m', 'reboot', {}, { timeoutMs: 2000 })).toMatchObject({
        status: 404,
      });
      const c = await deviceClient(lab, transport, 'dev-m');
      await within(c.open(), 8000, 'open');
      let resolveCalled: (payload: unknown) => void = () => undefined;
      const called = new Promise<unknown>((resolve) => {
        resolveCalled = resolve;
      });
      const listening = new Promise<void>((resolve) =>
        lab.hub.events.onEvent('listening', (e) => e.feature === 'methods' && resolve()),
      );
      c.onDeviceMethod('reboot', (req, res) => {
        resolveCalled(req.payload);
        res.send(200, { rebooting: true }, () => undefined);
      });
      await within(listening, 5000, 'the device subscribed to method calls');
      const result = await lab.hub.invokeMethod('dev-m', 'reboot', { delay: 5 }, { timeoutMs: 5000 });
      expect(await within(called, 5000, 'method call on the device')).toEqual({ delay: 5 });
      expect(result).toEqual({ status: 200, payload: { rebooting: true } });
      // Closed: its method link or subscription is released, and the service answers 404 at once.
      await within(c.close(), 8000, 'close');
      expect(await lab.hub.invokeMethod('dev-m', 'reboot', {}, { timeoutMs: 5000 })).toMatchObject({
        status: 404,
      });
    });
  }
});
