/**
 * The Azure IoT Hub Device Provisioning Service (device API, api-version 2019-03-31) over MQTT, AMQP and
 * HTTPS: individual enrollments and group enrollments, attested by symmetric key (group: derived keys) or
 * X.509 (Microsoft Learn, "DPS X.509 certificate attestation": the registration id is the certificate's
 * subject CN; an individual enrollment names the device certificate by thumbprint, a group its signing CA,
 * root or intermediate, that the device's chain leads to); a registration answers `assigning` with a
 * retry-after, then `assigned` to a lab hub, whose identity list gets the device (X.509: by the device
 * certificate's thumbprint).
 *
 *   MQTT  clientId <regId>, user <idScope>/registrations/<regId>/api-version=..., password SAS
 *         SUB $dps/registrations/res/#   PUB $dps/registrations/PUT/iotdps-register/?$rid=<rid>
 *         PUB $dps/registrations/GET/iotdps-get-operationstatus/?$rid=<rid>&operationId=<op>
 *         ← $dps/registrations/res/<status>/?$rid=<rid>&retry-after=<s>
 *   AMQP  SASL PLAIN <idScope>/registrations/<regId> + SAS; links on <idScope>/registrations/<regId>;
 *         application property iotdps-operation-type (iotdps-register | iotdps-get-operationstatus)
 *   HTTPS PUT /<idScope>/registrations/<regId>/register → 202; GET .../operations/<op> → 200 assigned
 */
