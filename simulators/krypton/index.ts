import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { Socket } from 'node:net';
import { z } from 'zod';
import { FieldlabError } from '../common/errors.js';
import { SimulatorEvents } from '../common/events.js';
import type { SimulatorHandle } from '../common/handle.js';
import { ConnectionTracker, closeServer, hostPort, listen, listenOnHandle } from '../common/net.js';
import { parseOptions } from '../common/options.js';
import {
  announceConnection,
  describeTlsClientError,
  type TlsClientErrorEvent,
} from '../common/server-events.js';
import { registerX509 } from './dps-client.js';
import { sourceMatcher } from './sources.js';

/**
 * SORACOM Krypton's Azure IoT provisioning API (seed 002; SORACOM's "Krypton: Azure IoT Hub" docs and their
 * example client): the device POSTs `/v1/provisioning/azure/iot/register` on port 8036 over HTTPS and gets an
 * `operationId`; Krypton, as the provisioning client, issues a device certificate (CN = registration id),
 * registers it at the Device Provisioning Service with X.509 attestation and records the outcome; the device
 * polls `GET /v1/provisioning/azure/iot/registrations/{operationId}` until `status: assigned`, which carries
 * `certificate`, `privateKey`, `host` (the assigned IoT Hub) and `deviceId`. The device writes no DPS code.
 *
 * Krypton authenticates a device by the network its request arrives from (the SIM's, reached through
 * SORACOM Air or Arc): any other source gets 403 with SORACOM's error body `{ code, message }`. In the real
 * service the endpoint is also firewalled (the seed's client timed out); in a lab that part is an nft DROP,
 * and this source check is the second guard.
 */

export const REGISTER_PATH = '/v1/provisioning/azure/iot/register';
export const REGISTRATIONS_PATH = '/v1/provisioning/azure/iot/registrations/';

/** What Krypton obtained for a device: its hub identity and X.509 credentials. */
export interface KryptonCredentials {
  registrationId: string;
  deviceId: string;
  /** The IoT Hub the DPS registration assigned (`<name>.azure-devices.net`). */
  host: string;
  /** Device certificate chain (leaf first) and its private key, PEM. */
  certificate: string;
  privateKey: string;
}

/** Provisioning of the device behind a source address (the lab: issue a certificate, register at DPS). */
export type ProvisionFn = (
  sourceIp: string,
  signal: AbortSignal,
) => KryptonCredentials | Promise<KryptonCredentials>;

/** A device certificate for a registration id (its subject CN), from the CA the DPS enrollment trusts. */
export type IssueCertificateFn = (
  registrationId: string,
) => { certPem: string; keyPem: string } | Promise<{ certPem: string; keyPem: string }>;

const dpsTargetSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  hostName: z.string().min(1),
  idScope: z.string().min(1),
  caPem: z.string().min(1),
});

export const kryptonOptionsSchema = z.strictObject({
  name: z.string().default('krypton'),
  host: z.string().default('127.0.0.1'),
  /** Krypton listens on 8036; the lab default is 0 (any free port) like every simulator. */
  port: z.number().int().min(0).max(65535).default(0),
  /** Certificate chain (leaf first) and key, PEM, from the lab PKI. */
  certPem: z.string().min(1),
  keyPem: z.string().min(1),
  /** Networks a request must come from (the SIM network). Default 100.64.0.0/10. */
  allowedSources: z.array(z.string()).min(1).default(['100.64.0.0/10']),
  /**
   * The DPS Krypton registers devices at (X.509 attestation over HTTPS), with `issueCertificate` (the
   * certificate authority the DPS group enrollment names, as the user's Krypton credential set holds it).
   */
  dps: dpsTargetSchema.optional(),
  issueCertificate: z
    .custom<IssueCertificateFn>(
      (v) => typeof v === 'function',
      'a function (registrationId) => { certPem, keyPem }',
    )
    .optional(),
  /** Replaces the DPS registration: credentials for the device behind a source address. */
  provision: z
    .custom<ProvisionFn>((v) => typeof v === 'function', 'a function (sourceIp, signal) => credentials')
    .optional(),
  /**
   * An already-bound listening socket handle to serve on instead of host:port, e.g. one bound inside a
   * network namespace and passed over IPC (the netns backend's `bindIn`).
   */
  listenHandle: z
    .custom<object>((v) => typeof v === 'object' && v !== null, 'a bound socket handle')
    .optional(),
  /** Provisioning operations kept for status queries (oldest dropped first). */
  maxOperations: z.number().int().min(1).max(100_000).default(1000),
});

