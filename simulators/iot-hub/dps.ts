/**
 * The Azure IoT Hub Device Provisioning Service (device API, api-version 2019-03-31) over MQTT, AMQP and
 * HTTPS: individual enrollments and group enrollments (derived keys) with symmetric keys; a registration
 * answers `assigning` with a retry-after, then `assigned` to a lab hub, whose identity list gets the device.
 *
 *   MQTT  clientId <regId>, user <idScope>/registrations/<regId>/api-version=..., password SAS
 *         SUB $dps/registrations/res/#   PUB $dps/registrations/PUT/iotdps-register/?$rid=<rid>
 *         PUB $dps/registrations/GET/iotdps-get-operationstatus/?$rid=<rid>&operationId=<op>
 *         ← $dps/registrations/res/<status>/?$rid=<rid>&retry-after=<s>
 *   AMQP  SASL PLAIN <idScope>/registrations/<regId> + SAS; links on <idScope>/registrations/<regId>;
 *         application property iotdps-operation-type (iotdps-register | iotdps-get-operationstatus)
 *   HTTPS PUT /<idScope>/registrations/<regId>/register → 202; GET .../operations/<op> → 200 assigned
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import rhea, { type Connection, type EventContext, type Sender } from 'rhea';
import { z } from 'zod';
import { FieldlabError } from '../common/errors.js';
import { SimulatorEvents } from '../common/events.js';
import type { SimulatorHandle } from '../common/handle.js';
import { parseOptions } from '../common/options.js';
import type { BrokerHooks, MqttBrokerHandle } from '../mqtt-broker/index.js';
import type { AuthRejectReason, DpsEvents, DpsStats } from './events.js';
import { readBody, sendJson, startFront } from './front.js';
import { registerKey } from './registry.js';
import { deriveDeviceKey, generateKey, verifySas } from './sas.js';

const port = z.number().int().min(0).max(65535);

/** Where assigned devices go: a hub handle (its `addDevice` is called) or just its host name. */
export interface DpsHubTarget {
  readonly hostName: string;
  addDevice?(deviceId: string, primaryKey?: string): string;
}

export const dpsOptionsSchema = z
  .object({
    name: z.string().min(1).default('dps'),
    host: z.string().min(1).default('127.0.0.1'),
    /** The service's DNS name (global.azure-devices-provisioning.net in Azure). */
    hostName: z.string().min(1).default('global.dps.example.com'),
    idScope: z.string().min(1).default('0ne00FAB001'),
    ports: z
      .object({ mqtts: port.default(0), amqps: port.default(0), https: port.default(0) })
      .strict()
      .default({ mqtts: 0, amqps: 0, https: 0 }),
    tls: z.object({ certPem: z.string().min(1), keyPem: z.string().min(1) }).strict(),
    enrollments: z
      .array(
        z
          .object({
            registrationId: z.string().min(1),
            primaryKey: z.string().min(1).optional(),
            /** The device id in the hub (default: the registration id). */
            deviceId: z.string().min(1).optional(),
          })
          .strict(),
      )
      .default([]),
    /** Group enrollments: a device's key is HMAC-SHA256(group key, registration id). */
    groups: z
      .array(z.object({ groupId: z.string().min(1), primaryKey: z.string().min(1).optional() }).strict())
      .default([]),
    /** The hub devices are assigned to: a hub handle (registers them) or a host name. */
    hub: z.union([
      z.string().min(1),
      z.custom<DpsHubTarget>(
        (v) => typeof v === 'object' && v !== null && typeof (v as DpsHubTarget).hostName === 'string',
        'expected a host name or an object with hostName (an iot-hub handle)',
      ),
    ]),
    /** Seconds the service asks the device to wait between polls (`retry-after`). */
    retryAfterSeconds: z.number().int().min(0).max(60).default(1),
    /** Also record assigned devices here, for a hub in another process (its `registryDir`). */
    registryDir: z.string().min(1).optional(),
    /** Status queries answered `assigning` before `assigned`. */
    assigningPolls: z.number().int().min(0).max(100).default(0),
  })
  .strict();

