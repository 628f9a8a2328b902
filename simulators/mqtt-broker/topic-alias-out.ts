import type { IPublishPacket, Packet } from 'mqtt-packet';

/**
 * Outbound topic aliases (MQTT 5 §3.3.2.3.4, §4.7 [MQTT-3.3.2-9..10]): the broker replaces a PUBLISH's topic
 * by a number the client maps back. A client that sends Topic Alias Maximum N in its CONNECT accepts aliases
 * 1..N; with none (or 0) the server MUST NOT send any [MQTT-3.1.2-26]. The mapping is per connection and
 * starts empty on every connection [MQTT-3.3.2-7].
 *
 *   first PUBLISH on topic T (a free alias k) ──▶ topic T + Topic Alias k   (the client learns k = T)
 *   every later PUBLISH on T                  ──▶ topic "" + Topic Alias k
 *   topics once all aliases are taken         ──▶ sent with their topic, no alias
 *
 * Applied when the packet is encoded, so the packet that sets an alias always reaches the wire before one
 * that uses it; the packet aedes holds (and may store for a session) is never changed, a copy is sent.
 */
export class OutboundAliases {
  private readonly aliases = new Map<string, number>();

  /** @param maximum the highest alias this connection may use (0: none) */
  constructor(readonly maximum: number) {}

  /** Number of topics that have an alias on this connection. */
  get size(): number {
    return this.aliases.size;
  }

  apply(packet: Packet): Packet {
    if (packet.cmd !== 'publish' || this.maximum === 0 || packet.topic === '') return packet;
    const known = this.aliases.get(packet.topic);
    if (known !== undefined) return withAlias(packet, '', known);
    if (this.aliases.size >= this.maximum) return packet;
    const alias = this.aliases.size + 1;
    this.aliases.set(packet.topic, alias);
    return withAlias(packet, packet.topic, alias);
  }
}

function withAlias(packet: IPublishPacket, topic: string, topicAlias: number): IPublishPacket {
  // A fresh properties object: aedes shares one between every subscriber of a message.
  return { ...packet, topic, properties: { ...packet.properties, topicAlias } };
}
