/**
 * A Zscaler-like TLS-inspecting proxy. Clients CONNECT through it; for each tunnel it reads the client's
 * ClientHello, opens its own verified TLS to the real target with the same SNI and ALPN list, then
 * answers the client with a leaf forged on the fly by its own CA (and the protocol the target chose):
 *
 *   client ──CONNECT──► inspector ──TLS (lab trust, same SNI/ALPN)──► target
 *          ◄──TLS, leaf signed by the inspector's CA──
 *
 * Clients that do not trust the inspector's root fail the handshake; the inspector reports why (the
 * alert the client sent). Passthrough hosts get a raw tunnel and see the target's own certificate.
 */
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext } from 'node:tls';
import { z } from 'zod';
import { answerConnect, wasHandedBack } from '../common/connect-reply.js';
import {
  DestinationPolicy,
  type Destinations,
  defaultDestinations,
  destinationsSchema,
} from '../common/destinations.js';
import {
  announceConnection,
  ConnectionTracker,
  closeServer,
  type Endpoint,
  FieldlabError,
  hostPort,
  listen,
  parseOptions,
  SimulatorEvents,
  type SimulatorHandle,
} from '../common/index.js';
import { hostMatcher, parseTarget } from '../common/targets.js';
import { CertificateAuthority } from '../pki/index.js';
import type { TlsInspectorEvents, TlsInspectorStats } from './events.js';
import { INSPECTOR_FAULTS, type InspectorFault, LeafIssuer } from './leaves.js';
import { type TlsInspectorOptions, tlsInspectorOptionsSchema } from './options.js';
import { handleConnect, type InspectorContext } from './session.js';

export type { ClientHelloInfo, ClientHelloScan } from './client-hello.js';
export { parseClientHello, scanClientHello } from './client-hello.js';
export type { TlsInspectorEvents, TlsInspectorStats } from './events.js';
export { INSPECTOR_FAULTS, type InspectorFault, WRONG_HOST_NAME } from './leaves.js';
export {
  type ResolvedTlsInspectorOptions,
  type TlsInspectorOptions,
  tlsInspectorOptionsSchema,
} from './options.js';

/** A running TLS inspector. */
export interface TlsInspectorHandle extends SimulatorHandle<TlsInspectorEvents, TlsInspectorStats> {
  /** `[{name: 'proxy', protocol: 'http', ...}]`: the CONNECT listener. */
  readonly endpoints: readonly Endpoint[];
  /** The CA that signs the forged leaves. */
  readonly ca: CertificateAuthority;
  /** The PEM a client must trust to pass: the root of `ca`. */
  readonly rootPem: string;
  /** `http://host:port`, with `user:pass@` when credentials are given. */
  proxyUrl(creds?: { username: string; password: string }): string;
  /** The fault currently applied to forged leaves. */
  readonly fault: InspectorFault;
  /** Changes the fault for leaves served from now on (each fault has its own cache entries). */
  setFault(fault: InspectorFault): void;
  /** Where the inspector may connect (`destinations.describe()`). */
  readonly destinations: DestinationPolicy;
  /** Replaces the destination list, for CONNECTs from now on (a lab hands over its hosts once up). */
  setDestinations(destinations: Destinations): void;
}

