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
import { hasPeerCertificate, presentedChain } from '../common/x509.js';
import { hubAmqpContainer } from './amqp-hub.js';
import { C2dQueues } from './c2d.js';
import { type Credentials, type HubCore, sasResourcePath } from './core.js';
import type { AuthRejectReason, HubTransport, IotHubEvents, IotHubStats } from './events.js';
import { type Front, startFront } from './front.js';
import { hubHttpHandler } from './http-hub.js';
import { hubMqttHooks, wireHubMqtt } from './mqtt-hub.js';
import { registeredKey, registeredThumbprint } from './registry.js';
import { matchRoutes, parseRoutes, type Route, type RouteSpec, sinkText } from './routes.js';
import { generateKey, verifySas } from './sas.js';
import { type MethodResult, TwinStore } from './twin.js';
import { checkCertificate, isThumbprint, parseCaCertificates, type X509Credential } from './x509.js';

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
export { registeredKey, registeredThumbprint, registerKey, registerThumbprint } from './registry.js';
export type { RouteSpec } from './routes.js';
export { buildSas, deriveDeviceKey, generateKey, parseSas, type SasToken, verifySas } from './sas.js';
export type { MethodResult, Twin } from './twin.js';
export { normalizeThumbprint, type X509Credential } from './x509.js';

const port = z.number().int().min(0).max(65535);
const base64Key = z.string().refine((s) => Buffer.from(s, 'base64').length >= 16, {
  message: 'expected a base64 symmetric key (16+ bytes)',
});

/**
 * An identity's X.509 credential, as the hub registers it: `thumbprint` (and `secondaryThumbprint`) of a
 * self-signed or any certificate (SHA-1 or SHA-256 hex), or `ca: true` (signed by one of `caCertificates`,
 * subject CN = the device id).
 */
const x509Schema = z
  .object({
    thumbprint: z
      .string()
      .refine(isThumbprint, 'expected a SHA-1 (40) or SHA-256 (64) hex thumbprint')
      .optional(),
    secondaryThumbprint: z
      .string()
      .refine(isThumbprint, 'expected a SHA-1 (40) or SHA-256 (64) hex thumbprint')
      .optional(),
    ca: z.boolean().optional(),
  })
  .strict()
  .refine((x) => (x.ca === true) !== (x.thumbprint !== undefined), {
    message: 'give either thumbprint (self-signed) or ca: true (CA-signed), not both and not neither',
  });

/**
 * A module identity of a device (`<deviceId>/<moduleId>`): SAS key, or X.509 (a thumbprint, or `ca: true`:
 * signed by one of `caCertificates`, subject CN `<deviceId>/<moduleId>`, the module identity's name).
 */
const moduleSchema = z
  .object({
    moduleId: z.string().min(1),
    primaryKey: base64Key.optional(),
    x509: x509Schema.optional(),
  })
  .strict()
  .refine((m) => !(m.primaryKey && m.x509), {
    message: 'a module authenticates with a primaryKey (SAS) or x509, not both',
  });

export const routeSpecSchema = z.union([
  z.string().min(1),
  z
    .object({
      route: z.string().min(1),
      priority: z.number().int().min(0).max(9).optional(),
      timeToLiveSecs: z.number().int().min(0).optional(),
    })
    .strict(),
]);

