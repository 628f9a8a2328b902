import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createSecureContext, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { Aedes, type Client } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { z } from 'zod';
import { SimulatorEvents } from '../common/events.js';
import type { Endpoint, SimulatorHandle } from '../common/handle.js';
import { ConnectionTracker, closeServer, hostPort, listen } from '../common/net.js';
import { parseOptions } from '../common/options.js';
import { proxiedTlsFacts, readProxyV2 } from '../common/proxy-v2.js';
import {
  announceConnection,
  announceTlsEstablished,
  describeTlsClientError,
  type TlsClientErrorEvent,
  type TlsEstablishedEvent,
} from '../common/server-events.js';
import { coalesceWrites } from './coalesce.js';
import { ConnectThrottle, connectRateSchema } from './connect-rate.js';
import { CONNECT_TIMEOUT_MS, type ScreenVerdict, screenConnect } from './connect-screen.js';
import { guardDeliveryRecursion } from './delivery.js';
import { type DirectDelivery, publishTo } from './direct.js';
import { parseClientPacketsFast } from './fast-parse.js';
import { type BrokerFaults, brokerFaultsSchema, type FaultEvent, installFaults } from './faults.js';
import { type BrokerHooks, type ClientInfo, installHooks } from './hooks.js';
import { cacheOfflineMatches, cacheTopicMatches } from './match-cache.js';
import { shapeOutbound } from './outbound.js';
import { attachProxiedTls } from './proxied-tls.js';
import { boundInboundQos2 } from './qos2-window.js';
import { shareSubscriptions } from './shared-subscriptions.js';
import { refuseInvalidFilters } from './topics.js';
import { nullPrototypeBrokerMaps, nullPrototypeClientMaps } from './wire-keys.js';
import { writeWholePackets } from './wire-out.js';

/**
 * An MQTT broker (aedes) on any mix of transports: mqtt (TCP), mqtts (TLS, optional mutual TLS and ALPN),
 * ws and wss (subprotocol `mqtt`). Cloud personas (IoT Hub, AWS IoT) build on its hooks.
 */

const listenerSchema = z
  .object({
    protocol: z.enum(['mqtt', 'mqtts', 'ws', 'wss']),
    port: z.number().int().min(0).max(65535).default(0),
    /** WebSocket path (ws/wss). Any path is accepted when absent. */
    path: z.string().optional(),
    /**
     * mqtt only: the listener behind a TLS front (fieldlab-tls-front). Each connection starts with a PROXY
     * protocol v2 header whose TLVs carry the TLS facts the hooks read (client certificates, ALPN, SNI); the
     * front announces the connection and its TLS, so this listener does not.
     */
    proxyProtocol: z.boolean().optional(),
  })
  .strict()
  .refine((l) => !l.proxyProtocol || l.protocol === 'mqtt', {
    message: 'proxyProtocol is for an mqtt listener (the front terminates the TLS)',
    path: ['proxyProtocol'],
  });

/** MQTT 5 flow limits (`limits`): what the broker advertises in a v5 CONNACK and keeps towards clients. */
export const mqttBrokerLimitsSchema = z
  .object({
    /**
     * Receive Maximum in a v5 CONNACK (MQTT 5 §3.2.2.3.3): QoS 1/2 PUBLISHes a client may have unacknowledged
     * towards the broker. Advertised only (aedes acknowledges each at once).
     */
    receiveMaximum: z.number().int().min(1).max(65535).optional(),
    /** Topic Alias Maximum in a v5 CONNACK (§3.2.2.3.8): aliases a client may send. Default 10. */
    topicAliasMaximum: z.number().int().min(0).max(65535).optional(),
    /**
     * Most unacknowledged QoS 1/2 PUBLISHes the broker sends any one client, within the client's own
     * Receive Maximum, MQTT 3.1.1 clients included. Default: the client's Receive Maximum alone.
     */
    outboundInflightMaximum: z.number().int().min(1).max(65535).optional(),
    /** Most topic aliases the broker sends a client, within the client's Topic Alias Maximum. Default: its. */
    outboundTopicAliasMaximum: z.number().int().min(0).max(65535).optional(),
  })
  .strict();

