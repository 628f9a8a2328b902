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
 */

/** Decides what to do with one outgoing packet: `send` encodes a packet on the connection now. */
export type Interceptor = (packet: Packet, send: (p: Packet) => boolean) => boolean;

const INTERCEPTOR = Symbol('fieldlab.mqtt-broker.interceptor');

type Intercepted = { [INTERCEPTOR]?: Interceptor };
type WriteToStream = typeof mqttPacket.writeToStream;

let original: WriteToStream | undefined;

function install(): WriteToStream {
  if (original) return original;
  const write = mqttPacket.writeToStream;
  const wrapped = function interceptedWriteToStream(packet, stream, opts) {
    const intercept = (stream as Intercepted)[INTERCEPTOR];
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
