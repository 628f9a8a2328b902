import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import type { IotHubHandle } from '../../simulators/iot-hub/index.js';
import { within } from '../helpers/within.js';

/**
 * The iot-hub and dps lab adapters' X.509 and module options: `x509: { ca: true }` devices get a lab-issued
 * certificate (`${hub.cert-<id>}`, `${hub.certKey-<id>}`) that the hub accepts, since the lab CA is registered
 * in it; modules get `${hub.cs-<device>/<module>}`; X.509 enrollments and groups on the dps.
 */
let state: string;
let lab: Lab | undefined;
beforeAll(() => {
  state = mkdtempSync(join(tmpdir(), 'fl-iot-x509-'));
  process.env.FIELDLAB_STATE_DIR = state;
});
afterAll(() => {
  delete process.env.FIELDLAB_STATE_DIR;
  rmSync(state, { recursive: true, force: true });
});
afterEach(async () => {
  await lab?.stop();
  lab = undefined;
});

describe('iot-hub and dps lab options for X.509 and modules', () => {
  it('a CA-signed lab device connects by certificate; a module has its connection string; dps enrolls X.509', async () => {
    lab = await startLab({
      name: 'x509',
      simulators: [
        {
          name: 'hub',
          type: 'iot-hub',
          host: 'hub.iot.example.com',
          options: {
            devices: [
              { deviceId: 'cam-1', x509: { ca: true } },
              { deviceId: 'edge-1', modules: [{ moduleId: 'agent' }] },
            ],
          },
        },
        { name: 'hub2', type: 'iot-hub', host: 'hub2.iot.example.com', options: {} },
        {
          name: 'dps',
          type: 'dps',
          host: 'dps.iot.example.com',
          options: {
            hub: 'hub',
            linkedHubs: ['hub2'],
            enrollments: [
              { registrationId: 'reg-x', x509: true, allocationPolicy: 'static', iotHubs: ['hub2'] },
            ],
            groups: [{ groupId: 'g', x509: true }],
          },
        },
      ],
    });
    // An allocation naming a simulator that is not an iot-hub is refused with the fix.
    await expect(
      startLab({
        name: 'x509-bad',
        simulators: [
          { name: 'hub', type: 'iot-hub', host: 'hub.iot.example.com', options: {} },
          {
            name: 'dps',
            type: 'dps',
            host: 'dps.iot.example.com',
            options: { hub: 'hub', enrollments: [{ registrationId: 'r', iotHubs: ['nope'] }] },
          },
        ],
      }),
    ).rejects.toMatchObject({
      code: 'E_BAD_OPTIONS',
      message: expect.stringContaining('enrollments[0].iotHubs'),
    });
    const certFile = lab.resolveRef('hub.cert-cam-1');
    const keyFile = lab.resolveRef('hub.certKey-cam-1');
    expect(existsSync(certFile) && existsSync(keyFile)).toBe(true);
    expect(lab.resolveRef('hub.cs-cam-1')).toBe('HostName=hub.iot.example.com;DeviceId=cam-1;x509=true');
    expect(lab.resolveRef('hub.cs-edge-1/agent')).toMatch(
      /^HostName=hub\.iot\.example\.com;DeviceId=edge-1;ModuleId=agent;SharedAccessKey=.+/,
    );
    expect(existsSync(lab.resolveRef('dps.cert-reg-x'))).toBe(true);

    const c = await within(
      mqtt.connectAsync({
        protocol: 'mqtts',
        host: lab.resolveRef('hub.mqtts.address'),
        port: Number(lab.resolveRef('hub.mqtts.port')),
        servername: 'hub.iot.example.com',
        ca: lab.pki.root.certPem,
        cert: readFileSync(certFile),
        key: readFileSync(keyFile),
        clientId: 'cam-1',
        username: 'hub.iot.example.com/cam-1/?api-version=2021-04-12',
        protocolVersion: 4,
        reconnectPeriod: 0,
      }),
      8000,
      'CONNACK for the lab-issued certificate',
    );
    await c.publishAsync('devices/cam-1/messages/events/', 'by-cert', { qos: 1 });
    await c.endAsync();
    const hub = lab.simulators.get('hub')?.handle as IotHubHandle;
    expect(hub.messages('cam-1').map((m) => m.body.toString())).toEqual(['by-cert']);
  });

  it('a CA-signed lab module connects by its certificate (CN <device>/<module>); routes reach the hub', async () => {
    lab = await startLab({
      name: 'x509-module',
      simulators: [
        {
          name: 'hub',
          type: 'iot-hub',
          host: 'hub.iot.example.com',
          options: {
            devices: [
              {
                deviceId: 'edge-1',
                modules: [{ moduleId: 'sensor', x509: { ca: true } }],
                routes: { up: 'FROM /messages/modules/sensor/* INTO $upstream' },
              },
            ],
          },
        },
      ],
    });
    const certFile = lab.resolveRef('hub.cert-edge-1/sensor');
    const keyFile = lab.resolveRef('hub.certKey-edge-1/sensor');
    expect(lab.resolveRef('hub.cs-edge-1/sensor')).toBe(
      'HostName=hub.iot.example.com;DeviceId=edge-1;ModuleId=sensor;x509=true',
    );
    const c = await within(
      mqtt.connectAsync({
        protocol: 'mqtts',
        host: lab.resolveRef('hub.mqtts.address'),
        port: Number(lab.resolveRef('hub.mqtts.port')),
        servername: 'hub.iot.example.com',
        ca: lab.pki.root.certPem,
        cert: readFileSync(certFile),
        key: readFileSync(keyFile),
        clientId: 'edge-1/sensor',
        username: 'hub.iot.example.com/edge-1/sensor/?api-version=2021-04-12',
        protocolVersion: 4,
        reconnectPeriod: 0,
      }),
      8000,
      'CONNACK for the lab-issued module certificate',
    );
    await c.publishAsync('devices/edge-1/modules/sensor/messages/events/', 'from-module', { qos: 1 });
    await c.endAsync();
    // The route took the module's message to $upstream: the hub's telemetry.
    expect(lab.events.some((e) => e.source === 'hub' && e.type === 'message-routed')).toBe(true);

    // A route the simulator does not model is refused at start, naming the route.
    await expect(
      startLab({
        name: 'x509-bad-route',
        simulators: [
          {
            name: 'hub',
            type: 'iot-hub',
            host: 'hub.iot.example.com',
            options: {
              devices: [{ deviceId: 'e', routes: { r: 'FROM /messages/* WHERE a = 1 INTO $upstream' } }],
            },
          },
        ],
      }),
    ).rejects.toMatchObject({ message: expect.stringContaining('routes') });
  });
});
