/**
 * Azure IoT Hub (device side) and the Device Provisioning Service, as the Azure IoT device SDKs meet them:
 * MQTT (mqtts, and WebSocket `/$iothub/websocket` subprotocol `mqtt`), AMQP (amqps, and WebSocket subprotocol
 * `AMQPWSB10`) with CBS, and HTTPS; device identities with symmetric keys and verified SAS tokens, telemetry
 * and cloud-to-device messages. See `dps.ts` for the provisioning service.
 *
 *   device ──mqtts──────► :mqtts ─┐
 *          ──amqps──────► :amqps ─┼─► identities (SAS) ─► telemetry events / messages(deviceId)
 *          ──https/wss──► :https ─┘                     ◄─ sendC2D(deviceId, body) (any transport)
 */
import { z } from 'zod';
import { FieldlabError } from '../common/errors.js';
import { SimulatorEvents } from '../common/events.js';
import type { SimulatorHandle } from '../common/handle.js';
import { parseOptions } from '../common/options.js';
import { hubAmqpContainer } from './amqp-hub.js';
import { C2dQueues } from './c2d.js';
import type { HubCore } from './core.js';
import type { HubTransport, IotHubEvents, IotHubStats } from './events.js';
import { type Front, startFront } from './front.js';
import { hubHttpHandler } from './http-hub.js';
import { hubMqttHooks, wireHubMqtt } from './mqtt-hub.js';
import { registeredKey } from './registry.js';
import { generateKey, verifySas } from './sas.js';

export * from './dps.js';
export type {
  AuthRejectReason,
  DpsEvents,
  DpsStats,
  HubTransport,
  IotHubEvents,
  IotHubStats,
} from './events.js';
export { WEBSOCKET_PATH } from './front.js';
export { registeredKey, registerKey } from './registry.js';
export { buildSas, deriveDeviceKey, generateKey, parseSas, type SasToken, verifySas } from './sas.js';

const port = z.number().int().min(0).max(65535);
const base64Key = z.string().refine((s) => Buffer.from(s, 'base64').length >= 16, {
  message: 'expected a base64 symmetric key (16+ bytes)',
});

export const iotHubOptionsSchema = z
  .object({
    name: z.string().min(1).default('iot-hub'),
    host: z.string().min(1).default('127.0.0.1'),
    /** The hub's DNS name: SAS `sr` must be `<hostName>/devices/<id>`; serve a certificate for it. */
    hostName: z.string().min(1).default('hub.iot.example.com'),
    ports: z
      .object({ mqtts: port.default(0), amqps: port.default(0), https: port.default(0) })
      .strict()
      .default({ mqtts: 0, amqps: 0, https: 0 }),
    /** The server certificate chain and key (a lab PKI leaf for hostName). */
    tls: z.object({ certPem: z.string().min(1), keyPem: z.string().min(1) }).strict(),
    /** Device identities: id → primary key (generated when absent). */
    devices: z
      .array(z.object({ deviceId: z.string().min(1), primaryKey: base64Key.optional() }).strict())
      .default([]),
    /**
     * A directory shared with a DPS in another process (containers on one volume): a device unknown here
     * is looked up as `<registryDir>/<deviceId>.key`, which the DPS writes when it assigns the device.
     */
    registryDir: z.string().min(1).optional(),
  })
  .strict();

export type IotHubOptions = z.input<typeof iotHubOptionsSchema>;

/** A received device-to-cloud message. */
export interface TelemetryMessage {
  deviceId: string;
  transport: HubTransport;
  body: Buffer;
  properties: Record<string, string>;
  /** Epoch ms. */
  receivedAt: number;
}

export interface IotHubHandle extends SimulatorHandle<IotHubEvents, IotHubStats> {
  readonly hostName: string;
  /** Registers (or replaces) a device identity; returns its primary key. */
  addDevice(deviceId: string, primaryKey?: string): string;
  /** The primary key of a device, if registered. */
  deviceKey(deviceId: string): string | undefined;
  /** `HostName=<hostName>[:port];DeviceId=...;SharedAccessKey=...` for the SDKs. */
  connectionString(deviceId: string, opts?: { hostName?: string; port?: number }): string;
  /** Telemetry received so far from that device, oldest first. */
  messages(deviceId: string): TelemetryMessage[];
  /** Queues a cloud-to-device message; delivered on the transport the device listens on. */
  sendC2D(
    deviceId: string,
    body: string | Buffer,
    properties?: Record<string, string>,
  ): { messageId: string };
}

