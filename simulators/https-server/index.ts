import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { z } from 'zod';
import { preciseNow, SimulatorEvents } from '../common/events.js';
import type { SimulatorHandle } from '../common/handle.js';
import { ConnectionTracker, closeServer, hostPort, listen } from '../common/net.js';
import { parseOptions } from '../common/options.js';
import { describeTlsClientError, type TlsClientErrorEvent } from '../common/server-events.js';

/**
 * A lab HTTPS endpoint: the simplest cloud service a device talks to. Serves fixed routes over real
 * TLS with a certificate from the lab PKI, and reports why a client rejected the handshake (the TLS
 * alert it sent), which is how the harness explains `tls.*` failures from the server's side.
 */

const routeSchema = z
  .object({
    status: z.number().int().min(100).max(599).default(200),
    body: z.string().default(''),
    headers: z.record(z.string(), z.string()).default({}),
  })
  .strict();

export const httpsServerOptionsSchema = z
  .object({
    name: z.string().default('https-server'),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(0),
    /** Certificate chain (leaf first) and key, PEM. */
    certPem: z.string().min(1),
    keyPem: z.string().min(1),
    /** Ask for a client certificate and verify it against these CAs (mutual TLS). */
    clientCa: z.array(z.string()).optional(),
    /** Path → fixed answer. `/` answers `{"ok":true}` unless given. */
    routes: z.record(z.string(), routeSchema).default({}),
  })
  .strict();

export type HttpsServerOptions = z.input<typeof httpsServerOptionsSchema>;

export interface HttpsServerEvents {
  [key: string]: unknown;
  connection: { id: string; remote: string };
  'tls-established': {
    id: string;
    remote: string;
    protocol: string | null;
    alpn: string | false;
    servername: string | false;
  };
  'tls-client-error': TlsClientErrorEvent;
  request: { id: string; method: string; path: string; status: number };
  closed: { id: string; bytesIn: number; bytesOut: number; durationMs: number };
}

export interface HttpsServerStats {
  [key: string]: unknown;
  connections: number;
  requests: number;
  tlsErrors: number;
}

export interface HttpsServerHandle extends SimulatorHandle<HttpsServerEvents, HttpsServerStats> {
  readonly url: string;
}

export async function start(options: HttpsServerOptions): Promise<HttpsServerHandle> {
  const opts = parseOptions(httpsServerOptionsSchema, options, 'https-server');
  const events = new SimulatorEvents<HttpsServerEvents>(opts.name);
  const tracker = new ConnectionTracker();
  const stats: HttpsServerStats = { connections: 0, requests: 0, tlsErrors: 0 };
  const ids = new WeakMap<Socket, string>();

  const server = createServer(
    {
      cert: opts.certPem,
      key: opts.keyPem,
      ...(opts.clientCa ? { ca: opts.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
    },
    (req: IncomingMessage, res: ServerResponse) => {
      stats.requests++;
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const route = opts.routes[path];
      const status = route?.status ?? (path === '/' ? 200 : 404);
      const body =
        route?.body ?? (path === '/' ? JSON.stringify({ ok: true, service: opts.name }) : 'not found\n');
      res.writeHead(status, { 'content-type': 'application/json', ...route?.headers });
      res.end(body);
      events.emitEvent('request', {
        id: ids.get(req.socket) ?? '?',
        method: req.method ?? 'GET',
        path,
        status,
      });
    },
  );

  // Raw TCP accept: every connection, including those whose TLS handshake fails.
  server.on('connection', (socket: Socket) => {
    const id = randomUUID().slice(0, 8);
    const started = preciseNow();
    ids.set(socket, id);
    tracker.track(socket);
    stats.connections++;
    events.emitEvent('connection', {
      id,
      remote: hostPort(socket.remoteAddress ?? '?', socket.remotePort ?? 0),
    });
    socket.once('close', () => {
      events.emitEvent('closed', {
        id,
        bytesIn: socket.bytesRead,
        bytesOut: socket.bytesWritten,
        durationMs: preciseNow() - started,
      });
    });
  });

  server.on('secureConnection', (tls: TLSSocket) => {
    // The TLSSocket wraps the raw socket: find the id through its `_parent`-free API (remote tuple).
    const raw = (tls as TLSSocket & { _parent?: Socket })._parent;
    const id = (raw && ids.get(raw)) ?? '?';
    if (raw) ids.set(tls, id);
    events.emitEvent('tls-established', {
      id,
      remote: hostPort(tls.remoteAddress ?? '?', tls.remotePort ?? 0),
      protocol: tls.getProtocol(),
      alpn: tls.alpnProtocol ?? false,
      servername: (tls as TLSSocket & { servername?: string | false }).servername ?? false,
    });
  });

  // The client rejected us (unknown_ca, bad_certificate...) or spoke something that is not TLS.
  server.on('tlsClientError', (err: Error, tls: TLSSocket) => {
    stats.tlsErrors++;
    events.emitEvent('tls-client-error', describeTlsClientError(err, tls));
  });

  const port = await listen(server, opts.host, opts.port);
  const url = `https://${hostPort(opts.host, port)}/`;
  let stopped: Promise<void> | undefined;

  return {
    name: opts.name,
    url,
    endpoints: [{ name: 'https', host: opts.host, port, protocol: 'https', url }],
    events,
    stats: () => ({ ...stats }),
    stop() {
      stopped ??= closeServer(server, tracker);
      return stopped;
    },
  };
}
