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

/** Encodes `packet` whole, then writes it; an invalid packet destroys the stream as mqtt-packet would. */
function writeWhole(write: WriteToStream, packet: Packet, stream: Stream, opts: Options): boolean {
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