export type KryptonOptions = z.input<typeof kryptonOptionsSchema>;

export interface KryptonEvents {
  [key: string]: unknown;
  connection: { id: string; remote: string };
  closed: { id: string; bytesIn: number; bytesOut: number; durationMs: number };
  'tls-client-error': TlsClientErrorEvent;
  /** One provisioning request: where it came from and whether that network is trusted. */
  register: { source: string; allowed: boolean; status: number; operationId?: string; deviceId?: string };
  /** A request from outside the SIM network, refused with 403. */
  'source-denied': { source: string; path: string; allowedSources: string[]; status: 403 };
  /** Krypton's DPS registration for a device finished: assigned, or failed with DPS's answer. */
  provisioned: {
    operationId: string;
    source: string;
    registrationId?: string;
    deviceId?: string;
    host?: string;
    status: 'assigned' | 'failed';
    error?: string;
  };
  request: { method: string; path: string; status: number };
}

export interface KryptonStats {
  [key: string]: unknown;
  connections: number;
  registrations: number;
  assigned: number;
  failed: number;
  denied: number;
}

export interface KryptonHandle extends SimulatorHandle<KryptonEvents, KryptonStats> {
  readonly url: string;
}

/** The registration (and device) id Krypton gives the device behind a source address: stable. */
export function kryptonDeviceId(sourceIp: string): string {
  return `krypton-${sourceIp.replaceAll('.', '-')}`;
}

/** Provisioning through a real DPS registration: a certificate for the source's id, attested over HTTPS. */
export function dpsProvision(dps: z.infer<typeof dpsTargetSchema>, issue: IssueCertificateFn): ProvisionFn {
  return async (sourceIp, signal) => {
    const registrationId = kryptonDeviceId(sourceIp);
    const cert = await issue(registrationId);
    const a = await registerX509(dps, registrationId, cert, signal);
    return {
      registrationId,
      deviceId: a.deviceId,
      host: a.assignedHub,
      certificate: cert.certPem,
      privateKey: cert.keyPem,
    };
  };
}

interface Operation {
  operationId: string;
  source: string;
  status: 'assigning' | 'assigned' | 'failed';
  creds?: KryptonCredentials;
  error?: string;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(`${JSON.stringify(body)}\n`);
}

