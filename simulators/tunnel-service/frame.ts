import pb from 'protobufjs/light.js';
import { FieldlabError } from '../common/errors.js';

/**
 * The AWS IoT Secure Tunneling frame codec (V2/V3 WebSocket protocol guides, resources/Message.proto).
 *
 * ```
 * | 2-byte big-endian length | protobuf Message (length bytes) | 2-byte length | Message | ...
 * ```
 * Messages are independent of WebSocket frames: one frame may carry several messages or part of one.
 * `encodeMessage`/`FrameDecoder` are the full codec (protobufjs); `scanMessage` is the cheap header read
 * the relay uses on the hot path (it never copies the payload) and the unknown-field check both share.
 */

/** Message.Type (Message.proto). */
export const MessageType = {
  UNKNOWN: 0,
  DATA: 1,
  STREAM_START: 2,
  STREAM_RESET: 3,
  SESSION_RESET: 4,
  SERVICE_IDS: 5,
  CONNECTION_START: 6,
  CONNECTION_RESET: 7,
} as const;
export type MessageTypeName = keyof typeof MessageType;

/** Protocol guide: a message payload is at most 63 KiB. */
export const MAX_PAYLOAD_BYTES = 64_512;
/** Protocol guide: a whole message (the protobuf bytes) is at most 64 KiB; the prefix can say 65535. */
export const MAX_MESSAGE_BYTES = 65_535;
/** Protocol guide: a WebSocket frame payload is at most 131076 bytes (two messages with prefixes). */
export const MAX_WS_FRAME_BYTES = 131_076;

/** One tunnel message, as the application sees it (proto3 defaults filled in). */
export interface TunnelMessage {
  type: number;
  streamId: number;
  ignorable: boolean;
  payload: Buffer;
  serviceId: string;
  availableServiceIds: string[];
  connectionId: number;
}

/** Alias: the protocol guides call it `Message`. */
export type Message = TunnelMessage;

/** What `encodeMessage` accepts: every field but `type` may be left out. */
export type TunnelMessageInput = Partial<Omit<TunnelMessage, 'payload'>> & {
  type: number;
  payload?: Uint8Array;
};

const root = pb.Root.fromJSON({
  nested: {
    com: {
      nested: {
        amazonaws: {
          nested: {
            iot: {
              nested: {
                securedtunneling: {
                  nested: {
                    Message: {
                      fields: {
                        type: { type: 'Type', id: 1 },
                        streamId: { type: 'int32', id: 2 },
                        ignorable: { type: 'bool', id: 3 },
                        payload: { type: 'bytes', id: 4 },
                        serviceId: { type: 'string', id: 5 },
                        availableServiceIds: { rule: 'repeated', type: 'string', id: 6 },
                        connectionId: { type: 'uint32', id: 7 },
                      },
                      nested: { Type: { values: MessageType } },
                    },
                  },
                },
              },
            },
          },
        },
      },
    },
  },
});
const MessageProto = root.lookupType('com.amazonaws.iot.securedtunneling.Message');

function frameError(code: string, message: string): FieldlabError {
  return new FieldlabError(code, message, {
    hint: 'each message is a 2-byte big-endian length then a Message.proto message (V2/V3 protocol guide)',
  });
}

/** Encodes one message with its 2-byte length prefix. Throws E_FRAME_OVERSIZED past the guide's limits. */
export function encodeMessage(msg: TunnelMessageInput): Buffer {
  if (msg.payload && msg.payload.length > MAX_PAYLOAD_BYTES) {
    throw frameError('E_FRAME_OVERSIZED', `payload of ${msg.payload.length} bytes > ${MAX_PAYLOAD_BYTES}`);
  }
  const body = MessageProto.encode(MessageProto.fromObject(msg)).finish();
  if (body.length > MAX_MESSAGE_BYTES) {
    throw frameError('E_FRAME_OVERSIZED', `message of ${body.length} bytes > ${MAX_MESSAGE_BYTES}`);
  }
  const out = Buffer.allocUnsafe(2 + body.length);
  out.writeUInt16BE(body.length, 0);
  out.set(body, 2);
  return out;
}

/** The header of a message read without decoding its payload (see `scanMessage`). */
export interface MessageHeader {
  type: number;
  streamId: number;
  ignorable: boolean;
  serviceId: string;
  connectionId: number;
  /** Offset and length of the payload within the scanned buffer (length 0 when absent). */
  payloadOffset: number;
  payloadLength: number;
  availableServiceIds: string[];
}

// Field number → expected wire type (0 varint, 2 length-delimited).
const WIRE_TYPES: ReadonlyArray<number | undefined> = [undefined, 0, 0, 0, 2, 2, 2, 0];

/**
 * Reads a message's header fields and checks its structure: unknown field numbers throw
 * E_FRAME_UNKNOWN_FIELD (protobufjs would skip them silently; the service closes on them), wrong wire types
 * or cut varints throw E_FRAME_MALFORMED, a payload over 63 KiB throws E_FRAME_OVERSIZED.
 * `buf[start, end)` is the protobuf body (no length prefix).
 */