export const mqttBrokerOptionsSchema = z
  .object({
    name: z.string().default('mqtt-broker'),
    host: z.string().default('127.0.0.1'),
    listeners: z
      .array(listenerSchema)
      .min(1)
      .default([{ protocol: 'mqtt', port: 0 }]),
    tls: z
      .object({
        certPem: z.string(),
        keyPem: z.string(),
        /** Require client certificates issued by these CAs (mutual TLS). */
        clientCa: z.array(z.string()).optional(),
        /**
         * Ask for a client certificate without verifying it at the TLS layer (a persona's `authenticate`
         * hook decides, e.g. AWS IoT's registered certificates and CAs). Ignored when `clientCa` is set.
         */
        requestCert: z.boolean().optional(),
        /** ALPN protocols offered (e.g. `x-amzn-mqtt-ca`, `mqtt`). */
        alpn: z.array(z.string()).optional(),
        /**
         * More server certificates, chosen by the name the client sends (SNI): a configurable endpoint's
         * custom domain. Other names (or none) get `certPem`.
         */
        sni: z
          .array(
            z.object({ servername: z.string().min(1), certPem: z.string(), keyPem: z.string() }).strict(),
          )
          .optional(),
      })
      .strict()
      .optional(),
    /** When set, CONNECT must carry one of these username/password pairs (else CONNACK 4/5). */
    users: z.array(z.object({ username: z.string(), password: z.string() }).strict()).optional(),
    /** Persona hooks (see hooks.ts); `authenticate` here replaces the `users` check. */
    hooks: z
      .custom<BrokerHooks>((v) => typeof v === 'object' && v !== null, 'expected an object of hook functions')
      .optional(),
    /** Protocol faults from the start (see faults.ts); change them later with `handle.setFault()`. */
    faults: brokerFaultsSchema.optional(),
    /** A cloud's connect throttle: CONNECTs over `perSecond` get CONNACK 0x03 (see connect-rate.ts). */
    connectRate: connectRateSchema.optional(),
    /** MQTT 5 flow limits the broker advertises and keeps (a cloud persona's values); see MQTT5_LIMITS. */
    limits: mqttBrokerLimitsSchema.optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    o.listeners.forEach((l, i) => {
      if ((l.protocol === 'mqtts' || l.protocol === 'wss') && !o.tls) {
        ctx.addIssue({
          code: 'custom',
          path: ['listeners', i, 'protocol'],
          message: `${l.protocol} needs the tls option (certPem, keyPem)`,
        });
      }
    });
  });

export type MqttBrokerOptions = z.input<typeof mqttBrokerOptionsSchema>;

export { type ConnectRate, connectRateSchema } from './connect-rate.js';
export type { DirectDelivery } from './direct.js';
export type { BrokerFaults, FaultEvent, FaultKind } from './faults.js';
export { brokerFaultsSchema } from './faults.js';
export type { BrokerHooks, ClientInfo, ConnectRefusal } from './hooks.js';

/**
 * MQTT 5 session and flow limits (aedes leaves them unlimited). A v5 session outlives its connection for
 * its Session Expiry Interval (MQTT 5 §3.1.2.11.2): capped at 7 days (AWS IoT's longest persistent
 * session) and at 10,000 waiting sessions (and as many delayed wills) at once, past which a disconnecting
 * session ends at once; so the broker's per-client state stays bounded. Topic aliases from clients: up to
 * 10 (mosquitto's default), advertised in the CONNACK (§3.2.2.3.8).
 */
const MQTT5_LIMITS = {
  sessionExpiryIntervalLimit: 7 * 24 * 3600,
  pendingSessionsLimit: 10_000,
  topicAliasMaximum: 10,
};

