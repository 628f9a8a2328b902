import type { Duplex } from 'node:stream';
import { type IConnectPacket, parser as mqttParser } from 'mqtt-packet';
import { topicNameProblem } from './topics.js';

/**
 * Reads a connection's first packet before aedes does and answers the CONNECT checks aedes gets wrong:
 *
 *   bytes ──▶ screen: CONNECT ok? ──yes──▶ bytes put back ──▶ aedes
 *                         │ no
 *                         ├──▶ CONNACK 0x01 / 0x02, then close
 *                         └──▶ close (no CONNACK code fits)
 *
 * aedes cannot answer an unknown Protocol Level: its parser (mqtt-packet) fails on it and aedes closes
 * without a CONNACK. It also accepts an empty client id with clean session 0, and any will topic.
 * Anything else (a first packet that is not a CONNECT, a malformed CONNECT) goes to aedes unchanged.
 */

/** What the screen did with a connection it did not hand on. */
export type ScreenVerdict =
  /** The CONNECT got a CONNACK with this return code, then the connection was closed. */
  | { kind: 'refused'; returnCode: 1 | 2 | 3; clientId: string; reason: string; level?: number }
  /** The connection was closed without a CONNACK: a protocol violation [MQTT-4.8.0-1]. */
  | { kind: 'violation'; clientId: string; reason: string };

type Decision = { need: number } | { pass: true } | ScreenVerdict;

export interface ScreenOptions {
  /** How long the first packet may take (aedes' connectTimeout); the connection is closed after it. */
  timeoutMs: number;
  /** The CONNECT passed: its bytes are back in the stream, hand the stream to aedes now. */
  pass(): void;
  /** A well-formed CONNECT's last check: false refuses it with CONNACK 0x03 (a connect throttle). */
  admit?(): boolean;
  /** The screen answered the connection itself. */
  stopped(verdict: ScreenVerdict): void;
}

/** aedes' default connectTimeout. */
export const CONNECT_TIMEOUT_MS = 30_000;

/**
 * A 3.1.1 CONNECT holds at most five 2-byte-length fields (client id, will topic, will message, user
 * name, password) after a 12-byte variable header: anything longer is malformed, and the screen never
 * buffers more than this.
 */
const MAX_CONNECT_BODY = 12 + 5 * (2 + 0xffff);

/** After a refusing CONNACK, how long the client gets to close before the broker does. */
const LINGER_MS = 5_000;

/**
 * MQTT 5 §3.1.2.1 Maximum Packet Size / §3.1.2.11: a v5 CONNECT adds properties (user properties,
 * authentication data) and will properties to the five fields, so it has no tight bound; the screen reads
 * at most this much of one before aedes does (its own `maximumPacketSize` applies after).
 */
const MAX_V5_CONNECT_BODY = 1024 * 1024;

/** MQTT 3.1.1 §3.2 CONNACK: no properties, a return code. */
const connack = (returnCode: number) => Buffer.from([0x20, 0x02, 0x00, returnCode]);
/**
 * MQTT 5 §3.2: flags, reason code, Property Length 0. The screen's refusals of a v5 CONNECT in v5 reason
 * codes (§3.2.2.2): 2 → 0x85 Client Identifier not valid; 3, which the screen gives only for its connect
 * throttle, → 0x9F Connection rate exceeded.
 */
const connackV5 = (reasonCode: number) => Buffer.from([0x20, 0x03, 0x00, reasonCode, 0x00]);
const V5_REASON: Record<number, number> = { 2: 0x85, 3: 0x9f };

export function screenConnect(stream: Duplex, opts: ScreenOptions): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let need = 1;
  const timer = setTimeout(() => stream.destroy(), opts.timeoutMs);
  const ignoreError = () => undefined; // the 'close' that follows ends the screen
  const onEnd = () => stream.destroy(); // the client gave up before its CONNECT was complete
  const detach = () => {
    clearTimeout(timer);
    stream.removeListener('readable', onReadable);
    stream.removeListener('end', onEnd);
  };
  const onReadable = () => {
    for (let c = stream.read() as Buffer | null; c !== null; c = stream.read() as Buffer | null) {
      chunks.push(c);
      size += c.length;
    }
    if (size < need) return;
    const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    chunks.splice(0, chunks.length, bytes);
    let d = decide(bytes);
    if ('need' in d) {
      need = d.need;
      return;
    }
    detach();
    // MQTT 3.1.1 §3.2.2.3: 0x03 "Server unavailable": the network connection is made but the service is
    // not available (a cloud throttling connects answers so). Only a CONNECT is counted.
    const throttled = 'pass' in d && bytes[0] === 0x10 && opts.admit !== undefined && !opts.admit();
    if (throttled) {
      const packet = parseConnect(bytes);
      d = {
        kind: 'refused',
        returnCode: 3,
        clientId: packet?.clientId ?? '',
        reason: 'connect rate exceeded',
      };
      if (packet) d.level = packet.protocolVersion;
    } else if ('pass' in d) {
      stream.removeListener('error', ignoreError);
      stream.unshift(bytes);
      return opts.pass();
    }
    if (d.kind === 'refused') {
      // Read and drop what else the client sends, so that closing sends a FIN (not a RST that could
      // overtake the CONNACK); close after LINGER_MS if the client keeps the connection open.
      stream.on('data', () => undefined);
      // [MQTT-3.2.2-2]-style answer in the client's own version: a v5 client gets a v5 CONNACK
      // (MQTT 5 §4.13.1: a CONNACK with a reason code ≥ 0x80, then close).
      stream.end(d.level === 5 ? connackV5(V5_REASON[d.returnCode] ?? 0x80) : connack(d.returnCode));
      const linger = setTimeout(() => stream.destroy(), LINGER_MS);
      stream.once('close', () => clearTimeout(linger));
    } else {
      stream.destroy();
    }
    opts.stopped(d);
  };
  stream.on('error', ignoreError);
  stream.on('end', onEnd);
  stream.once('close', detach);
  stream.on('readable', onReadable);
}