export async function start(options: KryptonOptions): Promise<KryptonHandle> {
  const opts = parseOptions(kryptonOptionsSchema, options, 'krypton');
  const allowed = sourceMatcher(opts.allowedSources, 'krypton: options.allowedSources');
  if (opts.dps && !opts.issueCertificate && !opts.provision) {
    throw new FieldlabError('E_BAD_OPTION', 'krypton: options.dps needs options.issueCertificate', {
      where: 'krypton options.issueCertificate',
      hint: 'give the function that issues device certificates from the CA the DPS group enrollment trusts',
    });
  }
  const provision: ProvisionFn | undefined =
    opts.provision ??
    (opts.dps && opts.issueCertificate ? dpsProvision(opts.dps, opts.issueCertificate) : undefined);
  const events = new SimulatorEvents<KryptonEvents>(opts.name);
  const tracker = new ConnectionTracker();
  const stats: KryptonStats = { connections: 0, registrations: 0, assigned: 0, failed: 0, denied: 0 };
  /** Bounded: the oldest operation goes first when full (Map keeps insertion order). */
  const operations = new Map<string, Operation>();
  /** Aborts the DPS registrations still running when Krypton stops. */
  const stopping = new AbortController();

  const startOperation = (source: string, run: ProvisionFn): Operation => {
    const op: Operation = { operationId: randomUUID(), source, status: 'assigning' };
    while (operations.size >= opts.maxOperations) operations.delete(operations.keys().next().value!);
    operations.set(op.operationId, op);
    Promise.resolve()
      .then(() => run(source, stopping.signal))
      .then(
        (creds) => {
          op.status = 'assigned';
          op.creds = creds;
          stats.assigned++;
          events.emitEvent('provisioned', {
            operationId: op.operationId,
            source,
            registrationId: creds.registrationId,
            deviceId: creds.deviceId,
            host: creds.host,
            status: 'assigned',
          });
        },
        (err: unknown) => {
          op.status = 'failed';
          op.error = err instanceof Error ? err.message : String(err);
          stats.failed++;
          events.emitEvent('provisioned', {
            operationId: op.operationId,
            source,
            status: 'failed',
            error: op.error,
          });
        },
      );
    return op;
  };

  /** What a status query answers: the credentials once assigned (SORACOM's field names). */
  const operationBody = (op: Operation): Record<string, unknown> => {
    if (op.status === 'assigned' && op.creds) {
      return {
        operationId: op.operationId,
        status: 'assigned',
        registrationId: op.creds.registrationId,
        deviceId: op.creds.deviceId,
        host: op.creds.host,
        certificate: op.creds.certificate,
        privateKey: op.creds.privateKey,
      };
    }
    return {
      operationId: op.operationId,
      status: op.status,
      ...(op.error ? { errorMessage: op.error } : {}),
    };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<number> => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const isRegister = path === REGISTER_PATH;
    const isStatus = path.startsWith(REGISTRATIONS_PATH) && path.length > REGISTRATIONS_PATH.length;
    if (!isRegister && !isStatus) {
      sendJson(res, 404, { code: 'NOT_FOUND', message: `no such path ${path}` });
      return 404;
    }
    const method = isRegister ? 'POST' : 'GET';
    if (req.method !== method) {
      // RFC 9110 §15.5.6: 405 carries Allow.
      sendJson(res, 405, { code: 'METHOD_NOT_ALLOWED', message: `use ${method}` }, { allow: method });
      return 405;
    }
    const source = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    req.resume(); // the body (if any) is not needed: the network is the credential
    if (!allowed(source)) {
      stats.denied++;
      events.emitEvent('source-denied', {
        source,
        path,
        allowedSources: [...opts.allowedSources],
        status: 403,
      });
      if (isRegister) events.emitEvent('register', { source, allowed: false, status: 403 });
      // SORACOM API errors are `{ code, message }` (SORACOM docs, "API error responses").
      sendJson(res, 403, {
        code: 'FORBIDDEN',
        message:
          `request from ${source} did not come through the SIM network ` +
          `(${opts.allowedSources.join(', ')}): Krypton answers only SORACOM Air or Arc traffic`,
      });
      return 403;
    }
    if (isStatus) {
      const id = decodeURIComponent(path.slice(REGISTRATIONS_PATH.length));
      const op = operations.get(id);
      // Another SIM's operation is answered like a missing one: its credentials are not this device's.
      if (!op || op.source !== source) {
        sendJson(res, 404, { code: 'NOT_FOUND', message: `no registration ${id} for this SIM` });
        return 404;
      }
      sendJson(res, 200, operationBody(op));
      return 200;
    }
    if (!provision) {
      events.emitEvent('register', { source, allowed: true, status: 500 });
      sendJson(res, 500, {
        code: 'NOT_CONFIGURED',
        message:
          'no Azure IoT (DPS) settings for this SIM group: Krypton has nothing to register the device at',
      });
      return 500;
    }
    stats.registrations++;
    const op = startOperation(source, provision);
    events.emitEvent('register', {
      source,
      allowed: true,
      status: 200,
      operationId: op.operationId,
      deviceId: kryptonDeviceId(source),
    });
    sendJson(res, 200, operationBody(op));
    return 200;
  };

  const server = createServer({ cert: opts.certPem, key: opts.keyPem }, (req, res) => {
    handle(req, res).then(
      (status) => events.emitEvent('request', { method: req.method ?? '?', path: req.url ?? '/', status }),
      () => res.destroy(),
    );
  });
  server.on('connection', (socket: Socket) => {
    tracker.track(socket);
    stats.connections++;
    announceConnection(events, socket, randomUUID().slice(0, 8));
  });
  server.on('tlsClientError', (err, tls) =>
    events.emitEvent('tls-client-error', describeTlsClientError(err, tls)),
  );

  let host = opts.host;
  let port: number;
  if (opts.listenHandle) {
    ({ address: host, port } = await listenOnHandle(server, opts.listenHandle));
  } else {
    port = await listen(server, opts.host, opts.port);
  }
  const url = `https://${hostPort(host, port)}${REGISTER_PATH}`;
  let stopped: Promise<void> | undefined;
  return {
    name: opts.name,
    url,
    endpoints: [{ name: 'https', host, port, protocol: 'https', url }],
    events,
    stats: () => ({ ...stats }),
    stop() {
      if (!stopped) {
        stopping.abort(new Error('krypton stopped'));
        operations.clear();
      }
      stopped ??= closeServer(server, tracker);
      return stopped;
    },
  };
}