export interface MqttBrokerEvents {
  [key: string]: unknown;
  connection: { id: string; remote: string };
  'tls-client-error': TlsClientErrorEvent;
  /** A client's TLS handshake completed (mqtts, wss). */
  'tls-established': TlsEstablishedEvent;
  'client-connected': { clientId: string; username?: string };
  'client-rejected': { clientId: string; returnCode: number; reason: string };
  'client-disconnected': { clientId: string };
  publish: { clientId: string; topic: string; qos: number; retain: boolean; bytes: number };
  subscribe: { clientId: string; topics: string[] };
  closed: { id: string; bytesIn: number; bytesOut: number; durationMs: number };
  /**
   * A QoS 1/2 message to a client was dropped: its Receive Maximum window was full and as many messages were
   * already waiting (see receive-maximum.ts).
   */
  'outbound-dropped': { clientId: string; topic: string; qos: number };
  /** A connection closed without an answer for breaking MQTT (a wildcard will topic, a bad filter). */
  'protocol-violation': { clientId: string; reason: string };
  /** A protocol fault acted on a client (refused CONNACK, withheld PUBACK, dropped connection). */
  fault: FaultEvent;
}

export interface MqttBrokerStats {
  [key: string]: unknown;
  connections: number;
  clients: number;
  published: number;
  rejected: number;
  faults: number;
}

export interface MqttBrokerHandle extends SimulatorHandle<MqttBrokerEvents, MqttBrokerStats> {
  readonly broker: Aedes;
  /** Publishes from the broker itself (e.g. a cloud persona answering a device). */
  publish(topic: string, payload: string | Buffer, qos?: 0 | 1): Promise<void>;
  /**
   * Publishes to one connection only, not to the topic's other subscribers (a cloud answering the device
   * that asked): `to` is the asking connection (`ClientInfo.connection`; lost if it has closed) or a client
   * id (its current connection). Delivered only through a matching subscription, at the lower of `qos` and
   * the granted QoS. Resolves once written, or with why not (see direct.ts).
   */
  publishTo(
    to: ClientInfo['connection'] | string,
    topic: string,
    payload: string | Buffer,
    qos?: 0 | 1,
  ): Promise<DirectDelivery>;
  /**
   * Replaces the active protocol faults (`{}` or no argument clears them); applies to the next packet.
   * Throws E_BAD_OPTION for an unknown fault or a bad value.
   */
  setFault(faults?: BrokerFaults): void;
  /** The faults in force now. */
  faults(): BrokerFaults;
}

/** Picks a secure context by SNI (names compared case-insensitively, RFC 6066 §3); undefined: the default. */
function sniCallback(
  contexts: ReadonlyArray<{ servername: string; certPem: string; keyPem: string }>,
  clientCa: string[] | undefined,
): (
  servername: string,
  cb: (err: Error | null, ctx?: ReturnType<typeof createSecureContext>) => void,
) => void {
  const byName = new Map(
    contexts.map((c) => [
      c.servername.toLowerCase(),
      createSecureContext({ cert: c.certPem, key: c.keyPem, ...(clientCa ? { ca: clientCa } : {}) }),
    ]),
  );
  return (servername, cb) => cb(null, byName.get(servername.toLowerCase()));
}

