import { EventEmitter } from 'node:events';
import mqttPacket, { type Packet } from 'mqtt-packet';

/**
 * The one place where every packet aedes sends is seen before it is encoded: aedes writes each packet with
 * `mqttPacket.writeToStream(packet, client.conn, opts)`, looking the function up on the mqtt-packet module
 * object at every call. Wrapping that function once lets a connection that registered an interceptor hold
 * back or rewrite its outgoing packets (MQTT 5 Receive Maximum, outbound topic aliases, CONNACK
 * capabilities: see outbound.ts), which aedes 2.0.0-beta.1 has no hook for.
 *
 *   aedes write() ──▶ writeToStream(packet, conn) ──conn has an interceptor?──yes──▶ interceptor(packet, send)
 *                                                        │ no                          │
 *                                                        ▼                             ▼
 *                                                  encoded as is              send(p) encodes p on conn
 *
 * Streams without an interceptor (every other mqtt-packet user in the process, MQTT 3.1.1 connections that
 * need none) cost one property read. node_modules is untouched.
 *
 * The same place encodes a broker connection's packets whole (`writeWholePackets`): mqtt-packet writes a
 * PUBLISH as four or five chunks (header, length, topic length, topic as a string, payload) and corks the
 * stream with a process.nextTick per packet; a profile of a QoS 0 flood showed that per-chunk stream
 * machinery (Writable.write, the string's conversion, writev's walk over every chunk) as the broker's largest
 * cost after aedes itself. Encoding into a collector first gives the socket one buffer per packet.
 */

/** Decides what to do with one outgoing packet: `send` encodes a packet on the connection now. */
export type Interceptor = (packet: Packet, send: (p: Packet) => boolean) => boolean;

const INTERCEPTOR = Symbol('fieldlab.mqtt-broker.interceptor');
const WHOLE = Symbol('fieldlab.mqtt-broker.whole-packets');

type Intercepted = { [INTERCEPTOR]?: Interceptor; [WHOLE]?: true };
type WriteToStream = typeof mqttPacket.writeToStream;
type Options = Parameters<WriteToStream>[2];
/** The stream mqtt-packet writes to; a socket also has `destroy`, which the encoder calls on an invalid packet. */
type Stream = NodeJS.WritableStream & { destroy?(err?: Error): void };

/**
 * What mqtt-packet's encoder writes one packet into: its chunks, in order, or the error it destroyed the
 * stream with (an invalid packet). It has no `cork`, so the encoder schedules no uncork.
 */
class PacketChunks extends EventEmitter implements NodeJS.WritableStream {
  writable = true;
  private readonly chunks: Array<Uint8Array | string> = [];
  private bytes = 0;
  error: Error | undefined;

  write(chunk: Uint8Array | string): boolean {
    this.chunks.push(chunk);
    this.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    return true;
  }

  end(): this {
    return this;
  }

  destroy(err?: Error): void {
    this.error ??= err ?? new Error('mqtt-packet destroyed the stream');
  }

  /** Empties the collector for the next packet. */
  reset(): void {
    this.chunks.length = 0;
    this.bytes = 0;
    this.error = undefined;
  }

  /** The packet as one buffer. */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.bytes);
    let at = 0;
    for (const c of this.chunks) {
      if (typeof c === 'string') at += out.write(c, at);
      else {
        out.set(c, at);
        at += c.length;
      }
    }
    this.reset();
    return out;
  }
}

// Encoding is synchronous: one collector serves every packet of the thread.
const collector = new PacketChunks();

/** mqtt-packet's VARBYTEINT_MAX: the largest Remaining Length (MQTT 3.1.1 §2.2.3). */
const MAX_REMAINING_LENGTH = 268_435_455;

/**
 * A PUBLISH as mqtt-packet 9 encodes it for MQTT 3.1 and 3.1.1 (§3.3: fixed header, Remaining Length, topic
 * as a UTF-8 string, packet identifier at QoS 1 and 2, payload), in one buffer; undefined for anything
 * mqtt-packet must see (MQTT 5 properties, a string payload or Buffer topic, an invalid field it rejects).
 * The broker's most frequent packet by far: this skips the encoder's chunks and its `debug()` calls.
 */