import { createHash, randomUUID, type X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import rhea, { type Connection, type EventContext, type Sender } from 'rhea';
import { z } from 'zod';
import { FieldlabError } from '../common/errors.js';
import { SimulatorEvents } from '../common/events.js';
import type { SimulatorHandle } from '../common/handle.js';
import { parseOptions } from '../common/options.js';
import { commonName, hasPeerCertificate, presentedChain } from '../common/x509.js';
import type { BrokerHooks, MqttBrokerHandle } from '../mqtt-broker/index.js';
import type { AuthRejectReason, DpsEvents, DpsStats } from './events.js';
import { amqpPeerOf, readBody, sendJson, startFront } from './front.js';
import { registerKey, registerThumbprint } from './registry.js';
import { deriveDeviceKey, generateKey, verifySas } from './sas.js';
import {
  type CertVerdict,
  checkCertificate,
  isThumbprint,
  normalizeThumbprint,
  parseCaCertificates,
  type X509Credential,
} from './x509.js';

/** The PEM certificates in a string; empty when it holds none or one does not parse. */
function parseCaCertificatesOrUndefined(pem: string): X509Certificate[] {
  try {
    return parseCaCertificates([pem]);
  } catch {
    return [];
  }
}

const port = z.number().int().min(0).max(65535);

/** Where assigned devices go: a hub handle (its `addDevice`/`addX509Device` is called) or just its host name. */
export interface DpsHubTarget {
  readonly hostName: string;
  addDevice?(deviceId: string, primaryKey?: string): string;
  addX509Device?(deviceId: string, x509: { thumbprint: string }): void;
}

const THUMBPRINT_MESSAGE = 'expected a SHA-1 (40) or SHA-256 (64) hex thumbprint';

/**
 * How a registration proved itself (the device key its SAS was signed with, or its certificate's
 * thumbprint) and through which enrollment (`group`: a group's id; absent: its individual enrollment).
 */
type Attestation = ({ key: string } | { thumbprint: string }) & { group?: string };

/**
 * Where an enrollment's devices go (Microsoft Learn, "How to use allocation policies" and "How to
 * reprovision devices"): `hashed` spreads registrations evenly over the candidate hubs by a hash of the
 * registration id, `static` takes the first candidate; candidates are `iotHubs` (host names of the DPS's
 * hubs) or all of them. `reprovisionPolicy` decides a re-registration that lands on another hub.
 */
const allocationShape = {
  allocationPolicy: z.enum(['hashed', 'static']).optional(),
  iotHubs: z.array(z.string().min(1)).min(1).optional(),
  reprovisionPolicy: z
    .object({
      /** Move the device to the newly chosen hub (false: it stays where it was). */
      updateHubAssignment: z.boolean().default(true),
      /** Carry its twin over (substatus deviceDataMigrated) or start afresh (deviceDataReset). */
      migrateDeviceData: z.boolean().default(true),
    })
    .strict()
    .optional(),
};
const allocationSchema = z.object(allocationShape).strict();
export type DpsAllocation = z.input<typeof allocationSchema>;
type Allocation = z.output<typeof allocationSchema>;

const hubTargetSchema = z.union([
  z.string().min(1),
  z.custom<DpsHubTarget>(
    (v) => typeof v === 'object' && v !== null && typeof (v as DpsHubTarget).hostName === 'string',
    'expected a host name or an object with hostName (an iot-hub handle)',
  ),
]);

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
            /** X.509 attestation: the device certificate's thumbprint(s) (SHA-1 or SHA-256 hex). */
            x509: z
              .object({
                thumbprint: z.string().refine(isThumbprint, THUMBPRINT_MESSAGE),
                secondaryThumbprint: z.string().refine(isThumbprint, THUMBPRINT_MESSAGE).optional(),
              })
              .strict()
              .optional(),
            /** The device id in the hub (default: the registration id). */
            deviceId: z.string().min(1).optional(),
            ...allocationShape,
          })
          .strict()
          .refine((e) => !(e.primaryKey && e.x509), { message: 'give primaryKey or x509, not both' }),
      )
      .default([]),
    /**
     * Group enrollments: symmetric key (a device's key is HMAC-SHA256(group key, registration id)) or X.509
     * (`x509.caCertificate`: the group's signing certificate, root or intermediate, PEM).
     */
    groups: z
      .array(
        z
          .object({
            groupId: z.string().min(1),
            primaryKey: z.string().min(1).optional(),
            x509: z
              .object({ caCertificate: z.string().min(1) })
              .strict()
              .optional(),
            ...allocationShape,
          })
          .strict()
          .refine((g) => !(g.primaryKey && g.x509), { message: 'give primaryKey or x509, not both' }),
      )
      .default([]),
    /** The hub devices are assigned to: a hub handle (registers them) or a host name. */
    hub: hubTargetSchema,
    /** More hubs linked to this DPS, for allocation (`hub` is the first of them). */
    linkedHubs: z.array(hubTargetSchema).default([]),
    /** The allocation policy of enrollments that name none. */
    allocationPolicy: z.enum(['hashed', 'static']).default('hashed'),
    /** Seconds the service asks the device to wait between polls (`retry-after`). */
    retryAfterSeconds: z.number().int().min(0).max(60).default(1),
    /** Also record assigned devices (key or certificate thumbprint) here, for a hub in another process. */
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
  /** Adds an individual X.509 enrollment: the device certificate's thumbprint (registration id = its CN). */
  addX509Enrollment(registrationId: string, thumbprint: string, deviceId?: string): void;
  /** Adds an X.509 group enrollment: devices whose chain leads to this CA (root or intermediate) certificate. */
  addX509Group(groupId: string, caCertificatePem: string): void;
  /**
   * Sets the allocation of an individual enrollment (by registration id) or a group (by group id): policy,
   * candidate hubs, reprovision policy. Applies to the next registration.
   */
  setAllocation(enrollmentOrGroupId: string, allocation: DpsAllocation): void;
}