/** Module input messages kept per module until it takes them (edgeHub stores them; the lab bounds it). */
const MAX_PENDING_INPUTS = 1000;

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
    /**
     * Device identities: SAS (id → primary key, generated when absent) or X.509 (`x509`), each with its
     * module identities.
     */
    devices: z
      .array(
        z
          .object({
            deviceId: z.string().min(1),
            primaryKey: base64Key.optional(),
            x509: x509Schema.optional(),
            modules: z.array(moduleSchema).default([]),
            /**
             * The device's IoT Edge routes, as `$edgeHub` desired properties have them (name → `FROM ... INTO
             * ...`, or `{ route }`): its modules' messages go to `$upstream` (the hub's telemetry) or to
             * another module's input (`BrokeredEndpoint("/modules/<m>/inputs/<i>")`), as edgeHub routes them.
             * Without routes, module messages are the hub's telemetry.
             */
            routes: z.record(z.string(), routeSpecSchema).optional(),
          })
          .strict()
          .refine((d) => !(d.primaryKey && d.x509), {
            message: 'a device authenticates with a primaryKey (SAS) or x509, not both',
          }),
      )
      .default([]),
    /**
     * CA certificates (PEM) registered and verified in the hub: devices with `x509: { ca: true }` present a
     * certificate that chains to one of them.
     */
    caCertificates: z.array(z.string().min(1)).default([]),
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
  /** Registers (or replaces) a device identity with a symmetric key; returns its primary key. */
  addDevice(deviceId: string, primaryKey?: string): string;
  /** Registers (or replaces) a device identity that authenticates with an X.509 certificate. */
  addX509Device(deviceId: string, x509: X509Credential): void;
  /** Registers (or replaces) a module identity of a registered device; returns its primary key (SAS). */
  addModule(
    deviceId: string,
    moduleId: string,
    credential?: { primaryKey?: string; x509?: X509Credential },
  ): string;
  /** The primary key of a device (or of `<deviceId>/<moduleId>`), if registered with one. */
  deviceKey(deviceId: string): string | undefined;
  /** `HostName=<hostName>[:port];DeviceId=...;SharedAccessKey=...` (`x509=true` for X.509 devices). */
  connectionString(deviceId: string, opts?: { hostName?: string; port?: number }): string;
  /** `HostName=...;DeviceId=...;ModuleId=...;SharedAccessKey=...` for a module identity. */
  moduleConnectionString(
    deviceId: string,
    moduleId: string,
    opts?: { hostName?: string; port?: number },
  ): string;
  /** Telemetry received so far from that device (or `<deviceId>/<moduleId>`), oldest first. */
  messages(deviceId: string): TelemetryMessage[];
  /**
   * Sends a module an input message (`on('inputMessage')` in the SDKs), as edgeHub delivers what a route
   * brings to `BrokeredEndpoint("/modules/<moduleId>/inputs/<inputName>")`: MQTT
   * `devices/<d>/modules/<m>/inputs/<inputName>/<props>`, AMQP on the module's `/messages/events` receiver
   * link with annotation `x-opt-input-name`. Queued until the module listens.
   */
  sendToModuleInput(
    deviceId: string,
    moduleId: string,
    inputName: string,
    body: string | Buffer,
    properties?: Record<string, string>,
  ): { messageId: string };
  /** Replaces a device's IoT Edge routes (see the `routes` option); `{}` removes them. */
  setRoutes(deviceId: string, routes: Record<string, RouteSpec>): void;
  /** Queues a cloud-to-device message; delivered on the transport the device listens on. */
  sendC2D(
    deviceId: string,
    body: string | Buffer,
    properties?: Record<string, string>,
  ): { messageId: string };
  /** The device or module twin (`<deviceId>/<moduleId>`): desired and reported properties with `$version`. */
  twin(identity: string): { desired: Record<string, unknown>; reported: Record<string, unknown> };
  /** Patches the desired properties (a null value removes one); connected devices get the patch. */
  updateDesired(identity: string, patch: Record<string, unknown>): number;
  /**
   * Invokes a direct method on a connected device or module; resolves with its answer, or with status 404
   * (not connected / not subscribed) or 504 (no answer within `timeoutMs`), as the service API answers.
   */
  invokeMethod(
    identity: string,
    methodName: string,
    payload?: unknown,
    opts?: { timeoutMs?: number },
  ): Promise<MethodResult>;
}

/** A registered identity (device or `<deviceId>/<moduleId>`): a symmetric key or an X.509 credential. */
interface Identity {
  key?: string;
  x509?: X509Credential;
}