export function encodePlainPublish(packet: Packet, protocolVersion: number | undefined): Buffer | undefined {
  if (packet.cmd !== 'publish' || protocolVersion === 5) return undefined;
  const { topic, payload } = packet;
  const qos = packet.qos || 0;
  const id = packet.messageId;
  if (typeof topic !== 'string' || !Buffer.isBuffer(payload)) return undefined;
  if (qos !== 0 && qos !== 1 && qos !== 2) return undefined;
  if (qos > 0 && !(typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0xffff))
    return undefined;
  const topicBytes = Buffer.byteLength(topic);
  const length = 2 + topicBytes + (qos > 0 ? 2 : 0) + payload.length;
  if (length > MAX_REMAINING_LENGTH) return undefined;
  const lengthBytes = length < 0x80 ? 1 : length < 0x4000 ? 2 : length < 0x200000 ? 3 : 4;
  const out = Buffer.allocUnsafe(1 + lengthBytes + length);
  out[0] = 0x30 | (packet.dup ? 0x08 : 0) | (qos << 1) | (packet.retain ? 0x01 : 0);
  let at = 1;
  let rest = length;
  do {
    const digit = rest % 0x80;
    rest = Math.floor(rest / 0x80);
    out[at++] = rest > 0 ? digit | 0x80 : digit;
  } while (rest > 0);
  out.writeUInt16BE(topicBytes, at);
  at += 2;
  at += out.write(topic, at);
  if (qos > 0) {
    out.writeUInt16BE(id as number, at);
    at += 2;
  }
  out.set(payload, at);
  return out;
}

/** First byte of PUBACK, PUBREC, PUBREL (reserved flags 0010, MQTT 3.1.1 §3.6.1) and PUBCOMP. */
const ACK_HEADERS: Record<string, number> = { puback: 0x40, pubrec: 0x50, pubrel: 0x62, pubcomp: 0x70 };

/**
 * A PUBACK, PUBREC, PUBREL or PUBCOMP as mqtt-packet 9 encodes it for MQTT 3.1 and 3.1.1 (§3.4 to §3.7: four
 * bytes, the packet identifier last); undefined for MQTT 5 (reason codes, properties) or an identifier
 * mqtt-packet would reject.
 */
export function encodePlainAck(packet: Packet, protocolVersion: number | undefined): Buffer | undefined {
  if (protocolVersion === 5) return undefined;
  const header = ACK_HEADERS[packet.cmd];
  if (header === undefined || !('messageId' in packet)) return undefined;
  const id = packet.messageId;
  if (!(typeof id === 'number' && Number.isInteger(id) && id >= 0 && id <= 0xffff)) return undefined;
  // mqtt-packet 9 throws on a PUBREL with dup set (its ACKS table has no entry): left to it, as before
  if (packet.cmd === 'pubrel' && (packet as { dup?: boolean }).dup) return undefined;
  return Buffer.from([header, 2, id >> 8, id & 0xff]);
}

/** Encodes `packet` whole, then writes it; an invalid packet destroys the stream as mqtt-packet would. */
function writeWhole(write: WriteToStream, packet: Packet, stream: Stream, opts: Options): boolean {
  const version = (opts as { protocolVersion?: number } | undefined)?.protocolVersion;
  const plain = encodePlainPublish(packet, version) ?? encodePlainAck(packet, version);
  if (plain) return stream.write(plain);
  collector.reset();
  write(packet, collector, opts);
  const err = collector.error;
  if (err) {
    collector.reset();
    stream.destroy?.(err);
    return false;
  }
  return stream.write(collector.take());
}

let original: WriteToStream | undefined;

function install(): WriteToStream {
  if (original) return original;
  const write = mqttPacket.writeToStream;
  const wrapped = function interceptedWriteToStream(packet, stream, opts) {
    const marks = stream as Intercepted;
    const intercept = marks[INTERCEPTOR];
    if (marks[WHOLE]) {
      if (!intercept) return writeWhole(write, packet, stream, opts);
      return intercept(packet, (p) => writeWhole(write, p, stream, opts));
    }
    if (!intercept) return write(packet, stream, opts);
    return intercept(packet, (p) => write(p, stream, opts));
  } as WriteToStream;
  // MQTT.js sets writeToStream.cacheNumbers on the shared module: keep it reaching mqtt-packet's own.
  Object.defineProperty(wrapped, 'cacheNumbers', {
    get: () => write.cacheNumbers,
    set: (v: boolean) => {
      write.cacheNumbers = v;
    },
  });
  mqttPacket.writeToStream = wrapped;
  original = write;
  return write;
}

/** Routes every packet aedes writes on `stream` through `interceptor` (undefined removes it). */
export function interceptWrites(stream: object, interceptor: Interceptor | undefined): void {
  install();
  if (interceptor) (stream as Intercepted)[INTERCEPTOR] = interceptor;
  else delete (stream as Intercepted)[INTERCEPTOR];
}

/** Writes every packet aedes sends on `stream` as one buffer (see above). */
export function writeWholePackets(stream: object): void {
  install();
  (stream as Intercepted)[WHOLE] = true;
}
