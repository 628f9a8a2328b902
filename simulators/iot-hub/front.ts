import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import {
  createServer as createTlsServer,
  type PeerCertificate,
  type TLSSocket,
  type Server as TlsServer,
} from 'node:tls';
import type { Connection, Container } from 'rhea';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { SimulatorEvents } from '../common/events.js';
import type { Endpoint } from '../common/handle.js';
import { ConnectionTracker, closeServer, hostPort, listen } from '../common/net.js';
import type { TlsClientErrorEvent, TlsEstablishedEvent } from '../common/server-events.js';
import {
  announceConnection,
  announceTlsEstablished,
  type ConnectionEvents,
  describeTlsClientError,
} from '../common/server-events.js';
import { hasPeerCertificate } from '../common/x509.js';
import { type BrokerHooks, type MqttBrokerHandle, start as startBroker } from '../mqtt-broker/index.js';

/**
 * The three doors of an Azure endpoint (IoT Hub or DPS), as the real service has them:
 *
 *   :8883 mqtts ──────────────► aedes (persona hooks)
 *   :5671 amqps ──────────────► rhea container
 *   :443  https ─┬─ HTTP ─────► REST handler
 *                └─ GET /$iothub/websocket (Upgrade) ─┬─ subprotocol mqtt ─────► aedes
 *                                                     └─ subprotocol AMQPWSB10 ► rhea
 */
export const WEBSOCKET_PATH = '/$iothub/websocket';

export interface FrontEvents extends ConnectionEvents {
  'tls-established': TlsEstablishedEvent;
  'tls-client-error': TlsClientErrorEvent;
}

export interface FrontOptions {
  name: string;
  host: string;
  ports: { mqtts: number; amqps: number; https: number };
  tls: { certPem: string; keyPem: string };
  /**
   * Ask every client for a certificate without requiring one (X.509 identities): the persona checks it
   * (hooks see `peerCertificate`, AMQP connections `amqpPeer`, HTTP requests their socket's).
   */
  requestClientCert?: boolean;
  mqttHooks: BrokerHooks;
  amqp: Container;
  onHttp(req: IncomingMessage, res: ServerResponse): void;
}

export interface Front {
  readonly endpoints: Endpoint[];
  readonly broker: MqttBrokerHandle;
  stop(): Promise<void>;
}

