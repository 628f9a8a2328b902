import type { Packet } from 'mqtt-packet';

/**
 * The outbound QoS 1/2 window of one connection (MQTT 5 §4.9 Flow Control): the server MUST NOT have more
 * unacknowledged QoS 1 and QoS 2 PUBLISHes in flight to a client than the Receive Maximum the client sent in
 * its CONNECT [MQTT-3.3.4-9] (65,535 when absent, §3.1.2.11.3); a cloud caps it lower for every client (AWS
 * IoT Core: 100 unacknowledged outbound messages, MQTT 3.1.1 included). aedes 2.0.0-beta.1 stores the
 * client's value and writes regardless.
 *
 *   QoS>0 PUBLISH ──window full (or older ones waiting)? ──no──▶ sent, its packet id held
 *                          │ yes                                     │
 *                          ▼                                         ▼
 *                 queued (at most MAX_QUEUED) ◀── flushed in order ── PUBACK / PUBCOMP / PUBREC ≥ 0x80 frees the id
 *
 * QoS 0 and every other packet pass untouched (§4.9: there is no flow control for QoS 0). Past MAX_QUEUED
 * waiting messages a new one is dropped, as mosquitto's max_queued_messages does; a persistent session keeps
 * its stored copy and gets it again when it reconnects.
 */

/** Messages one connection may have waiting behind a full window (mosquitto's max_queued_messages). */
export const MAX_QUEUED = 1000;

export class OutboundWindow {
  private readonly inflight = new Set<number>();
  private readonly waiting: Packet[] = [];
  private send: ((p: Packet) => boolean) | undefined;

  /**
   * @param limit the most QoS 1/2 PUBLISHes unacknowledged at once
   * @param onDrop a message did not fit in the queue
   */
  constructor(
    readonly limit: number,
    private readonly onDrop: (packet: Packet) => void,
  ) {}

  /** Number of QoS 1/2 PUBLISHes sent and not yet acknowledged. */
  get inFlight(): number {
    return this.inflight.size;
  }

  /** Number of messages waiting for the window. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Sends `packet` through `send` now, or holds it while the window is full. `send` applies what must happen
   * in wire order (outbound topic aliases) and encodes.
   */
  offer(packet: Packet, send: (p: Packet) => boolean): boolean {
    this.send = send;
    if (packet.cmd !== 'publish' || !packet.qos || packet.messageId === undefined) return send(packet);
    if (this.waiting.length > 0 || this.inflight.size >= this.limit) {
      if (this.waiting.length >= MAX_QUEUED) this.onDrop(packet);
      else this.waiting.push(packet);
      return true; // accepted: aedes goes on (its persistence still holds a session's copy)
    }
    this.inflight.add(packet.messageId);
    return send(packet);
  }

  /** The client acknowledged `messageId` (PUBACK, PUBCOMP, or a PUBREC ≥ 0x80): send what waits. */
  release(messageId: number | undefined): void {
    if (messageId === undefined || !this.inflight.delete(messageId)) return;
    while (this.send && this.waiting.length > 0 && this.inflight.size < this.limit) {
      const next = this.waiting.shift()!;
      this.inflight.add(next.messageId!);
      this.send(next);
    }
  }

  /** The connection is gone: forget what waits (a persistent session's store still has it). */
  clear(): void {
    this.waiting.length = 0;
    this.inflight.clear();
  }
}
