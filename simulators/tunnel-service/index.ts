import { randomBytes, randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { errorCode } from '../common/errors.js';
import { SimulatorEvents } from '../common/events.js';
import type { Endpoint, SimulatorHandle } from '../common/handle.js';
import { ConnectionTracker, closeServer, hostPort, listen } from '../common/net.js';
import { parseOptions } from '../common/options.js';
import {
  announceConnection,
  announceTlsEstablished,
  describeTlsClientError,
} from '../common/server-events.js';
import { createApiHandler } from './api.js';
import type { Clock } from './clock.js';
import { DataPlane, MAX_HANDSHAKE_BYTES } from './data-plane.js';
import type { TunnelServiceEvents, TunnelServiceStats } from './events.js';
import { LAB_ACCESS_KEY_ID, type TunnelServiceOptions, tunnelServiceOptionsSchema } from './options.js';
import { SigV4Verifier } from './sigv4.js';
import { type Tunnel, TunnelRegistry } from './tunnels.js';

/**
 * AWS IoT Secure Tunneling, lab edition: the management API (AWS JSON 1.1, for
 * `@aws-sdk/client-iotsecuretunneling`) on endpoint `api`, and the WebSocket data plane (V1–V3 protocol,
 * wire-compatible with the AWS localproxy) on endpoint `data` (`ws`, or `wss` with `tls`), on two ports
 * like the real service's two hosts (api.tunneling.iot… and data.tunneling.iot…).
 */

export { type Clock, systemClock } from './clock.js';
export type { TokenRejectReason, TunnelServiceEvents, TunnelServiceStats } from './events.js';
export * from './frame.js';
export {
  CLOSED_TUNNEL_RETENTION_MS,
  LAB_ACCESS_KEY_ID,
  type TunnelServiceOptions,
  tunnelServiceOptionsSchema,
} from './options.js';
export { type AuthFailureReason, MAX_SKEW_MS, SIGNING_NAME } from './sigv4.js';

export interface TunnelServiceHandle extends SimulatorHandle<TunnelServiceEvents, TunnelServiceStats> {
  /** A tunnel's current access tokens (tests and harness; the API only shows them once). */
  tokens(tunnelId: string): { source: string; destination: string } | undefined;
  /**
   * What a management API client is configured with: the region, and the lab's credentials (verified
   * with `auth: sigv4`; with `auth: none` any credentials pass).
   */
  readonly apiClient: {
    region: string;
    accessKeyId: string;
    secretAccessKey: string;
    auth: 'none' | 'sigv4';
  };
}

export async function start(options: TunnelServiceOptions = {}): Promise<TunnelServiceHandle> {
  const opts = parseOptions(tunnelServiceOptionsSchema, options, 'tunnel-service');
  const events = new SimulatorEvents<TunnelServiceEvents>(opts.name);
  const stats: TunnelServiceStats = {
    tunnelsOpen: 0,
    tunnelsClosed: 0,
    peers: 0,
    bytesRelayed: 0,
    framesRelayed: 0,
    framesDropped: 0,
    handshakesRejected: 0,
    violations: 0,
    registrySize: 0,
    tokenMapSize: 0,
  };
  const clock: Clock = opts.clock;
  const registry = new TunnelRegistry(clock, opts.closedTunnelRetentionMs);
  const data = new DataPlane(registry, opts, events, stats);
  const credentials = opts.credentials ?? {
    accessKeyId: LAB_ACCESS_KEY_ID,
    secretAccessKey: randomBytes(30).toString('base64'),
  };
  const verifier =
    opts.auth === 'sigv4' ? new SigV4Verifier({ region: opts.region, credentials, clock }) : undefined;

  // AWS IoT developer guide, "Secure tunnel lifecycle": an OPEN tunnel past MaxLifetimeTimeout closes.
  const armLifetime = (t: Tunnel) => {
    const ms = opts.maxLifetimeMs ?? t.maxLifetimeTimeoutMinutes * opts.lifetimeMinuteMs;
    t.cancelLifetime = clock.after(ms, () => {
      t.cancelLifetime = undefined;
      data.closeTunnel(t, 'lifetime');
    });
  };
  const api = createApiHandler(
    registry,
    opts,
    events,
    {
      closeTunnel: (t, reason) => data.closeTunnel(t, reason),
      disconnectMode: (t, mode, reason) => data.disconnectMode(t, mode, reason),
      armLifetime,
    },
    verifier,
  );

  const apiTracker = new ConnectionTracker();
  const apiServer = createHttpServer(api);
  apiServer.on('connection', (s: Socket) => apiTracker.track(s));

  const dataTracker = new ConnectionTracker();
  // maxHeaderSize: the real service refuses handshakes over 4 KB; Node answers 431 past this (clientError).
  const serverOpts = { maxHeaderSize: MAX_HANDSHAKE_BYTES * 2 };
  const dataServer: HttpServer = opts.tls
    ? createHttpsServer({
        ...serverOpts,
        cert: opts.tls.certPem,
        key: opts.tls.keyPem,
        minVersion: 'TLSv1.2',
      })
    : createHttpServer(serverOpts);
  dataServer.on('upgrade', (req, socket, head) => data.handleUpgrade(req, socket, head));
  // A plain request (no upgrade) to the data plane.
  dataServer.on('request', (_req, res) => {
    res.writeHead(400, { 'content-type': 'text/plain', connection: 'close' });
    res.end('expected a WebSocket upgrade on GET /tunnel\n');
  });
  dataServer.on('clientError', (err, socket) => {
    const status = errorCode(err) === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    if (socket.writable) socket.end(`HTTP/1.1 ${status} Bad Request\r\nConnection: close\r\n\r\n`);
    socket.destroy();
  });
  const onConnection = (s: Socket) => {
    dataTracker.track(s);
    announceConnection(events, s, randomUUID().slice(0, 8));
  };
  // The raw TCP socket, also for wss: stop() must reach sockets still in the TLS handshake.
  dataServer.on('connection', onConnection);
  if (opts.tls) {
    dataServer.on('tlsClientError', (err: Error, tls: TLSSocket) =>
      events.emitEvent('tls-client-error', describeTlsClientError(err, tls)),
    );
    if (dataServer instanceof HttpsServer) announceTlsEstablished(events, dataServer);
  }

  let apiPort: number;
  let dataPort: number;
  try {
    apiPort = await listen(apiServer, opts.host, opts.apiPort);
    dataPort = await listen(dataServer, opts.host, opts.dataPort);
  } catch (err) {
    await closeServer(apiServer, apiTracker);
    await closeServer(dataServer, dataTracker);
    throw err;
  }
  const hp = (port: number) => hostPort(opts.host, port);
  const dataProtocol = opts.tls ? 'wss' : 'ws';
  const endpoints: Endpoint[] = [
    { name: 'api', host: opts.host, port: apiPort, protocol: 'http', url: `http://${hp(apiPort)}` },
    {
      name: 'data',
      host: opts.host,
      port: dataPort,
      protocol: dataProtocol,
      url: `${dataProtocol}://${hp(dataPort)}`,
    },
  ];

  let stopped: Promise<void> | undefined;
  return {
    name: opts.name,
    endpoints,
    events,
    stats: () => ({
      ...stats,
      tunnelsOpen: registry.openCount,
      tunnelsClosed: registry.closedCount,
      registrySize: registry.tunnels.size,
      tokenMapSize: registry.tokenCount,
    }),
    tokens: (tunnelId) => {
      const t = registry.tunnels.get(tunnelId);
      return t ? { source: t.slots.source.token, destination: t.slots.destination.token } : undefined;
    },
    apiClient: { region: opts.region, ...credentials, auth: opts.auth },
    stop: () => {
      stopped ??= (async () => {
        registry.stop();
        for (const t of registry.tunnels.values()) data.flushData(t);
        data.stop();
        await Promise.all([closeServer(apiServer, apiTracker), closeServer(dataServer, dataTracker)]);
      })();
      return stopped;
    },
  };
}