export function scanMessage(buf: Buffer, start = 0, end = buf.length): MessageHeader {
  const h: MessageHeader = {
    type: 0,
    streamId: 0,
    ignorable: false,
    serviceId: '',
    connectionId: 0,
    payloadOffset: start,
    payloadLength: 0,
    availableServiceIds: [],
  };
  let pos = start;
  const varint = (): number => {
    // Values are accumulated exactly up to 2^49, then reduced to their low 32 bits (int32/uint32/enum).
    let value = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) throw frameError('E_FRAME_MALFORMED', 'varint cut short');
      const b = buf[pos++] as number;
      if (mul < 2 ** 49) value += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) return value % 2 ** 32;
    }
    throw frameError('E_FRAME_MALFORMED', 'varint longer than 10 bytes');
  };
  while (pos < end) {
    const tag = varint();
    const field = tag >>> 3;
    const wire = tag & 7;
    const expected = field < WIRE_TYPES.length ? WIRE_TYPES[field] : undefined;
    if (expected === undefined) {
      // Still malformed when the wire type itself is impossible (garbage rather than a newer field).
      if (wire !== 0 && wire !== 1 && wire !== 2 && wire !== 5) {
        throw frameError('E_FRAME_MALFORMED', `bad wire type ${wire} for field ${field}`);
      }
      throw frameError('E_FRAME_UNKNOWN_FIELD', `unknown field number ${field} (wire type ${wire})`);
    }
    if (wire !== expected) {
      throw frameError('E_FRAME_MALFORMED', `field ${field} has wire type ${wire}, expected ${expected}`);
    }
    if (wire === 0) {
      const v = varint();
      if (field === 1) h.type = v;
      else if (field === 2) h.streamId = v | 0;
      else if (field === 3) h.ignorable = v !== 0;
      else h.connectionId = v >>> 0;
      continue;
    }
    const len = varint();
    if (len > end - pos) throw frameError('E_FRAME_MALFORMED', `field ${field} runs past the message`);
    if (field === 4) {
      if (len > MAX_PAYLOAD_BYTES) {
        throw frameError('E_FRAME_OVERSIZED', `payload of ${len} bytes > ${MAX_PAYLOAD_BYTES}`);
      }
      h.payloadOffset = pos;
      h.payloadLength = len;
    } else {
      const s = buf.toString('utf8', pos, pos + len);
      if (field === 5) h.serviceId = s;
      else h.availableServiceIds.push(s);
    }
    pos += len;
  }
  return h;
}

/** One message cut from the stream: its original bytes (prefix included) and its scanned header. */
export interface RawFrame {
  /** The prefix and body, a view into the received data (forward it as is). */
  bytes: Buffer;
  header: MessageHeader;
}

/**
 * Cuts a byte stream into messages. `push` returns the messages a chunk completes; a partial message is
 * kept for the next chunk. Throws the E_FRAME_* errors of `scanMessage`; call `end()` at end of stream to
 * get E_FRAME_TRUNCATED for a partial message. After a throw the splitter is unusable (close the stream).
 */
export class FrameSplitter {
  private pending: Buffer | undefined;

  push(chunk: Buffer): RawFrame[] {
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    const out: RawFrame[] = [];
    let pos = 0;
    while (buf.length - pos >= 2) {
      const len = buf.readUInt16BE(pos);
      if (buf.length - pos - 2 < len) break;
      const header = scanMessage(buf, pos + 2, pos + 2 + len);
      out.push({ bytes: buf.subarray(pos, pos + 2 + len), header });
      pos += 2 + len;
    }
    // Copy the tail: a view would pin the whole chunk until the next push.
    if (pos < buf.length) this.pending = Buffer.from(buf.subarray(pos));
    return out;
  }

  /** Bytes held for an incomplete message. */
  get buffered(): number {
    return this.pending?.length ?? 0;
  }

  /** Call at end of stream: throws E_FRAME_TRUNCATED when a message was cut short. */
  end(): void {
    if (this.pending) {
      const n = this.pending.length;
      this.pending = undefined;
      throw frameError('E_FRAME_TRUNCATED', `stream ended inside a message (${n} bytes buffered)`);
    }
  }
}

/** Decodes one protobuf body (no prefix) into a full message, after the structural checks. */
export function decodeMessage(body: Buffer): TunnelMessage {
  scanMessage(body);
  let decoded: pb.Message;
  try {
    decoded = MessageProto.decode(body);
  } catch (err) {
    throw frameError('E_FRAME_MALFORMED', `not a Message: ${(err as Error).message}`);
  }
  const o = MessageProto.toObject(decoded, { defaults: true, arrays: true, enums: Number }) as {
    type: number;
    streamId: number;
    ignorable: boolean;
    payload: Uint8Array;
    serviceId: string;
    availableServiceIds: string[];
    connectionId: number;
  };
  return {
    type: o.type,
    streamId: o.streamId,
    ignorable: o.ignorable,
    payload: Buffer.from(o.payload.buffer, o.payload.byteOffset, o.payload.length),
    serviceId: o.serviceId,
    availableServiceIds: o.availableServiceIds,
    connectionId: o.connectionId,
  };
}

/**
 * Full decoder for clients and tests: `push(chunk)` returns the messages the chunk completes (split and
 * coalesced WebSocket frames both work); `end()` throws E_FRAME_TRUNCATED for a partial message.
 */
export class FrameDecoder {
  private readonly splitter = new FrameSplitter();

  push(chunk: Buffer): TunnelMessage[] {
    return this.splitter.push(chunk).map((f) => decodeMessage(f.bytes.subarray(2)));
  }

  end(): void {
    this.splitter.end();
  }
}

/** The name of a message type number, e.g. `STREAM_START`, or `TYPE_9` for an unknown one. */
export function messageTypeName(type: number): string {
  for (const [name, n] of Object.entries(MessageType)) if (n === type) return name;
  return `TYPE_${type}`;
}
