import type { EventEmitter } from 'node:events';
import type { Client } from 'aedes';
import type { Packet } from 'mqtt-packet';

/**
 * A fast path in front of mqtt-packet's parser for the packets a broker reads most: a whole PUBLISH, and the
 * acknowledgements of QoS 1 and 2 (PUBACK, PUBREC, PUBREL, PUBCOMP). A profile
 * of a QoS 0 flood (mosquitto_pub → broker → mosquitto_sub) put about 30 % of the broker's CPU in that parser:
 * it walks every packet through a state machine over a `bl` buffer list (a copy or a slice per field) with a
 * dozen disabled `debug()` calls, each a rest-argument call and a getter. Here a PUBLISH that is whole in the
 * bytes of one read is decoded straight from them into the same Packet object mqtt-packet would build (same
 * class, same fields, the payload a view of the read, as bl's slice of one buffer is), and emitted on the
 * parser as mqtt-packet would.
 *
 *   read ──▶ parse(buf) ──parser idle?──no──────────────────────────────▶ mqtt-packet (as before)
 *                            │ yes
 *                            ▼ per packet in buf
 *              plain PUBLISH (MQTT 3.1, 3.1.1; 5 without properties), whole ──▶ decoded here, 'packet'
 *              PUBACK / PUBREC / PUBREL / PUBCOMP (MQTT 3.1, 3.1.1), whole ──────▶ decoded here, 'packet'
 *              any other whole packet, or anything odd ─────────────────────────▶ mqtt-packet, that packet alone
 *              a packet cut by the read's end ──▶ mqtt-packet, which is handed the rest of it alone at the next read
 *
 * Everything else stays mqtt-packet's: CONNECT (and so the protocol version), every other packet type, MQTT 5
 * properties, and every malformed input (it gets mqtt-packet's own error: a PUBLISH with both QoS bits set, a
 * topic or packet identifier past the packet's end, a bad length). The fast path decodes only while
 * mqtt-packet holds no bytes of its own, so the two never split one packet; a read that ends inside a packet
 * leaves that packet to mqtt-packet's buffer list, and the next read gives it the rest of that packet alone.
 */

/** mqtt-packet's Parser internals read here (mqtt-packet 9). */
type ParserInternals = EventEmitter & {
  parse(buf: Buffer): number;
  error: Error | null;
  packet: { length: number };
  settings: { protocolVersion?: number };
  _stateCounter: number;
  _list: { length: number };
};

type PublishFields = {
  cmd: string;
  retain: boolean;
  qos: number;
  dup: boolean;
  length: number;
  topic: string | null;
  payload: Buffer | null;
  messageId?: number;
};

/** mqtt-packet's parser states: header, length, payload, new packet. */
const PAYLOAD_STATE = 2;
const PUBLISH_TYPE = 3;
const PUBACK_TYPE = 4;
const PUBREL_TYPE = 6;
const PUBCOMP_TYPE = 7;
const ACK_COMMANDS = ['puback', 'pubrec', 'pubrel', 'pubcomp'];
/** mqtt-packet's VARBYTEINT_MAX: a Remaining Length has at most 4 bytes (MQTT 3.1.1 §2.2.3). */
const MAX_LENGTH_BYTES = 4;

/** Remaining Length at `at` (MQTT 3.1.1 §2.2.3): [value, bytes], 'short' (more bytes needed) or 'bad'. */
function remainingLength(data: Buffer, at: number): [number, number] | 'short' | 'bad' {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < MAX_LENGTH_BYTES; i++) {
    if (at + i >= data.length) return 'short';
    const b = data[at + i]!;
    value += (b & 0x7f) * mul;
    if ((b & 0x80) === 0) return [value, i + 1];
    mul *= 0x80;
  }
  return 'bad';
}

/**
 * Installs the fast path on an mqtt-packet parser (aedes' `client._parser`, before it has read anything).
 * Packets are emitted in wire order, synchronously inside `parse`, as mqtt-packet does.
 */
