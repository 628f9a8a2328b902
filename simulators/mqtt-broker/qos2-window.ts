import type { Aedes, Client, PublishPacket } from 'aedes';

/**
 * The inbound QoS 2 window aedes 2.0.0-beta.1 lacks (aedes 1.2.0's `maxInflightInbound`, which the beta
 * branched before). A QoS 2 PUBLISH is stored until its PUBREL (MQTT 3.1.1 §4.3.3, MQTT 5 §4.3.3); without
 * a bound, a client that never sends PUBREL fills the store with up to 65,535 messages, and a clean session
 * that ends with messages still stored leaves them behind for good (the beta's persistence has no
 * `cleanIncoming`), so cycling client ids grows it without end.
 *
 *   PUBLISH QoS 2 ──authorizePublish: window full? ──yes──▶ refused (3.1.1: connection closed; 5: PUBREC 0x87)
 *                          │ no
 *                          ▼
 *   slot taken, stored ─── PUBREL ──▶ deleted, slot freed        clean session ends ──▶ what is left is deleted
 */

/** Stored inbound QoS 2 messages per client id, as aedes 1.2.0's default `maxInflightInbound`. */
export const MAX_INFLIGHT_INBOUND = 1000;

interface Persistence {
  incomingDelPacket(client: Client, packet: PublishPacket): Promise<void>;
}

/** Installs the window on `broker`; wraps its authorizePublish, so call it after the other hooks. */
export function boundInboundQos2(broker: Aedes, limit = MAX_INFLIGHT_INBOUND): void {
  const persistence = (broker as Aedes & { persistence: Persistence }).persistence;
  /**
   * Message ids per client id holding a slot, with the packet (to delete it when a clean session ends).
   * The slot is taken in authorizePublish, synchronously: aedes hands every packet of a socket read to its
   * handlers at once, so counting at the (asynchronous) store would let a whole read past the check.
   */
  const slots = new Map<string, Map<number, PublishPacket>>();
  const release = (clientId: string, messageId: number | undefined) => {
    const ids = slots.get(clientId);
    if (messageId !== undefined) ids?.delete(messageId);
    if (ids?.size === 0) slots.delete(clientId);
  };

  const del = persistence.incomingDelPacket.bind(persistence);
  persistence.incomingDelPacket = async (client, packet) => {
    await del(client, packet);
    release(client.id, packet.messageId);
  };

  const authorizePublish = broker.authorizePublish;
  broker.authorizePublish = (client, packet, cb) => {
    if (!client || packet.qos !== 2 || packet.messageId === undefined) {
      return authorizePublish.call(broker, client, packet, cb);
    }
    const ids = slots.get(client.id) ?? new Map<number, PublishPacket>();
    // a DUP retransmission of a message already held takes no new slot
    if (!ids.has(packet.messageId)) {
      if (ids.size >= limit) {
        return cb(new Error(`inbound QoS 2 window full: ${limit} messages already await PUBREL`));
      }
      ids.set(packet.messageId, packet);
      slots.set(client.id, ids);
    }
    authorizePublish.call(broker, client, packet, (err) => {
      if (err) release(client.id, packet.messageId); // refused: never stored
      cb(err);
    });
  };

  // [MQTT-3.1.2-6] a clean session ends with its connection; MQTT 5: a session with expiry 0 likewise,
  // and a longer one when it expires.
  const forget = (client: Client) => {
    const ids = slots.get(client.id);
    if (!ids) return;
    slots.delete(client.id);
    for (const packet of ids.values()) del(client, packet).catch(() => undefined);
  };
  broker.on('clientDisconnect', (client) => {
    if (client.clean) forget(client);
  });
  broker.on('sessionExpired', forget);
}