export type DpsOptions = z.input<typeof dpsOptionsSchema>;

export interface DpsHandle extends SimulatorHandle<DpsEvents, DpsStats> {
  readonly idScope: string;
  readonly hostName: string;
  /** Adds an individual enrollment; returns its primary key. */
  addEnrollment(registrationId: string, primaryKey?: string, deviceId?: string): string;
  /** Adds a group enrollment; returns the group key (device keys derive from it). */
  addGroup(groupId: string, primaryKey?: string): string;
}

interface Operation {
  operationId: string;
  registrationId: string;
  deviceId: string;
  key: string;
  polls: number;
  created: string;
  assigned?: string;
}

interface Answer {
  status: number;
  body: unknown;
}

/** Starts the DPS simulator. */
export async function startDps(options: DpsOptions): Promise<DpsHandle> {
  const opts = parseOptions(dpsOptionsSchema, options, 'dps');
  const events = new SimulatorEvents<DpsEvents>(opts.name);
  const stats: DpsStats = { registrations: 0, assigned: 0, authRejected: 0 };
  const hub: DpsHubTarget = typeof opts.hub === 'string' ? { hostName: opts.hub } : opts.hub;
  const individual = new Map<string, { key: string; deviceId: string }>();
  const groups = new Map<string, string>();
  const operations = new Map<string, Operation>();
  /** The key each registration last authenticated with (MQTT and AMQP authenticate once, at connect). */
  const authedKeys = new Map<string, string>();
  for (const e of opts.enrollments) {
    individual.set(e.registrationId, {
      key: e.primaryKey ?? generateKey(),
      deviceId: e.deviceId ?? e.registrationId,
    });
  }
  for (const g of opts.groups) groups.set(g.groupId, g.primaryKey ?? generateKey());

  /** The device key a valid token was signed with, or why none. */
  const authenticate = (regId: string, token: string | undefined, transport: string): string | undefined => {
    const resource = `${opts.idScope}/registrations/${regId}`;
    const candidates = [
      ...(individual.has(regId) ? [individual.get(regId)!.key] : []),
      ...[...groups.values()].map((k) => deriveDeviceKey(k, regId)),
    ];
    let reason: AuthRejectReason = 'unknown-identity';
    for (const key of candidates) {
      const v = verifySas(token, resource, [key]);
      if (v.ok) {
        authedKeys.set(regId, key);
        return key;
      }
      reason = v.reason;
    }
    stats.authRejected++;
    events.emitEvent('auth-rejected', { registrationId: regId, transport, reason });
    return undefined;
  };

  const register = (regId: string, key: string, transport: string): Answer => {
    stats.registrations++;
    const op: Operation = {
      operationId: `4.${randomUUID().replace(/-/g, '').slice(0, 16)}.${randomUUID()}`,
      registrationId: regId,
      deviceId: individual.get(regId)?.deviceId ?? regId,
      key,
      polls: 0,
      created: new Date().toISOString(),
    };
    operations.set(op.operationId, op);
    events.emitEvent('registration-request', {
      registrationId: regId,
      transport,
      operationId: op.operationId,
    });
    return { status: 202, body: { operationId: op.operationId, status: 'assigning' } };
  };

  const status = (regId: string, operationId: string, transport: string): Answer => {
    const op = operations.get(operationId);
    if (!op || op.registrationId !== regId) {
      return { status: 404, body: { errorCode: 404201, message: 'Operation not found.' } };
    }
    if (op.polls < opts.assigningPolls) {
      op.polls++;
      return { status: 202, body: { operationId, status: 'assigning' } };
    }
    if (!op.assigned) {
      op.assigned = new Date().toISOString();
      hub.addDevice?.(op.deviceId, op.key);
      if (opts.registryDir) registerKey(opts.registryDir, op.deviceId, op.key);
      stats.assigned++;
      events.emitEvent('registration-assigned', {
        registrationId: regId,
        deviceId: op.deviceId,
        assignedHub: hub.hostName,
        transport,
      });
    }
    return {
      status: 200,
      body: {
        operationId,
        status: 'assigned',
        registrationState: {
          registrationId: regId,
          createdDateTimeUtc: op.created,
          assignedHub: hub.hostName,
          deviceId: op.deviceId,
          status: 'assigned',
          substatus: 'initialAssignment',
          lastUpdatedDateTimeUtc: op.assigned,
          etag: `"${op.operationId.slice(-8)}"`,
        },
      },
    };
  };

  // --- MQTT ---
  let broker: MqttBrokerHandle | undefined;
  const mqttHooks: BrokerHooks = {
    async authenticate(client, password) {
      const userPrefix = `${opts.idScope}/registrations/${client.clientId}/`;
      if (!client.username?.startsWith(userPrefix)) {
        stats.authRejected++;
        events.emitEvent('auth-rejected', {
          registrationId: client.clientId,
          transport: 'mqtt',
          reason: 'wrong-client-id',
        });
        return { returnCode: 5, reason: `username must start with ${userPrefix}` };
      }
      return authenticate(client.clientId, password?.toString(), 'mqtt')
        ? true
        : { returnCode: 5, reason: 'SAS token refused' };
    },
    async authorizeSubscribe(_client, topic) {
      return topic.startsWith('$dps/registrations/res/');
    },
    async authorizePublish(_client, topic) {
      return topic.startsWith('$dps/registrations/');
    },
    onPublish(client, topic) {
      const q = new URLSearchParams(topic.split('?')[1] ?? '');
      const rid = q.get('$rid');
      if (rid === null || !broker) return;
      const key = authedKeys.get(client.clientId) ?? '';
      let answer: Answer | undefined;
      if (topic.startsWith('$dps/registrations/PUT/iotdps-register/'))
        answer = register(client.clientId, key, 'mqtt');
      else if (topic.startsWith('$dps/registrations/GET/iotdps-get-operationstatus/')) {
        answer = status(client.clientId, q.get('operationId') ?? '', 'mqtt');
      }
      if (!answer) return;
      const retry = answer.status === 202 ? `&retry-after=${opts.retryAfterSeconds}` : '';
      // To the connection that asked: `$dps/registrations/res/#` is every registration's reply topic.
      void broker.publishTo(
        client.connection,
        `$dps/registrations/res/${answer.status}/?$rid=${rid}${retry}`,
        JSON.stringify(answer.body),
        0,
      );
    },
  };
  // --- AMQP ---
  const container = rhea.create_container({ id: `${opts.name}-amqp` });
  // SASL PLAIN only: [AMQP 1.0 §5.3] the DPS authenticates the registration in the SASL layer.
  container.sasl_server_mechanisms.enable_plain((user: string, pass: string) => {
    const m = new RegExp(`^${escapeRegExp(opts.idScope)}/registrations/(.+)$`).exec(user);
    return m ? authenticate(m[1]!, pass, 'amqp') !== undefined : false;
  });
  const senders = new WeakMap<Connection, Sender>();
  const saslUser = (conn: Connection) =>
    (conn as unknown as { sasl_transport?: { username?: string } }).sasl_transport?.username;
  const linkOk = (conn: Connection, address: string) =>
    address !== '' && saslUser(conn) === registrationPath(address);
  container.on('sender_open', (ctx: EventContext) => {
    const address = String((ctx.sender!.source as { address?: string } | undefined)?.address ?? '');
    if (!linkOk(ctx.connection, address)) ctx.sender!.close({ condition: 'amqp:unauthorized-access' });
    else senders.set(ctx.connection, ctx.sender!);
  });
  container.on('receiver_open', (ctx: EventContext) => {
    const address = String((ctx.receiver!.target as { address?: string } | undefined)?.address ?? '');
    if (!linkOk(ctx.connection, address)) ctx.receiver!.close({ condition: 'amqp:unauthorized-access' });
  });
  container.on('message', (ctx: EventContext) => {
    const msg = ctx.message!;
    const user = saslUser(ctx.connection) ?? '';
    const regId = user.slice(`${opts.idScope}/registrations/`.length);
    const props = msg.application_properties ?? {};
    let answer: Answer | undefined;
    if (props['iotdps-operation-type'] === 'iotdps-register') {
      answer = register(regId, authedKeys.get(regId) ?? '', 'amqp');
    } else if (props['iotdps-operation-type'] === 'iotdps-get-operationstatus') {
      answer = status(regId, String(props['iotdps-operation-id'] ?? ''), 'amqp');
    }
    if (!answer) return;
    senders.get(ctx.connection)?.send({
      correlation_id: msg.correlation_id,
      body: rhea.message.data_section(Buffer.from(JSON.stringify(answer.body))),
      // The poll interval under both spellings the SDKs read (application-property keys are case-sensitive):
      // `retry-after` (Node), `Retry-After` (C#); Java and C only read the body.
      application_properties:
        answer.status === 202
          ? { 'retry-after': String(opts.retryAfterSeconds), 'Retry-After': String(opts.retryAfterSeconds) }
          : {},
    });
  });
  container.on('error', () => undefined);
  container.on('connection_error', () => undefined);
  container.on('disconnected', () => undefined);
  container.on('protocol_error', () => undefined);

  // --- HTTPS ---
  const onHttp = (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'https://dps');
      const m = /^\/([^/]+)\/registrations\/([^/]+)\/(register|operations\/([^/]+))$/.exec(url.pathname);
      if (!m || decodeURIComponent(m[1]!) !== opts.idScope) {
        sendJson(res, 404, { errorCode: 404000, message: 'Not found.' });
        return;
      }
      const regId = decodeURIComponent(m[2]!);
      await readBody(req);
      const key = authenticate(regId, req.headers.authorization, 'https');
      if (!key) {
        sendJson(res, 401, {
          errorCode: 401002,
          message: 'Unauthorized',
          timestampUtc: new Date().toISOString(),
        });
        return;
      }
      let answer: Answer;
      if (m[3] === 'register' && req.method === 'PUT') answer = register(regId, key, 'https');
      else if (m[4] && req.method === 'GET') answer = status(regId, decodeURIComponent(m[4]), 'https');
      else answer = { status: 405, body: { errorCode: 405000, message: 'Method not allowed.' } };
      sendJson(
        res,
        answer.status,
        answer.body,
        answer.status === 202 ? { 'retry-after': String(opts.retryAfterSeconds) } : {},
      );
    })().catch(() => {
      if (!res.headersSent) sendJson(res, 500, { errorCode: 500000, message: 'Internal error.' });
    });
  };

  const front = await startFront(
    {
      name: opts.name,
      host: opts.host,
      ports: opts.ports,
      tls: opts.tls,
      mqttHooks,
      amqp: container,
      onHttp,
    },
    events,
  );
  broker = front.broker;

  return {
    name: opts.name,
    idScope: opts.idScope,
    hostName: opts.hostName,
    endpoints: front.endpoints,
    events,
    stats: () => ({ ...stats }),
    addEnrollment(registrationId, primaryKey, deviceId) {
      if (!registrationId) throw new FieldlabError('E_BAD_REGISTRATION_ID', 'dps: registration id is empty');
      const key = primaryKey ?? generateKey();
      individual.set(registrationId, { key, deviceId: deviceId ?? registrationId });
      return key;
    },
    addGroup(groupId, primaryKey) {
      const key = primaryKey ?? generateKey();
      groups.set(groupId, key);
      return key;
    },
    stop: () => front.stop(),
  };
}

/**
 * The `<idScope>/registrations/<regId>` a DPS link names, however the SDK spells its address: bare (Node,
 * C#), with a leading slash (Java: `/<idScope>/registrations/<regId>`) or as a URL (C:
 * `amqps://<host>/<idScope>/registrations/<regId>`).
 */
export function registrationPath(address: string): string {
  return address.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '').replace(/^\/+/, '');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