export async function start(options: MqttBrokerOptions = {}): Promise<MqttBrokerHandle> {
  const opts = parseOptions(mqttBrokerOptionsSchema, options, 'mqtt-broker');
  const events = new SimulatorEvents<MqttBrokerEvents>(opts.name);
  const stats: MqttBrokerStats = { connections: 0, clients: 0, published: 0, rejected: 0, faults: 0 };
  const broker = await Aedes.createBroker({
    ...MQTT5_LIMITS,
    ...(opts.limits?.topicAliasMaximum !== undefined
      ? { topicAliasMaximum: opts.limits.topicAliasMaximum }
      : {}),
    ...(opts.limits?.receiveMaximum !== undefined ? { receiveMaximum: opts.limits.receiveMaximum } : {}),
  });
  nullPrototypeBrokerMaps(broker);
  cacheTopicMatches(broker);
  cacheOfflineMatches(broker);
  const shared = shareSubscriptions(broker);
  const outboundLimits = {
    inflightMaximum: opts.limits?.outboundInflightMaximum,
    topicAliasMaximum: opts.limits?.outboundTopicAliasMaximum,
    sharedSubscriptions: true,
  };
  /** Everything a connection needs before aedes reads its first packet. */
  const prepare = (client: Client) => {
    nullPrototypeClientMaps(client);
    parseClientPacketsFast(client);
    shared.attach(client);
    shapeOutbound(client, outboundLimits, (c, p) =>
      events.emitEvent('outbound-dropped', {
        clientId: c.id,
        topic: p.cmd === 'publish' ? p.topic : '',
        qos: p.cmd === 'publish' ? p.qos : 0,
      }),
    );
  };
  guardDeliveryRecursion(broker);
  let faults: BrokerFaults = { ...opts.faults };
  const tracker = new ConnectionTracker();

  const users = opts.users;
  const hooks: BrokerHooks = {
    ...(users
      ? {
          authenticate: async (c: ClientInfo, password: Buffer | undefined) =>
            users.some((u) => u.username === c.username && u.password === password?.toString())
              ? (true as const)
              : { returnCode: 4 as const, reason: 'bad username or password' },
        }
      : {}),
    ...opts.hooks,
  };
  installHooks(broker, hooks, (clientId, returnCode, reason) => {
    stats.rejected++;
    events.emitEvent('client-rejected', { clientId, returnCode, reason });
  });
  installFaults(
    broker,
    () => faults,
    (e) => {
      stats.faults++;
      events.emitEvent('fault', e);
    },
  );
  const onViolation = (clientId: string, reason: string) =>
    events.emitEvent('protocol-violation', { clientId, reason });
  refuseInvalidFilters(broker, onViolation);
  boundInboundQos2(broker);
  // What aedes gets wrong about CONNECT is answered before it reads the connection (connect-screen.ts).
  const throttle = opts.connectRate ? new ConnectThrottle(opts.connectRate.perSecond) : undefined;
  const screen = (conn: Duplex, handOn: () => void) =>
    screenConnect(conn, {
      timeoutMs: CONNECT_TIMEOUT_MS,
      pass: handOn,
      ...(throttle ? { admit: () => throttle.admit() } : {}),
      stopped: (v: ScreenVerdict) => {
        if (v.kind === 'violation') return onViolation(v.clientId, v.reason);
        stats.rejected++;
        events.emitEvent('client-rejected', {
          clientId: v.clientId,
          returnCode: v.returnCode,
          reason: v.reason,
        });
      },
    });
  broker.on('client', (c) => {
    stats.clients++;
    events.emitEvent('client-connected', { clientId: c.id });
  });
  broker.on('clientDisconnect', (c) => events.emitEvent('client-disconnected', { clientId: c.id }));
  broker.on('publish', (p, c) => {
    if (!c) return; // the broker's own $SYS and persona messages
    stats.published++;
    // One event object per message is a cost on the broker's busiest path: built only when someone reads it.
    if (events.listenerCount('publish') === 0 && events.listenerCount('event') === 0) return;
    events.emitEvent('publish', {
      clientId: c.id,
      topic: p.topic,
      qos: p.qos,
      retain: p.retain,
      bytes: p.payload.length,
    });
  });
  broker.on('subscribe', (subs, c) =>
    events.emitEvent('subscribe', { clientId: c.id, topics: subs.map((s) => s.topic) }),
  );

  const trackSocket = (socket: Socket, transport: string, announce: boolean) => {
    stats.connections++;
    // Small MQTT packets must not wait for Nagle's algorithm (a QoS 1 round trip would stall ~40 ms).
    socket.setNoDelay(true);
    tracker.track(socket);
    if (announce) announceConnection(events, socket, `${transport}-${randomUUID().slice(0, 8)}`);
  };
  const onTlsError = (err: Error, tls: TLSSocket) =>
    events.emitEvent('tls-client-error', describeTlsClientError(err, tls));
  const tlsOptions = opts.tls
    ? {
        cert: opts.tls.certPem,
        key: opts.tls.keyPem,
        ...(opts.tls.clientCa
          ? { ca: opts.tls.clientCa, requestCert: true, rejectUnauthorized: true }
          : opts.tls.requestCert
            ? { requestCert: true, rejectUnauthorized: false }
            : {}),
        ...(opts.tls.alpn ? { ALPNProtocols: opts.tls.alpn } : {}),
        ...(opts.tls.sni?.length ? { SNICallback: sniCallback(opts.tls.sni, opts.tls.clientCa) } : {}),
      }
    : undefined;

  const servers: Array<NetServer | HttpServer> = [];
  const wsServers: WebSocketServer[] = [];
  const endpoints: Endpoint[] = [];
  try {
    for (const l of opts.listeners) {
      let server: NetServer | HttpServer;
      const handle = (s: Socket) => {
        coalesceWrites(s);
        writeWholePackets(s);
        screen(s, () => prepare(broker.handle(s)));
      };
      if (l.protocol === 'mqtt' && l.proxyProtocol) {
        // The TLS front's header first (bounded like a CONNECT), then MQTT as on any connection.
        server = createNetServer((s) => {
          readProxyV2(s, CONNECT_TIMEOUT_MS).then(
            (h) => {
              try {
                attachProxiedTls(s, proxiedTlsFacts(h));
              } catch (err) {
                onViolation('', `PROXY v2 header: a client certificate that does not parse (${String(err)})`);
                return s.destroy();
              }
              handle(s);
            },
            (err: Error) => {
              onViolation('', err.message);
              s.destroy();
            },
          );
        });
      } else if (l.protocol === 'mqtt') server = createNetServer(handle);
      else if (l.protocol === 'mqtts') {
        const tlsServer = createTlsServer(tlsOptions!, handle);
        tlsServer.on('tlsClientError', onTlsError);
        announceTlsEstablished(events, tlsServer);
        server = tlsServer;
      } else {
        server = l.protocol === 'ws' ? createHttpServer() : createHttpsServer(tlsOptions!);
        if (l.protocol === 'wss') {
          server.on('tlsClientError', onTlsError);
          announceTlsEstablished(events, server as HttpsServer);
        }
        const wss = new WebSocketServer({
          server: server as HttpServer,
          ...(l.path ? { path: l.path } : {}),
          perMessageDeflate: false,
          // MQTT over WebSockets: the subprotocol is `mqtt` (3.1.1 [MQTT-6.0.0-3], MQTT 5 §6) or `mqttv3.1`.
          handleProtocols: (protocols) =>
            protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false,
        });
        wss.on('connection', (ws, req) => {
          const stream = createWebSocketStream(ws);
          screen(stream, () => prepare(broker.handle(stream, req)));
        });
        wsServers.push(wss);
      }
      server.on('connection', (s: Socket) => trackSocket(s, l.protocol, !l.proxyProtocol));
      servers.push(server);
      const port = await listen(server, opts.host, l.port);
      const path = l.protocol === 'ws' || l.protocol === 'wss' ? (l.path ?? '/mqtt') : '';
      endpoints.push({
        name: l.protocol,
        host: opts.host,
        port,
        protocol: l.protocol,
        url: `${l.protocol}://${hostPort(opts.host, port)}${path}`,
      });
    }
  } catch (err) {
    await Promise.all(servers.map((s) => closeServer(s)));
    await new Promise<void>((r) => broker.close(() => r()));
    throw err;
  }

  let stopped: Promise<void> | undefined;
  return {
    name: opts.name,
    endpoints,
    events,
    broker,
    stats: () => ({ ...stats }),
    setFault(next = {}) {
      faults = { ...parseOptions(brokerFaultsSchema, next, `${opts.name} setFault`) };
    },
    faults: () => ({ ...faults }),
    publish: (topic, payload, qos = 0) =>
      new Promise<void>((resolve, reject) =>
        broker.publish(
          { cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain: false, dup: false },
          (err?: Error) => (err ? reject(err) : resolve()),
        ),
      ),
    publishTo: (to, topic, payload, qos = 0) => publishTo(broker, to, topic, payload, qos),
    stop() {
      stopped ??= (async () => {
        for (const w of wsServers) for (const c of w.clients) c.terminate();
        await Promise.all(servers.map((s) => closeServer(s, tracker)));
        await new Promise<void>((r) => broker.close(() => r()));
      })();
      return stopped;
    },
  };
}