/** Starts the IoT Hub simulator. */
export async function start(options: IotHubOptions): Promise<IotHubHandle> {
  const opts = parseOptions(iotHubOptionsSchema, options, 'iot-hub');
  const events = new SimulatorEvents<IotHubEvents>(opts.name);
  const stats: IotHubStats = { devices: 0, telemetry: 0, authRejected: 0, c2dSent: 0 };
  const keys = new Map<string, string>();
  const received = new Map<string, TelemetryMessage[]>();
  for (const d of opts.devices) keys.set(d.deviceId, d.primaryKey ?? generateKey());

  const c2d = new C2dQueues((deviceId, transport, msg) => {
    stats.c2dSent++;
    events.emitEvent('c2d-sent', { deviceId, transport, messageId: msg.messageId });
  });
  const reject: HubCore['reject'] = (deviceId, transport, reason) => {
    stats.authRejected++;
    events.emitEvent('auth-rejected', { deviceId, transport, reason });
  };
  const core: HubCore = {
    hostName: opts.hostName,
    events,
    c2d,
    authenticate(deviceId, token, transport) {
      const key = keys.get(deviceId) ?? registeredKey(opts.registryDir, deviceId);
      const verdict = key
        ? verifySas(token, `${opts.hostName}/devices/${deviceId}`, [key], { ignorePort: true })
        : ({ ok: false, reason: 'unknown-identity' } as const);
      if (verdict.ok) {
        events.emitEvent('device-authenticated', { deviceId, transport });
        return true;
      }
      reject(deviceId, transport, verdict.reason);
      return false;
    },
    reject,
    telemetry(deviceId, transport, body, properties) {
      stats.telemetry++;
      const list = received.get(deviceId) ?? [];
      received.set(deviceId, list);
      list.push({ deviceId, transport, body, properties, receivedAt: Date.now() });
      events.emitEvent('telemetry', { deviceId, transport, body, properties });
    },
    settled(deviceId, transport, messageId, outcome) {
      events.emitEvent('c2d-settled', { deviceId, transport, messageId, outcome });
    },
  };

  const amqp = hubAmqpContainer(core);
  const front: Front = await startFront(
    {
      name: opts.name,
      host: opts.host,
      ports: opts.ports,
      tls: opts.tls,
      mqttHooks: hubMqttHooks(core),
      amqp,
      onHttp: hubHttpHandler(core),
    },
    events,
  );
  wireHubMqtt(core, front.broker);

  return {
    name: opts.name,
    hostName: opts.hostName,
    endpoints: front.endpoints,
    events,
    stats: () => ({ ...stats, devices: keys.size }),
    addDevice(deviceId, primaryKey) {
      if (!deviceId) throw new FieldlabError('E_BAD_DEVICE_ID', 'iot-hub: a device id must not be empty');
      const key = primaryKey ?? generateKey();
      keys.set(deviceId, key);
      return key;
    },
    deviceKey: (deviceId) => keys.get(deviceId),
    connectionString(deviceId, o = {}) {
      const key = keys.get(deviceId);
      if (!key) {
        throw new FieldlabError('E_UNKNOWN_DEVICE', `iot-hub: no device ${deviceId}`, {
          hint: 'register it with addDevice() or the devices option',
        });
      }
      const host = `${o.hostName ?? opts.hostName}${o.port ? `:${o.port}` : ''}`;
      return `HostName=${host};DeviceId=${deviceId};SharedAccessKey=${key}`;
    },
    messages: (deviceId) => [...(received.get(deviceId) ?? [])],
    sendC2D(deviceId, body, properties = {}) {
      const msg = c2d.enqueue(deviceId, Buffer.from(body), properties);
      return { messageId: msg.messageId };
    },
    stop: () => front.stop(),
  };
}
