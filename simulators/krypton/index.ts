import { createHmac, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { Socket } from 'node:net';
import { z } from 'zod';
import { SimulatorEvents } from '../common/events.js';
import type { SimulatorHandle } from '../common/handle.js';
import { ConnectionTracker, closeServer, hostPort, listen, listenOnHandle } from '../common/net.js';
import { parseOptions } from '../common/options.js';
import {
  announceConnection,
  describeTlsClientError,
  type TlsClientErrorEvent,
} from '../common/server-events.js';
import { sourceMatcher } from './sources.js';

/**
 * SORACOM Krypton's provisioning endpoint (seed 002): `POST /v1/provisioning/azure/iot/register` on
 * port 8036 over HTTPS. Krypton authenticates a device by the network its request arrives from (the
 * SIM's network, reached through SORACOM Air or Arc): a request from any other source gets 403. In the
 * real service the endpoint is also firewalled (the seed's client timed out); in a lab that part is an
 * nft DROP, and this source check is the second guard.
 */

export const REGISTER_PATH = '/v1/provisioning/azure/iot/register';

/** What a device receives: where to connect and how to authenticate (an Azure IoT Hub identity). */
export interface KryptonCredentials {
  deviceId: string;
  /** The IoT Hub the DPS registration assigned (`<name>.azure-devices.net`). */
  assignedHub: string;
  registrationId: string;
  /** Symmetric-key attestation: the device key (base64). */
  symmetricKey?: string;
  /** X.509 attestation: the device certificate and key (PEM). */
  certificate?: string;
  privateKey?: string;
  [key: string]: unknown;
}

export type ProvisionFn = (sourceIp: string) => KryptonCredentials | Promise<KryptonCredentials>;

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
  /** Credentials for the device behind a source address. Default: a stable symmetric-key identity. */
  provision: z
    .custom<ProvisionFn>((v) => typeof v === 'function', 'a function (sourceIp) => credentials')
    .optional(),
  /**
   * An already-bound listening socket handle to serve on instead of host:port, e.g. one bound inside a
   * network namespace and passed over IPC (the netns backend's `bindIn`).
   */
  listenHandle: z
    .custom<object>((v) => typeof v === 'object' && v !== null, 'a bound socket handle')
    .optional(),
  /** Hub name used by the default `provision`. */
  hub: z.string().default('fieldlab-hub.azure-devices.net'),
});

export type KryptonOptions = z.input<typeof kryptonOptionsSchema>;

export interface KryptonEvents {
  [key: string]: unknown;
  connection: { id: string; remote: string };
  closed: { id: string; bytesIn: number; bytesOut: number; durationMs: number };
  'tls-client-error': TlsClientErrorEvent;
  /** One provisioning request: where it came from and whether that network is trusted. */
  register: { source: string; allowed: boolean; status: number; deviceId?: string };
  request: { method: string; path: string; status: number };
}

export interface KryptonStats {
  [key: string]: unknown;
  connections: number;
  registrations: number;
  denied: number;
}

export interface KryptonHandle extends SimulatorHandle<KryptonEvents, KryptonStats> {
  readonly url: string;
}

/** The device id Krypton gives the device behind a source address: stable across registrations. */
export function kryptonDeviceId(sourceIp: string): string {
  return `krypton-${sourceIp.replaceAll('.', '-')}`;
}

/** The default identity for a source: stable, so a device that registers twice gets the same one. */
export function defaultProvision(hub: string): ProvisionFn {
  return (sourceIp) => {
    const deviceId = kryptonDeviceId(sourceIp);
    return {
      deviceId,
      registrationId: deviceId,
      assignedHub: hub,
      symmetricKey: createHmac('sha256', 'fieldlab-krypton').update(deviceId).digest('base64'),
    };
  };
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
  const provision = opts.provision ?? defaultProvision(opts.hub);
  const simNets = opts.allowedSources.join(', ');
  const events = new SimulatorEvents<KryptonEvents>(opts.name);
  const tracker = new ConnectionTracker();
  const stats: KryptonStats = { connections: 0, registrations: 0, denied: 0 };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<number> => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path !== REGISTER_PATH) {
      sendJson(res, 404, { code: 'NOT_FOUND', message: `no such path ${path}` });
      return 404;
    }
    if (req.method !== 'POST') {
      // RFC 9110 §15.5.6: 405 carries Allow.
      sendJson(res, 405, { code: 'METHOD_NOT_ALLOWED', message: 'use POST' }, { allow: 'POST' });
      return 405;
    }
    const source = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    req.resume(); // the body (if any) is not needed: the network is the credential
    if (!allowed(source)) {
      stats.denied++;
      events.emitEvent('register', { source, allowed: false, status: 403 });
      sendJson(res, 403, {
        code: 'FORBIDDEN',
        message: `request from ${source} did not come through the SIM network (${simNets})`,
      });
      return 403;
    }
    try {
      const creds = await provision(source);
      stats.registrations++;
      events.emitEvent('register', { source, allowed: true, status: 200, deviceId: creds.deviceId });
      sendJson(res, 200, creds);
      return 200;
    } catch (err) {
      events.emitEvent('register', { source, allowed: true, status: 500 });
      sendJson(res, 500, { code: 'PROVISIONING_FAILED', message: (err as Error).message });
      return 500;
    }
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
      stopped ??= closeServer(server, tracker);
      return stopped;
    },
  };
}