/** Starts the mqtts, amqps and https (+ WebSocket) listeners of one Azure endpoint. */
export async function startFront(opts: FrontOptions, emit: SimulatorEvents<FrontEvents>): Promise<Front> {
  const tracker = new ConnectionTracker();
  const tlsOptions = {
    cert: opts.tls.certPem,
    key: opts.tls.keyPem,
    ...(opts.requestClientCert ? { requestCert: true, rejectUnauthorized: false } : {}),
  };
  const onTlsError = (err: Error, tls: TLSSocket) =>
    emit.emitEvent('tls-client-error', describeTlsClientError(err, tls));
  const track = (socket: Socket, transport: string) => {
    tracker.track(socket);
    announceConnection(emit, socket, `${transport}-${randomUUID().slice(0, 8)}`);
  };

  const broker = await startBroker({
    name: `${opts.name}-mqtt`,
    host: opts.host,
    listeners: [{ protocol: 'mqtts', port: opts.ports.mqtts }],
    tls: {
      certPem: opts.tls.certPem,
      keyPem: opts.tls.keyPem,
      ...(opts.requestClientCert ? { requestCert: true } : {}),
    },
    hooks: opts.mqttHooks,
  });
  // The broker announces its own connections; the persona re-emits them under its name.
  broker.events.on('connection', (d: FrontEvents['connection']) => emit.emitEvent('connection', d));
  broker.events.on('closed', (d: FrontEvents['closed']) => emit.emitEvent('closed', d));
  broker.events.on('tls-client-error', (d: TlsClientErrorEvent) => emit.emitEvent('tls-client-error', d));
  broker.events.on('tls-established', (d: TlsEstablishedEvent) => emit.emitEvent('tls-established', d));

  const acceptAmqp = (socket: TLSSocket) =>
    (
      opts.amqp.create_connection(peerOptions(socket, 'amqp') as never) as Connection & {
        accept(s: unknown): void;
      }
    ).accept(socket);
  const amqps: TlsServer = createTlsServer(tlsOptions, (s) => acceptAmqp(s));
  amqps.on('connection', (s: Socket) => track(s, 'amqps'));
  amqps.on('tlsClientError', onTlsError);
  announceTlsEstablished(emit, amqps);

  const https: HttpsServer = createHttpsServer(tlsOptions, (req, res) => opts.onHttp(req, res));
  https.on('connection', (s: Socket) => track(s, 'https'));
  https.on('tlsClientError', onTlsError);
  announceTlsEstablished(emit, https);
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    handleProtocols: (protocols) =>
      protocols.has('mqtt') ? 'mqtt' : protocols.has('AMQPWSB10') ? 'AMQPWSB10' : false,
  });
  https.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const path = targetPath(req.url);
    if (path === undefined) {
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    if (path !== WEBSOCKET_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      if (ws.protocol === 'mqtt') broker.broker.handle(createWebSocketStream(ws), req);
      else if (ws.protocol === 'AMQPWSB10') {
        opts.amqp.websocket_accept(ws as never, peerOptions(req.socket as TLSSocket, 'amqp-ws') as never);
      } else ws.close(1002, 'unsupported subprotocol'); // RFC 6455 §4.2.2: no acceptable subprotocol
    });
  });

  const servers = [amqps, https];
  const endpoints: Endpoint[] = [...broker.endpoints.map((e) => ({ ...e }))];
  try {
    const amqpsPort = await listen(amqps, opts.host, opts.ports.amqps);
    const httpsPort = await listen(https, opts.host, opts.ports.https);
    endpoints.push(
      {
        name: 'amqps',
        host: opts.host,
        port: amqpsPort,
        protocol: 'amqps',
        url: `amqps://${hostPort(opts.host, amqpsPort)}`,
      },
      {
        name: 'https',
        host: opts.host,
        port: httpsPort,
        protocol: 'https',
        url: `https://${hostPort(opts.host, httpsPort)}`,
      },
    );
  } catch (err) {
    await Promise.all(servers.map((s) => closeServer(s)));
    await broker.stop();
    throw err;
  }

  let stopped: Promise<void> | undefined;
  return {
    endpoints,
    broker,
    stop() {
      stopped ??= (async () => {
        for (const c of wss.clients) c.terminate();
        await Promise.all(servers.map((s) => closeServer(s, tracker)));
        wss.close();
        await broker.stop();
      })();
      return stopped;
    },
  };
}

/** What an AMQP connection of a front knows about its peer (rhea keeps it as `connection.options.amqpPeer`). */
export interface AmqpPeer {
  transport: 'amqp' | 'amqp-ws';
  /** The TLS client certificate with the chain the client sent, when it sent one. */
  peerCertificate?: PeerCertificate;
}

/** rhea connection options carrying the peer facts (rhea copies unknown options and never sends them). */
function peerOptions(socket: TLSSocket, transport: AmqpPeer['transport']): { amqpPeer: AmqpPeer } {
  const cert = socket.getPeerCertificate?.(true);
  const amqpPeer: AmqpPeer = {
    transport,
    ...(hasPeerCertificate(cert) ? { peerCertificate: cert } : {}),
  };
  return { amqpPeer };
}

/** The peer facts of an AMQP connection accepted by a front. */
export function amqpPeerOf(conn: Connection): AmqpPeer | undefined {
  const options: unknown = conn.options;
  const peer = typeof options === 'object' && options !== null ? Reflect.get(options, 'amqpPeer') : undefined;
  return typeof peer === 'object' && peer !== null ? (peer as AmqpPeer) : undefined;
}

/**
 * The path of a request target, in origin form (`/$iothub/websocket?x`) or absolute form
 * (`https://hub.example.com:443/$iothub/websocket?x`, what proton-j's WebSocket layer in the Java SDKs sends):
 * RFC 9112 §3.2.2, a server MUST accept the absolute form. Undefined for a target that is no URI reference.
 */
export function targetPath(target: string | undefined): string | undefined {
  if (!target) return undefined;
  try {
    // A base only resolves the origin form; an absolute-form target carries its own scheme and authority.
    return new URL(target, 'https://origin.invalid').pathname;
  } catch {
    return undefined;
  }
}

/** Reads a request body (bounded). */
export function readBody(req: IncomingMessage, limit = 256 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Sends a JSON answer. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers = {}): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(data);
}
