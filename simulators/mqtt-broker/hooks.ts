import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { Aedes, Client } from 'aedes';
import { proxiedTlsOf } from './proxied-tls.js';

/**
 * Hooks a cloud persona (IoT Hub, AWS IoT Core) plugs into the broker: who may connect, publish and
 * subscribe, and what to do with a device's message (answer a provisioning request...). Each hook is
 * async and optional; without hooks the broker lets everyone in (or checks `users`).
 */
export interface ClientInfo {
  clientId: string;
  /**
   * The connection this packet came on (the aedes client): answer a request on it with the handle's
   * `publishTo`, so that the answer reaches neither other subscribers nor a later connection with this id.
   */
  connection: Client;
  username?: string;
  /**
   * The client certificate of a mutual-TLS connection (mqtts or wss), with the chain the client sent
   * (`issuerCertificate`, from `getPeerCertificate(true)`).
   */
  peerCertificate?: PeerCertificate;
  /** Whether the TLS layer verified that certificate against `tls.clientCa`. */
  authorized?: boolean;
  /** The negotiated ALPN protocol, when the transport is TLS. */
  alpn?: string;
  /** The server name the client sent (TLS SNI, RFC 6066 §3), when it sent one. */
  servername?: string;
}

/**
 * A refusal at CONNECT: the MQTT 3.1.1 CONNACK return code (§3.2.2.3) and why. An MQTT 5 client gets the
 * matching v5 reason code (MQTT 5 §3.2.2.2): 2 → 0x85, 3 → 0x88, 4 → 0x86, 5 → 0x87.
 */
export interface ConnectRefusal {
  returnCode: 1 | 2 | 3 | 4 | 5;
  reason: string;
  /**
   * Close the connection without any CONNACK (what AWS IoT does with an unknown or just-registered
   * certificate); `returnCode` is then only reported in the `client-rejected` event.
   */
  drop?: boolean;
}

export interface BrokerHooks {
  authenticate?(client: ClientInfo, password: Buffer | undefined): Promise<true | ConnectRefusal>;
  /**
   * false: the PUBLISH is dropped. MQTT 3.1.1 has no way to say so: the client is disconnected (what AWS IoT
   * does on a policy denial). MQTT 5: a QoS 1 PUBLISH gets PUBACK 0x87 Not authorized with the reason as
   * Reason String, a QoS 0 one is dropped, and the connection stays (MQTT 5 §3.4.2.1, as AWS IoT answers).
   */
  authorizePublish?(client: ClientInfo, topic: string, payload: Buffer): Promise<boolean>;
  /** false: the SUBACK carries 0x80 (failure) for that topic; 0x87 Not authorized for MQTT 5 (§3.9.3). */
  authorizeSubscribe?(client: ClientInfo, topic: string): Promise<boolean>;
  /** Every authorized PUBLISH from a client, after delivery (a persona answers requests here). */
  onPublish?(client: ClientInfo, topic: string, payload: Buffer): Promise<void> | void;
}

/** What a hook knows about an aedes client: id, user, and the TLS facts of its connection. */
export function clientInfo(client: Client, username?: string): ClientInfo {
  // Over ws/wss, client.conn is the WebSocket stream: the TLS socket is the upgrade request's.
  const req = (client as Client & { req?: { socket?: unknown } }).req;
  const direct = client.conn as Partial<TLSSocket>;
  const conn = (
    typeof direct.getPeerCertificate === 'function' ? direct : (req?.socket ?? direct)
  ) as Partial<TLSSocket>;
  const tls = typeof conn.getPeerCertificate === 'function';
  const cert = tls ? conn.getPeerCertificate?.(true) : undefined;
  const info: ClientInfo = { clientId: client.id, connection: client };
  const user = username ?? (client as Client & { fieldlabUser?: string }).fieldlabUser;
  if (user !== undefined) info.username = user;
  // TLS terminated by a front (a proxyProtocol listener): the facts its PROXY v2 header carried.
  const proxied = proxiedTlsOf(client.conn);
  if (proxied) {
    if (proxied.peerCertificate) info.peerCertificate = proxied.peerCertificate;
    if (proxied.alpn !== undefined) info.alpn = proxied.alpn;
    if (proxied.servername !== undefined) info.servername = proxied.servername;
    info.authorized = false;
    return info;
  }
  if (cert && Object.keys(cert).length > 0) info.peerCertificate = cert;
  if (tls && typeof conn.alpnProtocol === 'string') info.alpn = conn.alpnProtocol;
  if (tls && typeof conn.servername === 'string') info.servername = conn.servername;
  if (tls) info.authorized = conn.authorized === true;
  return info;
}

/** Installs the hooks on an aedes instance, reporting refusals through `onRefused`. */
export function installHooks(
  broker: Aedes,
  hooks: BrokerHooks,
  onRefused: (clientId: string, returnCode: number, reason: string) => void,
): void {
  const { authenticate, authorizePublish, authorizeSubscribe, onPublish } = hooks;
  if (authenticate) {
    broker.authenticate = (client, username, password, done) => {
      (client as Client & { fieldlabUser?: string }).fieldlabUser = username ?? undefined;
      authenticate(
        clientInfo(client, username ?? undefined),
        password ? Buffer.from(password) : undefined,
      ).then(
        (r) => {
          if (r === true) return done(null, true);
          onRefused(client.id, r.returnCode, r.reason);
          // aedes ignores a late authenticate answer once the client is closed.
          if (r.drop) return client.conn.destroy();
          done(
            Object.assign(new Error(r.reason), { returnCode: r.returnCode }) as Parameters<typeof done>[0],
            false,
          );
        },
        (err: unknown) => {
          onRefused(client.id, 3, `authenticate hook failed: ${String(err)}`);
          done(
            Object.assign(new Error('server unavailable'), { returnCode: 3 }) as Parameters<typeof done>[0],
            false,
          );
        },
      );
    };
  }
  if (authorizePublish) {
    broker.authorizePublish = (client, packet, cb) => {
      if (!client) return cb(null); // the broker's own messages
      authorizePublish(clientInfo(client), packet.topic, Buffer.from(packet.payload)).then(
        (ok) => cb(ok ? null : new Error(`not authorized to publish to ${packet.topic}`)),
        (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
      );
    };
  }
  if (authorizeSubscribe) {
    broker.authorizeSubscribe = (client, sub, cb) => {
      authorizeSubscribe(clientInfo(client), sub.topic).then(
        // aedes: a null subscription makes the SUBACK carry 0x80 for it.
        (ok) => cb(null, ok ? sub : null),
        (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
      );
    };
  }
  if (onPublish) {
    broker.on('publish', (packet, client) => {
      if (!client) return;
      Promise.resolve(onPublish(clientInfo(client), packet.topic, Buffer.from(packet.payload))).catch(
        () => undefined,
      );
    });
  }
}