/** Starts the IoT Hub simulator. */
export async function start(options: IotHubOptions): Promise<IotHubHandle> {
  const opts = parseOptions(iotHubOptionsSchema, options, 'iot-hub');
  const events = new SimulatorEvents<IotHubEvents>(opts.name);
  const stats: IotHubStats = { devices: 0, telemetry: 0, authRejected: 0, c2dSent: 0, inputsSent: 0 };
  /** Devices by id and modules by `<deviceId>/<moduleId>`. */
  const identities = new Map<string, Identity>();
  const received = new Map<string, TelemetryMessage[]>();
  let cas: ReturnType<typeof parseCaCertificates>;
  try {
    cas = parseCaCertificates(opts.caCertificates);
  } catch (err) {
    throw new FieldlabError(
      'E_BAD_OPTION',
      `iot-hub: options.caCertificates: not a PEM certificate (${String(err)})`,
      {
        hint: 'give each CA certificate as PEM (-----BEGIN CERTIFICATE-----)',
      },
    );
  }
  const identityOf = (key: string | undefined, x509: X509Credential | undefined): Identity =>
    x509 ? { x509 } : { key: key ?? generateKey() };
  /** Edge routes by device id. */
  const routes = new Map<string, Route[]>();
  for (const [i, d] of opts.devices.entries()) {
    if (d.routes) routes.set(d.deviceId, parseRoutes(d.routes, `options.devices[${i}].routes`));
  }
  for (const d of opts.devices) {
    identities.set(d.deviceId, identityOf(d.primaryKey, d.x509));
    for (const m of d.modules)
      identities.set(`${d.deviceId}/${m.moduleId}`, identityOf(m.primaryKey, m.x509));
  }

  const c2d = new C2dQueues((deviceId, transport, msg) => {
    stats.c2dSent++;
    events.emitEvent('c2d-sent', { deviceId, transport, messageId: msg.messageId });
  });
  const inputs = new C2dQueues(
    (deviceId, transport, msg) => {
      stats.inputsSent++;
      const inputName = msg.inputName ?? '';
      events.emitEvent('input-sent', { deviceId, transport, messageId: msg.messageId, inputName });
    },
    MAX_PENDING_INPUTS,
    (deviceId, msg) => {
      const inputName = msg.inputName ?? '';
      events.emitEvent('input-expired', { deviceId, messageId: msg.messageId, inputName });
    },
  );
  const twins = new TwinStore();
  const reject: HubCore['reject'] = (deviceId, transport, reason) => {
    stats.authRejected++;
    events.emitEvent('auth-rejected', { deviceId, transport, reason });
  };
  /** Why credentials do not prove `id`, or undefined when they do. */
  const refusal = (id: string, cred: Credentials): AuthRejectReason | undefined => {
    let known = identities.get(id);
    if (!known && !id.includes('/')) {
      // Assigned by a DPS in another process (containers sharing `registryDir`).
      const thumbprint = registeredThumbprint(opts.registryDir, id);
      if (thumbprint && isThumbprint(thumbprint)) known = { x509: { thumbprint } };
    }
    const key = known?.key ?? (known || id.includes('/') ? undefined : registeredKey(opts.registryDir, id));
    const hasCert = hasPeerCertificate(cred.peer);
    if (known?.x509) {
      // An X.509 identity has no keys: a SAS token cannot prove it.
      if (!hasCert) {
        return cred.token ? 'auth-type-mismatch' : 'no-certificate';
      }
      // A CA-signed certificate names the whole identity: CN `<deviceId>` or `<deviceId>/<moduleId>`.
      const v = checkCertificate(presentedChain(cred.peer), id, known.x509, cas);
      return v.ok ? undefined : v.reason;
    }
    if (!key) return 'unknown-identity';
    if (cred.token === undefined && hasCert) return 'auth-type-mismatch';
    const v = verifySas(cred.token, `${opts.hostName}/${sasResourcePath(id)}`, [key], { ignorePort: true });
    return v.ok ? undefined : v.reason;
  };
  /** Records a message as the hub's telemetry (what reached IoT Hub). */
  const record = (
    deviceId: string,
    transport: HubTransport,
    body: Buffer,
    properties: Record<string, string>,
  ) => {
    stats.telemetry++;
    const list = received.get(deviceId) ?? [];
    received.set(deviceId, list);
    list.push({ deviceId, transport, body, properties, receivedAt: Date.now() });
    events.emitEvent('telemetry', { deviceId, transport, body, properties });
  };
  /** edgeHub's part: a module message of a device with routes goes where they say (routes.ts). */
  const route = (
    identity: string,
    transport: HubTransport,
    body: Buffer,
    properties: Record<string, string>,
  ): boolean => {
    const [deviceId = '', moduleId] = identity.split('/');
    const mine = moduleId === undefined ? undefined : routes.get(deviceId);
    if (!mine || moduleId === undefined) return false;
    // MQTT carries the output as `$.on` on the topic, AMQP as application property `iothub-outputname`.
    const output = properties['$.on'] ?? properties['iothub-outputname'];
    const matched = matchRoutes(mine, moduleId, output);
    const from = output === undefined ? { deviceId: identity } : { deviceId: identity, output };
    if (matched.length === 0) events.emitEvent('message-unrouted', from);
    const forwarded = Object.fromEntries(
      Object.entries(properties).filter(([k]) => !k.startsWith('$.') && k !== 'iothub-outputname'),
    );
    let upstream = false;
    for (const r of matched) {
      const routed = { ...from, route: r.name, sink: sinkText(r.sink) };
      if ('upstream' in r.sink) upstream = true;
      else {
        try {
          // Kept for the module even before it is registered or connects, as edgeHub stores it.
          inputs.enqueue(`${deviceId}/${r.sink.module}`, body, forwarded, {
            inputName: r.sink.input,
            priority: r.priority,
            expiresAt: Date.now() + r.timeToLiveSecs * 1000,
          });
        } catch {
          events.emitEvent('message-routed', { ...routed, dropped: 'queue-full' });
          continue;
        }
      }
      events.emitEvent('message-routed', routed);
    }
    // Every $upstream route delivers the same message to the hub once.
    if (upstream) record(identity, transport, body, properties);
    return true;
  };
  const core: HubCore = {
    hostName: opts.hostName,
    events,
    c2d,
    inputs,
    twins,
    authenticate(id, cred, transport) {
      const why = refusal(id, cred);
      if (why === undefined) {
        const credential = identities.get(id)?.x509 ? 'x509' : 'sas';
        events.emitEvent('device-authenticated', { deviceId: id, transport, credential });
        return true;
      }
      reject(id, transport, why);
      return false;
    },
    reject,
    telemetry(deviceId, transport, body, properties) {
      if (!route(deviceId, transport, body, properties)) record(deviceId, transport, body, properties);
    },
    settled(deviceId, transport, messageId, outcome, input) {
      events.emitEvent(input ? 'input-settled' : 'c2d-settled', { deviceId, transport, messageId, outcome });
    },
  };

  const amqp = hubAmqpContainer(core);
  const front: Front = await startFront(
    {
      name: opts.name,
      host: opts.host,
      ports: opts.ports,
      tls: opts.tls,
      // X.509 devices prove themselves in the handshake; the hub decides per identity (x509.ts).
      requestClientCert: true,
      mqttHooks: hubMqttHooks(core),
      amqp,
      onHttp: hubHttpHandler(core),
    },
    events,
  );
  wireHubMqtt(core, front.broker);

  const badId = (what: string, id: string) =>
    new FieldlabError('E_BAD_DEVICE_ID', `iot-hub: ${what} ${JSON.stringify(id)} is not a valid id`, {
      hint: 'ids are non-empty and contain no "/"',
    });
  const checkId = (what: string, id: string) => {
    if (!id || id.includes('/')) throw badId(what, id);
  };
  const host = (o: { hostName?: string; port?: number }) =>
    `${o.hostName ?? opts.hostName}${o.port ? `:${o.port}` : ''}`;
  const unknown = (id: string) =>
    new FieldlabError('E_UNKNOWN_DEVICE', `iot-hub: no device ${id}`, {
      hint: 'register it with addDevice()/addModule() or the devices option',
    });

  return {
    name: opts.name,
    hostName: opts.hostName,
    endpoints: front.endpoints,
    events,
    stats: () => ({ ...stats, devices: [...identities.keys()].filter((k) => !k.includes('/')).length }),
    addDevice(deviceId, primaryKey) {
      checkId('device id', deviceId);
      const key = primaryKey ?? generateKey();
      identities.set(deviceId, { key });
      return key;
    },
    addX509Device(deviceId, x509) {
      checkId('device id', deviceId);
      identities.set(deviceId, { x509: parseOptions(x509Schema, x509, 'iot-hub addX509Device') });
    },
    addModule(deviceId, moduleId, credential = {}) {
      checkId('device id', deviceId);
      checkId('module id', moduleId);
      if (!identities.has(deviceId)) throw unknown(deviceId);
      const x509 = credential.x509
        ? parseOptions(x509Schema, credential.x509, 'iot-hub addModule')
        : undefined;
      const identity = identityOf(credential.primaryKey, x509);
      identities.set(`${deviceId}/${moduleId}`, identity);
      return identity.key ?? '';
    },
    deviceKey: (deviceId) => identities.get(deviceId)?.key,
    connectionString(deviceId, o = {}) {
      const id = identities.get(deviceId);
      if (!id || deviceId.includes('/')) throw unknown(deviceId);
      return id.x509
        ? `HostName=${host(o)};DeviceId=${deviceId};x509=true`
        : `HostName=${host(o)};DeviceId=${deviceId};SharedAccessKey=${id.key}`;
    },
    moduleConnectionString(deviceId, moduleId, o = {}) {
      const id = identities.get(`${deviceId}/${moduleId}`);
      if (!id) throw unknown(`${deviceId}/${moduleId}`);
      return id.x509
        ? `HostName=${host(o)};DeviceId=${deviceId};ModuleId=${moduleId};x509=true`
        : `HostName=${host(o)};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${id.key}`;
    },
    messages: (deviceId) => [...(received.get(deviceId) ?? [])],
    sendToModuleInput(deviceId, moduleId, inputName, body, properties = {}) {
      // The input is a topic level on MQTT: no separators or wildcards.
      if (!/^[^/#+\s]+$/.test(inputName)) {
        throw new FieldlabError(
          'E_BAD_OPTION',
          `iot-hub: input name ${JSON.stringify(inputName)} is not valid`,
          {
            hint: 'name the input as the module reads it (e.g. input1): no "/", "#", "+" or spaces',
          },
        );
      }
      const identity = `${deviceId}/${moduleId}`;
      if (!identities.has(identity)) throw unknown(identity);
      const msg = inputs.enqueue(identity, Buffer.from(body), properties, { inputName });
      return { messageId: msg.messageId };
    },
    setRoutes(deviceId, r) {
      if (!identities.has(deviceId) || deviceId.includes('/')) throw unknown(deviceId);
      const parsed = parseRoutes(
        parseOptions(z.record(z.string(), routeSpecSchema), r, 'iot-hub setRoutes'),
        `setRoutes(${deviceId})`,
      );
      if (parsed.length === 0) routes.delete(deviceId);
      else routes.set(deviceId, parsed);
    },
    sendC2D(deviceId, body, properties = {}) {
      if (deviceId.includes('/')) {
        // IoT Hub has no cloud-to-module messages: a module gets input messages (edgeHub routes them).
        throw new FieldlabError('E_BAD_DEVICE_ID', `iot-hub: ${deviceId} is a module: modules get no C2D`, {
          hint: 'send it an input message: sendToModuleInput(deviceId, moduleId, inputName, body)',
        });
      }
      const msg = c2d.enqueue(deviceId, Buffer.from(body), properties);
      return { messageId: msg.messageId };
    },
    twin(identity) {
      if (!identities.has(identity)) throw unknown(identity);
      return twins.get(identity);
    },
    updateDesired(identity, patch) {
      if (!identities.has(identity)) throw unknown(identity);
      return twins.patchDesired(identity, patch);
    },
    invokeMethod(identity, methodName, payload, o = {}) {
      if (!identities.has(identity)) return Promise.reject(unknown(identity));
      return twins.invoke(identity, methodName, payload, o.timeoutMs);
    },
    async stop() {
      twins.close();
      await front.stop();
    },
  };
}