interface Operation {
  operationId: string;
  registrationId: string;
  deviceId: string;
  attestation: Attestation;
  polls: number;
  /** DPS registration substatus: initialAssignment, or after reprovisioning deviceDataMigrated/Reset. */
  substatus: 'initialAssignment' | 'deviceDataMigrated' | 'deviceDataReset';
  hub?: DpsHubTarget;
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
  const individual = new Map<
    string,
    { key?: string; x509?: X509Credential; deviceId: string; allocation?: Allocation }
  >();
  const groups = new Map<string, { key?: string; ca?: X509Certificate; allocation?: Allocation }>();
  const hubs: DpsHubTarget[] = [
    hub,
    ...opts.linkedHubs.map((h) => (typeof h === 'string' ? { hostName: h } : h)),
  ];
  /** The hub each registration was last assigned to (reprovisioning compares with it). */
  const assignments = new Map<string, DpsHubTarget>();
  const checkAllocation = (a: Allocation, where: string): Allocation | undefined => {
    for (const name of a.iotHubs ?? []) {
      if (!hubs.some((h) => h.hostName === name)) {
        throw new FieldlabError('E_BAD_OPTION', `dps: ${where}.iotHubs: ${name} is not a hub of this DPS`, {
          hint: `name one of ${hubs.map((h) => h.hostName).join(', ')} (hub, linkedHubs)`,
        });
      }
    }
    return a.allocationPolicy || a.iotHubs || a.reprovisionPolicy ? a : undefined;
  };
  const allocationOf = (e: Allocation, where: string) => {
    const a = checkAllocation(
      {
        ...(e.allocationPolicy ? { allocationPolicy: e.allocationPolicy } : {}),
        ...(e.iotHubs ? { iotHubs: e.iotHubs } : {}),
        ...(e.reprovisionPolicy ? { reprovisionPolicy: e.reprovisionPolicy } : {}),
      },
      where,
    );
    return a ? { allocation: a } : {};
  };
  const operations = new Map<string, Operation>();
  /** How each registration last authenticated (MQTT and AMQP authenticate once, at connect). */
  const attested = new Map<string, Attestation>();
  const caOf = (pem: string, where: string): X509Certificate => {
    const [ca] = parseCaCertificatesOrUndefined(pem);
    if (!ca) {
      throw new FieldlabError('E_BAD_OPTION', `dps: ${where}: not a PEM certificate`, {
        hint: 'give the group signing certificate (root or intermediate) as PEM',
      });
    }
    return ca;
  };
  for (const [i, e] of opts.enrollments.entries()) {
    individual.set(e.registrationId, {
      ...(e.x509 ? { x509: e.x509 } : { key: e.primaryKey ?? generateKey() }),
      deviceId: e.deviceId ?? e.registrationId,
      ...allocationOf(e, `options.enrollments[${i}]`),
    });
  }
  for (const [i, g] of opts.groups.entries()) {
    groups.set(g.groupId, {
      ...(g.x509
        ? { ca: caOf(g.x509.caCertificate, `options.groups[${i}].x509.caCertificate`) }
        : { key: g.primaryKey ?? generateKey() }),
      ...allocationOf(g, `options.groups[${i}]`),
    });
  }

  /** The hub an enrollment's allocation picks for a registration. */
  const pickHub = (regId: string, a: Allocation | undefined): DpsHubTarget => {
    const names = a?.iotHubs;
    const candidates = names ? hubs.filter((h) => names.includes(h.hostName)) : hubs;
    if ((a?.allocationPolicy ?? opts.allocationPolicy) === 'static' || candidates.length < 2) {
      return candidates[0] ?? hub;
    }
    // Evenly weighted: the same registration id always hashes to the same hub.
    const h = createHash('sha256').update(regId).digest().readUInt32BE(0);
    return candidates[h % candidates.length]!;
  };

  /** The device key a valid token was signed with, or why none. */
  const authenticate = (regId: string, token: string | undefined, transport: string): string | undefined => {
    const resource = `${opts.idScope}/registrations/${regId}`;
    const own = individual.get(regId)?.key;
    const candidates: Array<{ key: string; group?: string }> = [
      ...(own ? [{ key: own }] : []),
      ...[...groups].flatMap(([group, g]) => (g.key ? [{ key: deriveDeviceKey(g.key, regId), group }] : [])),
    ];
    let reason: AuthRejectReason = 'unknown-identity';
    for (const c of candidates) {
      const v = verifySas(token, resource, [c.key]);
      if (v.ok) {
        attested.set(regId, c);
        return c.key;
      }
      reason = v.reason;
    }
    stats.authRejected++;
    events.emitEvent('auth-rejected', { registrationId: regId, transport, reason });
    return undefined;
  };