/** Decides on the bytes of a connection so far: how many are needed, or what to do. */
export function decide(bytes: Buffer): Decision {
  if (bytes[0] !== 0x10) return { pass: true }; // not a CONNECT: aedes closes [MQTT-3.1.0-1]
  // Remaining Length: 1 to 4 bytes (§2.2.3)
  let remaining = 0;
  let at = 1;
  for (let shift = 0; ; shift += 7, at++) {
    if (at > 4) return { pass: true }; // malformed: aedes' parser closes
    if (bytes.length <= at) return { need: at + 1 };
    remaining += (bytes[at]! & 0x7f) * 2 ** shift;
    if ((bytes[at]! & 0x80) === 0) break;
  }
  const body = at + 1;
  if (bytes.length < body + 2) return { need: body + 2 };
  const nameLength = bytes.readUInt16BE(body);
  if (nameLength > 6) return { pass: true }; // neither MQTT nor MQIsdp
  const levelAt = body + 2 + nameLength;
  if (bytes.length <= levelAt) return { need: levelAt + 1 };
  const name = bytes.toString('latin1', body + 2, levelAt);
  // [MQTT-3.1.2-1]: another protocol name: the server MAY close without CONNACK (aedes does)
  if (name !== 'MQTT' && name !== 'MQIsdp') return { pass: true };
  // Bit 7 marks a bridge (mosquitto's try_private); mqtt-packet strips it too.
  const level = bytes[levelAt]! & 0x7f;
  // [MQTT-3.1.2-2]: an unsupported level gets CONNACK 0x01, then the server disconnects. Levels 3, 4 and 5
  // (MQTT 3.1, 3.1.1, 5) go on to aedes. For any other level the 3.1.1 form `20 02 00 01` is the answer
  // (as mosquitto gives): MQTT 5 §3.1.2.2's reason 0x84 lives in a v5 CONNACK, which a client of an
  // unknown version cannot be assumed to read; libmosquitto, MQTT.js and paho read 0x01 as "unacceptable
  // protocol version".
  if (level !== 3 && level !== 4 && level !== 5) {
    return { kind: 'refused', returnCode: 1, clientId: '', reason: `unsupported protocol level ${level}` };
  }
  if (remaining > (level === 5 ? MAX_V5_CONNECT_BODY : MAX_CONNECT_BODY)) {
    return {
      kind: 'violation',
      clientId: '',
      reason:
        level === 5
          ? `CONNECT of ${remaining} bytes is longer than this broker reads (${MAX_V5_CONNECT_BODY})`
          : `CONNECT of ${remaining} bytes is longer than any well-formed MQTT 3.1.1 CONNECT`,
    };
  }
  if (bytes.length < body + remaining) return { need: body + remaining };
  const packet = parseConnect(bytes.subarray(0, body + remaining));
  if (!packet) return { pass: true }; // malformed: aedes' parser closes
  const clientId = packet.clientId;
  // MQTT 3.1 §3.1: the client identifier is 1 to 23 characters, else CONNACK 2 (aedes checks the 23).
  if (level === 3 && clientId === '') {
    return { kind: 'refused', returnCode: 2, clientId, reason: 'an MQTT 3.1 client id may not be empty' };
  }
  // [MQTT-3.1.3-8]: a zero-byte client id with clean session 0 gets CONNACK 0x02, then the server closes.
  // MQTT 5 drops the rule: the server assigns an identifier whatever Clean Start says [MQTT-3.1.3-6].
  if (level !== 5 && clientId === '' && !packet.clean) {
    return {
      kind: 'refused',
      returnCode: 2,
      clientId,
      reason: 'an empty client id needs clean session 1 (the server has no session to keep)',
    };
  }
  // The will topic is a topic name: no wildcards [MQTT-4.7.1-1], not empty [MQTT-4.7.3-1]. 3.1.1 has no
  // CONNACK code for it: a protocol violation closes the connection [MQTT-4.8.0-1]; MQTT 5 lets the server
  // close without a CONNACK too (§4.13.1: it MAY send one with a reason code first).
  const willProblem = packet.will ? topicNameProblem(packet.will.topic) : undefined;
  if (willProblem) {
    return {
      kind: 'violation',
      clientId,
      reason: `the will topic ${JSON.stringify(packet.will!.topic)} ${willProblem}`,
    };
  }
  return { pass: true };
}

function parseConnect(bytes: Buffer): IConnectPacket | undefined {
  const parser = mqttParser();
  let packet: IConnectPacket | undefined;
  let failed = false;
  parser.on('packet', (p) => {
    if (p.cmd === 'connect') packet = p;
  });
  parser.on('error', () => {
    failed = true;
  });
  parser.parse(bytes);
  return failed ? undefined : packet;
}