/** Starts the inspector on `host:port` (default 127.0.0.1, a free port). */
export async function start(options?: TlsInspectorOptions): Promise<TlsInspectorHandle> {
  const opts = parseOptions(tlsInspectorOptionsSchema, options, 'tls-inspector');
  if (opts.ca && (opts.rootName || opts.intermediateName)) {
    throw new FieldlabError(
      'E_BAD_OPTION',
      'tls-inspector: rootName and intermediateName name the CA it makes',
      {
        where: 'tls-inspector options.rootName',
        hint: 'give either ca (its own names are used) or rootName/intermediateName, not both',
      },
    );
  }
  const ca = opts.ca ?? (await defaultAuthority(opts.rootName, opts.intermediateName));
  checkFault(opts.fault, ca);
  // Map keys are matched lower-cased, in the same host:port form as CONNECT targets.
  const map: Record<string, string> = {};
  for (const [from, to] of Object.entries(opts.map)) {
    const t = parseTarget(from);
    if (t) map[hostPort(t.host, t.port)] = to;
  }
  const resolved = { ...opts, map };

  const events = new SimulatorEvents<TlsInspectorEvents>(opts.name);
  const issuer = new LeafIssuer(ca, opts.leafCacheSize, (name, leaf) =>
    events.emitEvent('leaf-issued', { name, serial: leaf.issued.serial, signMs: leaf.signMs }),
  );
  const counts: InspectorContext['counts'] = {
    connections: 0,
    intercepted: 0,
    denied: 0,
    passthrough: 0,
    clientRejected: 0,
    badClientHello: 0,
    upstreamErrors: 0,
    clientCertUnavailable: 0,
  };
  let fault = opts.fault;
  const clients = new ConnectionTracker();
  const opened = new Set<Duplex>();
  const passthroughRule = hostMatcher(opts.passthrough);
  const destinations = new DestinationPolicy(
    opts.destinations ?? defaultDestinations(opts.host),
    opts.lookup,
  );
  const server = createServer();
  const ctx: InspectorContext = {
    opts: resolved,
    events,
    counts,
    issuer,
    fault: () => fault,
    passthroughRule,
    track(socket) {
      opened.add(socket);
      socket.once('close', () => opened.delete(socket));
    },
    upstreamContext: createSecureContext(opts.upstreamCa ? { ca: opts.upstreamCa } : {}),
    destinations,
    answer: (req, socket, head, a) =>
      answerConnect(server, req, socket, head, { ...a, server: 'fieldlab-tls-inspector' }),
  };

  let nextId = 1;
  server.on('connection', (socket: Socket) => {
    // The same client connection after a 407/403 answer: already counted and tracked.
    if (wasHandedBack(socket)) return;
    const id = `c${nextId++}`;
    counts.connections++;
    clients.track(socket);
    announceConnection(events, socket, id);
  });
  server.on('connect', (req, socket, head) => {
    handleConnect(ctx, req, socket as Socket, head).catch((err: unknown) => {
      // A bug must not take the inspector down for other clients: drop this tunnel only.
      events.emitEvent('upstream-error', {
        target: req.url ?? '',
        code: 'E_INTERNAL',
        message: err instanceof Error ? err.message : String(err),
      });
      socket.destroy();
    });
  });
  // Only CONNECT is served (RFC 9110 §15.5.6: a 405 carries Allow).
  server.on('request', (_req, res) => {
    res.writeHead(405, { Allow: 'CONNECT', 'Content-Type': 'text/plain', Connection: 'close' });
    res.end('fieldlab tls-inspector: only CONNECT is supported\n');
  });
  server.on('clientError', (_err, socket: Duplex) => {
    if (socket.writable)
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  const port = await listen(server, opts.host, opts.port);
  const url = `http://${hostPort(opts.host, port)}`;
  let stopping: Promise<void> | undefined;

  return {
    name: opts.name,
    endpoints: [{ name: 'proxy', host: opts.host, port, protocol: 'http', url }],
    events,
    ca,
    rootPem: ca.root().certPem,
    get fault() {
      return fault;
    },
    setFault(next) {
      checkFault(next, ca);
      fault = next;
    },
    destinations,
    setDestinations(list) {
      const o = parseOptions(
        z.object({ destinations: destinationsSchema }),
        { destinations: list },
        opts.name,
      );
      destinations.set(o.destinations);
    },
    proxyUrl(creds) {
      if (!creds) return url;
      const auth = `${encodeURIComponent(creds.username)}:${encodeURIComponent(creds.password)}`;
      return `http://${auth}@${hostPort(opts.host, port)}`;
    },
    stats: () => ({ ...counts, ...issuer.counts }),
    stop() {
      stopping ??= stopAll(server, clients, opened, issuer);
      return stopping;
    },
  };
}

async function stopAll(server: Server, clients: ConnectionTracker, opened: Set<Duplex>, issuer: LeafIssuer) {
  for (const s of opened) s.destroy();
  opened.clear();
  await closeServer(server, clients);
  issuer.clear();
}

/**
 * The default authority: a fresh inspector root with an intermediate under it, as Zscaler deploys
 * ("Zscaler Root CA" ← "Zscaler Intermediate Root CA (…)"), under the given names or fieldlab's own.
 */
async function defaultAuthority(rootName?: string, intermediateName?: string): Promise<CertificateAuthority> {
  const root = await CertificateAuthority.createRoot({
    commonName: rootName ?? 'fieldlab TLS Inspector Root CA',
  });
  return root.createIntermediate({
    commonName:
      intermediateName ?? (rootName ? `${rootName} Intermediate` : 'fieldlab TLS Inspector Intermediate CA'),
  });
}

function checkFault(fault: InspectorFault, ca: CertificateAuthority): void {
  if (!INSPECTOR_FAULTS.includes(fault)) {
    throw new FieldlabError('E_BAD_OPTION', `tls-inspector: unknown fault ${JSON.stringify(fault)}`, {
      hint: `use one of ${INSPECTOR_FAULTS.join(', ')}`,
    });
  }
  if (fault === 'missing-intermediate' && !ca.parent) {
    throw new FieldlabError(
      'E_BAD_OPTION',
      'tls-inspector: fault missing-intermediate needs an intermediate CA',
      {
        where: 'tls-inspector options.fault',
        hint: 'pass ca: root.createIntermediate(...) (or omit ca for the default root + intermediate)',
      },
    );
  }
}