  /**
   * X.509 attestation: the certificate's CN is the registration id; an individual enrollment's thumbprint
   * or a group's signing CA accepts it. Returns the leaf's SHA-256 thumbprint (the hub registers the device
   * with it), or undefined after an `auth-rejected`.
   */
  const authenticateCert = (
    regId: string,
    peer: PeerCertificate | undefined,
    transport: string,
  ): string | undefined => {
    const chain = presentedChain(peer);
    const leaf = chain[0];
    let reason: AuthRejectReason = leaf ? 'unknown-identity' : 'no-certificate';
    const own = individual.get(regId)?.x509;
    const verdicts: Array<{ v: CertVerdict; group?: string }> = [
      ...(own ? [{ v: checkCertificate(chain, regId, own, []) }] : []),
      ...[...groups].flatMap(([group, g]) =>
        g.ca ? [{ v: checkCertificate(chain, regId, { ca: true }, [g.ca]), group }] : [],
      ),
    ];
    // The registration id is the certificate's subject CN, for individual and group enrollments alike.
    if (leaf && commonName(leaf) !== regId)
      verdicts.unshift({ v: { ok: false, reason: 'subject-mismatch' } });
    for (const { v, group } of verdicts) {
      if (v.ok && leaf) {
        const thumbprint = normalizeThumbprint(leaf.fingerprint256);
        attested.set(regId, { thumbprint, ...(group ? { group } : {}) });
        return thumbprint;
      }
      if (!v.ok) reason = v.reason;
      if (!v.ok && v.reason === 'subject-mismatch') break;
    }
    stats.authRejected++;
    events.emitEvent('auth-rejected', { registrationId: regId, transport, reason });
    return undefined;
  };
  const register = (regId: string, attestation: Attestation | undefined, transport: string): Answer => {
    if (!attestation) return { status: 401, body: { errorCode: 401002, message: 'Unauthorized' } };
    stats.registrations++;
    const op: Operation = {
      operationId: `4.${randomUUID().replace(/-/g, '').slice(0, 16)}.${randomUUID()}`,
      registrationId: regId,
      deviceId: individual.get(regId)?.deviceId ?? regId,
      attestation,
      polls: 0,
      substatus: 'initialAssignment',
      created: new Date().toISOString(),
    };
    // A new registration supersedes the device's earlier operations: one kept per registration id.
    for (const [id, earlier] of operations) if (earlier.registrationId === regId) operations.delete(id);
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
      const a = op.attestation;
      const allocation = a.group ? groups.get(a.group)?.allocation : individual.get(regId)?.allocation;
      let target = pickHub(regId, allocation);
      const previous = assignments.get(regId);
      if (previous && previous.hostName !== target.hostName) {
        // Reprovisioning: a device registering again lands where the enrollment's allocation says now.
        const policy = allocation?.reprovisionPolicy ?? {
          updateHubAssignment: true,
          migrateDeviceData: true,
        };
        if (!policy.updateHubAssignment) target = previous;
        else op.substatus = policy.migrateDeviceData ? 'deviceDataMigrated' : 'deviceDataReset';
      }
      op.hub = target;
      assignments.set(regId, target);
      if ('key' in a) {
        target.addDevice?.(op.deviceId, a.key);
        if (opts.registryDir) registerKey(opts.registryDir, op.deviceId, a.key);
      } else {
        target.addX509Device?.(op.deviceId, { thumbprint: a.thumbprint });
        if (opts.registryDir) registerThumbprint(opts.registryDir, op.deviceId, a.thumbprint);
      }
      stats.assigned++;
      events.emitEvent('registration-assigned', {
        registrationId: regId,
        deviceId: op.deviceId,
        assignedHub: target.hostName,
        transport,
        substatus: op.substatus,
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
          assignedHub: (op.hub ?? hub).hostName,
          deviceId: op.deviceId,
          status: 'assigned',
          substatus: op.substatus,
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
      // X.509 attestation: no password, the TLS client certificate.
      const ok =
        password === undefined && hasPeerCertificate(client.peerCertificate)
          ? authenticateCert(client.clientId, client.peerCertificate, 'mqtt')
          : authenticate(client.clientId, password?.toString(), 'mqtt');
      return ok ? true : { returnCode: 5, reason: 'credentials refused' };
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
      let answer: Answer | undefined;
      if (topic.startsWith('$dps/registrations/PUT/iotdps-register/'))
        answer = register(client.clientId, attested.get(client.clientId), 'mqtt');
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
  // X.509 devices prove themselves by their TLS certificate: no SASL layer (Node) or ANONYMOUS; their links
  // are then checked against the certificate.
  // Not rhea's ANONYMOUS: that one takes the client's initial response as the user name, which would pass
  // for a registration here. This one proves nothing; the certificate does.
  container.sasl_server_mechanisms.ANONYMOUS = () => new NoIdentitySasl();
  const senders = new WeakMap<Connection, Sender>();
  /** The registration path a connection proved: SASL PLAIN user, or the certificate's (on first link). */
  const proven = new WeakMap<Connection, string>();
  const saslUser = (conn: Connection): string | undefined => {
    // rhea keeps the SASL server as `sasl_transport`, or as its `selected` transport when the client may
    // also skip SASL (ANONYMOUS offered): the user name of a completed PLAIN exchange is on it.
    const field = (o: unknown, k: string): unknown =>
      typeof o === 'object' && o !== null ? Reflect.get(o, k) : undefined;
    const sasl = field(conn, 'sasl_transport');
    const user = field(sasl, 'username') ?? field(field(sasl, 'selected'), 'username');
    return typeof user === 'string' ? user : undefined;
  };
  const linkOk = (conn: Connection, address: string): boolean => {
    const path = registrationPath(address);
    if (address === '') return false;
    const known = proven.get(conn) ?? saslUser(conn);
    if (known !== undefined) return known === path;
    const peer = amqpPeerOf(conn)?.peerCertificate;
    const prefix = `${opts.idScope}/registrations/`;
    if (!hasPeerCertificate(peer) || !path.startsWith(prefix)) return false;
    if (!authenticateCert(path.slice(prefix.length), peer, 'amqp')) return false;
    proven.set(conn, path);
    return true;
  };
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
    const user = proven.get(ctx.connection) ?? saslUser(ctx.connection) ?? '';
    if (!user) return;
    const regId = user.slice(`${opts.idScope}/registrations/`.length);
    const props = msg.application_properties ?? {};
    let answer: Answer | undefined;
    if (props['iotdps-operation-type'] === 'iotdps-register') {
      answer = register(regId, attested.get(regId), 'amqp');
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
      // X.509 attestation: no authorization header, the TLS client certificate.
      const socket = req.socket as Partial<TLSSocket>;
      const peer = socket.getPeerCertificate?.(true);
      const ok =
        req.headers.authorization === undefined && hasPeerCertificate(peer)
          ? authenticateCert(regId, peer, 'https')
          : authenticate(regId, req.headers.authorization, 'https');
      if (!ok) {
        sendJson(res, 401, {
          errorCode: 401002,
          message: 'Unauthorized',
          timestampUtc: new Date().toISOString(),
        });
        return;
      }
      let answer: Answer;
      if (m[3] === 'register' && req.method === 'PUT') answer = register(regId, attested.get(regId), 'https');
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
      requestClientCert: true,
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
      groups.set(groupId, { key });
      return key;
    },
    addX509Enrollment(registrationId, thumbprint, deviceId) {
      if (!registrationId) throw new FieldlabError('E_BAD_REGISTRATION_ID', 'dps: registration id is empty');
      if (!isThumbprint(thumbprint)) {
        throw new FieldlabError('E_BAD_OPTION', `dps: ${JSON.stringify(thumbprint)} is not a thumbprint`, {
          hint: THUMBPRINT_MESSAGE,
        });
      }
      individual.set(registrationId, { x509: { thumbprint }, deviceId: deviceId ?? registrationId });
    },
    addX509Group(groupId, caCertificatePem) {
      groups.set(groupId, { ca: caOf(caCertificatePem, `addX509Group(${groupId})`) });
    },
    setAllocation(id, allocation) {
      const a = checkAllocation(
        parseOptions(allocationSchema, allocation, 'dps setAllocation'),
        'setAllocation',
      );
      const target = individual.get(id) ?? groups.get(id);
      if (!target) {
        throw new FieldlabError('E_UNKNOWN_ENROLLMENT', `dps: no enrollment or group ${id}`, {
          hint: 'add it first (addEnrollment, addGroup, addX509Enrollment, addX509Group)',
        });
      }
      if (a) target.allocation = a;
      else delete target.allocation;
    },
    stop: () => front.stop(),
  };
}

/** SASL ANONYMOUS, server side, naming no user: the connection's links are checked by its certificate. */
class NoIdentitySasl {
  outcome: boolean | undefined = undefined;
  username: string | undefined = undefined;
  start(): void {
    this.outcome = true;
  }
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
