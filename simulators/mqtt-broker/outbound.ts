import type { EventEmitter } from 'node:events';
import type { Client } from 'aedes';
import type { Packet } from 'mqtt-packet';
import { OutboundWindow } from './receive-maximum.js';
import { OutboundAliases } from './topic-alias-out.js';
import { interceptWrites } from './wire-out.js';

/**
 * What the broker sends one connection, shaped by what that client asked for in its CONNECT and by the
 * broker's own limits:
 *
 *   aedes ──▶ CONNACK capabilities ──▶ Receive Maximum window (receive-maximum.ts) ──▶ topic aliases (topic-alias-out.ts) ──▶ wire
 *
 * The client's side arrives on its packet parser: the CONNECT (Receive Maximum §3.1.2.11.3, Topic Alias
 * Maximum §3.1.2.11.5) and then every PUBACK / PUBCOMP / PUBREC that frees a slot of the window. An MQTT 3.1.1
 * connection under no broker cap gets nothing installed.
 */

/** The broker's own outbound limits (a cloud persona's), on top of what each client asks for. */
export interface OutboundLimits {
  /** Most unacknowledged QoS 1/2 PUBLISHes to any one client, MQTT 3.1.1 included (AWS IoT: 100). */
  inflightMaximum?: number | undefined;
  /** Most topic aliases the broker uses towards a client (within the client's Topic Alias Maximum). */
  topicAliasMaximum?: number | undefined;
  /** Advertise Shared Subscription Available (MQTT 5 §3.2.2.3.13) in a v5 CONNACK. */
  sharedSubscriptions: boolean;
}

/** MQTT 5 §3.1.2.11.3: a CONNECT without Receive Maximum means 65,535; so does MQTT 3.1.1 (no limit). */
const NO_LIMIT = 65_535;

type ClientInternals = Client & { _parser: EventEmitter };

/**
 * Installs the outbound shaping on a client aedes has just made (before it reads the CONNECT). `onDrop` is
 * told of a message that did not fit behind a full window.
 */
export function shapeOutbound(
  client: Client,
  limits: OutboundLimits,
  onDrop: (client: Client, packet: Packet) => void,
): void {
  const parser = (client as ClientInternals)._parser;
  const conn = client.conn;
  let window: OutboundWindow | undefined;

  const onConnect = (packet: Packet) => {
    if (packet.cmd !== 'connect') return; // aedes closes a connection that does not start with CONNECT
    const v5 = packet.protocolVersion === 5;
    const asked = v5 ? (packet.properties?.receiveMaximum ?? NO_LIMIT) : NO_LIMIT;
    const limit = Math.min(asked, limits.inflightMaximum ?? NO_LIMIT);
    const aliasMaximum = v5
      ? Math.min(packet.properties?.topicAliasMaximum ?? 0, limits.topicAliasMaximum ?? NO_LIMIT)
      : 0;
    if (!v5 && limit >= NO_LIMIT) return;
    window = limit < NO_LIMIT ? new OutboundWindow(limit, (p) => onDrop(client, p)) : undefined;
    const aliases = aliasMaximum > 0 ? new OutboundAliases(aliasMaximum) : undefined;
    const send = (p: Packet, write: (p: Packet) => boolean) => write(aliases ? aliases.apply(p) : p);
    interceptWrites(conn, (p, write) => {
      if (p.cmd === 'connack') {
        // Only the CONNACK needs fixing on a connection with neither a window nor aliases.
        if (!window && !aliases) interceptWrites(conn, undefined);
        return write(v5 ? withCapabilities(p, limits) : p);
      }
      if (!window) return send(p, write);
      return window.offer(p, (q) => send(q, write));
    });
    conn.once('close', () => {
      window?.clear();
      interceptWrites(conn, undefined);
    });
  };
  const onAck = (packet: Packet) => {
    if (packet.cmd === 'puback' || packet.cmd === 'pubcomp') window?.release(packet.messageId);
    // MQTT 5 §4.3.3: a PUBREC with a reason code ≥ 0x80 ends the QoS 2 exchange
    else if (packet.cmd === 'pubrec' && (packet.reasonCode ?? 0) >= 0x80) window?.release(packet.messageId);
  };
  parser.once('packet', (packet: Packet) => {
    onConnect(packet);
    if (window) parser.on('packet', onAck);
  });
}

/**
 * aedes advertises Shared Subscription Available 0 in every v5 CONNACK (it has none); the broker's
 * shared-subscriptions.ts provides them, so a successful CONNACK says 1 (MQTT 5 §3.2.2.3.13).
 */
function withCapabilities(packet: Packet, limits: OutboundLimits): Packet {
  if (packet.cmd !== 'connack' || !limits.sharedSubscriptions || packet.properties === undefined)
    return packet;
  return { ...packet, properties: { ...packet.properties, sharedSubscriptionAvailable: true } };
}