export function parseCommonPacketsFast(parser: EventEmitter): void {
  const p = parser as ParserInternals;
  const original = p.parse;
  const PacketClass = p.packet.constructor as new () => Packet;
  let held: Buffer | undefined;

  /** Decodes the whole PUBLISH at [start, end) (its variable header at `body`); undefined: not plain. */
  const decode = (data: Buffer, start: number, body: number, end: number, version: number) => {
    const b0 = data[start]!;
    const qos = (b0 >> 1) & 3;
    if (qos === 3) return undefined; // mqtt-packet's error [MQTT-3.3.1-4]
    let at = body;
    if (at + 2 > end) return undefined;
    const topicEnd = at + 2 + data.readUInt16BE(at);
    if (topicEnd > end) return undefined; // mqtt-packet: 'Cannot parse topic'
    at = topicEnd;
    let messageId: number | undefined;
    if (qos > 0) {
      if (at + 2 > end) return undefined; // mqtt-packet reads past the packet here: keep its behaviour
      messageId = data.readUInt16BE(at);
      at += 2;
    }
    if (version === 5) {
      // Property Length 0 only (MQTT 5 §3.3.2.3.1); properties are mqtt-packet's to parse.
      if (at >= end || data[at] !== 0) return undefined;
      at += 1;
    }
    const packet = new PacketClass() as PublishFields;
    packet.cmd = 'publish';
    packet.retain = (b0 & 1) !== 0;
    packet.qos = qos;
    packet.dup = (b0 & 8) !== 0;
    packet.length = end - body;
    packet.topic = data.toString('utf8', body + 2, topicEnd);
    if (messageId !== undefined) packet.messageId = messageId;
    packet.payload = data.subarray(at, end);
    return packet as Packet;
  };

  /**
   * A PUBACK, PUBREC, PUBREL or PUBCOMP of MQTT 3.1 / 3.1.1 (§3.4 to §3.7: Remaining Length 2, the packet
   * identifier); undefined for MQTT 5 (reason codes) or reserved flags that are not the required ones.
   */
  const decodeAck = (data: Buffer, start: number, body: number, end: number, version: number) => {
    const b0 = data[start]!;
    const type = b0 >> 4;
    if (version === 5 || end - body !== 2 || (b0 & 0x0f) !== (type === PUBREL_TYPE ? 2 : 0)) return undefined;
    const packet = new PacketClass() as PublishFields;
    packet.cmd = ACK_COMMANDS[type - PUBACK_TYPE]!;
    packet.retain = false;
    packet.qos = type === PUBREL_TYPE ? 1 : 0;
    packet.dup = false;
    packet.length = 2;
    packet.messageId = data.readUInt16BE(body);
    return packet as Packet;
  };

  const versionOf = () => {
    const v = p.settings.protocolVersion;
    return v === 3 || v === 4 || v === 5 ? v : undefined;
  };

  /** One read's bytes, in order after what is held; returns what mqtt-packet's parse returns. */
  const run = (buf: Buffer): number => {
    let data = buf;
    if (held) {
      data = Buffer.concat([held, buf]);
      held = undefined;
    }
    let at = 0;
    const rest = () => (at === 0 ? data : data.subarray(at));
    while (at < data.length) {
      const version = versionOf();
      // before the CONNECT (it sets the version) and after an error: all of it is mqtt-packet's
      if (version === undefined || p.error !== null) return original.call(p, rest());
      if (p._stateCounter !== 0 || p._list.length !== 0) {
        // mqtt-packet holds the start of a packet cut by the last read: it gets the rest of that packet alone
        // (known once it has the packet's length), and is idle again after it
        const need = p._stateCounter === PAYLOAD_STATE ? p.packet.length - p._list.length : -1;
        if (need <= 0 || need >= data.length - at) return original.call(p, rest());
        original.call(p, data.subarray(at, at + need));
        if (p.error) return p._list.length; // as mqtt-packet: the rest of the read is not parsed
        at += need;
        continue;
      }
      const length = remainingLength(data, at + 1);
      if (length === 'bad') return original.call(p, rest());
      if (length === 'short') {
        held = Buffer.from(data.subarray(at)); // a fixed header cut short: at most 4 bytes, kept for the next read
        return held.length;
      }
      const body = at + 1 + length[1];
      const end = body + length[0];
      if (end > data.length) return original.call(p, rest()); // cut by the read's end: see above
      const type = data[at]! >> 4;
      const packet =
        type === PUBLISH_TYPE
          ? decode(data, at, body, end, version)
          : type >= PUBACK_TYPE && type <= PUBCOMP_TYPE
            ? decodeAck(data, at, body, end, version)
            : undefined;
      if (packet) p.emit('packet', packet);
      else {
        // one whole packet: mqtt-packet parses it, emits it (or its error) and is idle again
        original.call(p, data.subarray(at, end));
        if (p.error) return p._list.length;
      }
      at = end;
    }
    return 0;
  };

  // A 'packet' listener may call parse again (aedes reads on when a handler completes synchronously, as a
  // QoS 0 PUBLISH nobody subscribes to does): those bytes come after the ones being parsed, as in bl.
  let busy = false;
  const queued: Buffer[] = [];
  p.parse = function fastParse(buf: Buffer): number {
    if (busy) {
      queued.push(buf);
      return 0;
    }
    busy = true;
    try {
      let r = run(buf);
      while (queued.length > 0) {
        const next = queued.length === 1 ? queued[0]! : Buffer.concat(queued);
        queued.length = 0;
        r = run(next);
      }
      return r;
    } finally {
      busy = false;
    }
  };
}

/** The fast path on an aedes client's parser: right after broker.handle() made it, before it reads. */
export function parseClientPacketsFast(client: Client): void {
  parseCommonPacketsFast((client as Client & { _parser: EventEmitter })._parser);
}
