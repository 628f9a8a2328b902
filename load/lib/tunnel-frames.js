/**
 * AWS IoT Secure Tunneling frames for k6 (goja runtime: plain ES2015+, no npm imports, no TextEncoder).
 *
 * ```
 * | 2-byte big-endian length | protobuf Message | 2-byte length | Message | ...
 * ```
 * Message (resources/Message.proto, package com.amazonaws.iot.securedtunneling): 1 type (enum, varint),
 * 2 streamId (int32), 3 ignorable (bool), 4 payload (bytes), 5 serviceId (string),
 * 6 availableServiceIds (repeated string), 7 connectionId (uint32, V3). A hand-rolled writer/reader: k6
 * cannot load protobufjs. Encodings are byte-identical to simulators/tunnel-service/frame.ts (protobufjs):
 * fields in number order, a field written when it is given (even a zero value), repeated strings one tag
 * each (test/load/tunnel-frames.test.ts checks both ways).
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
};

/** Protocol guide: a message payload is at most 63 KiB. */
export const MAX_PAYLOAD_BYTES = 64512;
/** The 2-byte prefix caps a message body at 65535 bytes. */
export const MAX_MESSAGE_BYTES = 65535;

/** The subprotocol the scripts offer (V2 protocol guide). */
export const SUBPROTOCOL = 'aws.iot.securetunneling-2.0';

function frameError(code, message) {
  const err = new Error(message);
  err.code = code;
  return err;
}

/** UTF-8 bytes of a string (surrogate pairs joined; a lone surrogate becomes U+FFFD like TextEncoder). */
export function utf8Encode(s) {
  const out = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      } else c = 0xfffd;
    } else if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

/** A string from UTF-8 bytes `buf[start, end)` (well-formed input; the service sends ASCII ids). */
export function utf8Decode(buf, start, end) {
  let s = '';
  let i = start;
  while (i < end) {
    const b = buf[i++];
    let c;
    if (b < 0x80) c = b;
    else if (b < 0xe0) c = ((b & 31) << 6) | (buf[i++] & 63);
    else if (b < 0xf0) c = ((b & 15) << 12) | ((buf[i++] & 63) << 6) | (buf[i++] & 63);
    else c = ((b & 7) << 18) | ((buf[i++] & 63) << 12) | ((buf[i++] & 63) << 6) | (buf[i++] & 63);
    if (c >= 0x10000) {
      c -= 0x10000;
      s += String.fromCharCode(0xd800 + (c >> 10), 0xdc00 + (c & 1023));
    } else s += String.fromCharCode(c);
  }
  return s;
}

/** Bytes a varint of the unsigned 32-bit `v` takes. */
function varintSize(v) {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Protobuf int32/enum: negatives are sign-extended to 64 bits (10 bytes). */
function intSize(v) {
  return v < 0 ? 10 : varintSize(v);
}

function writeVarint(out, pos, v) {
  while (v >= 128) {
    out[pos++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  out[pos++] = v;
  return pos;
}

function writeInt(out, pos, v) {
  if (v >= 0) return writeVarint(out, pos, v);
  // Two's complement in 64 bits: low 32 bits of v, high 32 bits all ones.
  let lo = v >>> 0;
  for (let i = 0; i < 4; i++) {
    out[pos++] = (lo & 127) | 128;
    lo >>>= 7;
  }
  // Byte 5 carries lo's last 4 bits and 3 bits of the high word; then the rest of the high word.
  out[pos++] = lo | 0xf0;
  for (let i = 0; i < 4; i++) out[pos++] = 0xff;
  out[pos++] = 0x01;
  return pos;
}

const given = (v) => v !== undefined && v !== null;

/**
 * Encodes one message with its 2-byte length prefix into a fresh Uint8Array. `msg`: `{type, streamId?,
 * ignorable?, payload? (Uint8Array), serviceId?, availableServiceIds?, connectionId?}`. Throws an Error
 * with code E_FRAME_OVERSIZED past the protocol's limits.
 */
export function encodeMessage(msg) {
  const payload = msg.payload;
  if (given(payload) && payload.length > MAX_PAYLOAD_BYTES) {
    throw frameError('E_FRAME_OVERSIZED', `payload of ${payload.length} bytes > ${MAX_PAYLOAD_BYTES}`);
  }
  const serviceId = given(msg.serviceId) ? utf8Encode(msg.serviceId) : undefined;
  const ids = given(msg.availableServiceIds) ? msg.availableServiceIds.map(utf8Encode) : [];
  let size = 0;
  if (given(msg.type)) size += 1 + intSize(msg.type);
  if (given(msg.streamId)) size += 1 + intSize(msg.streamId | 0);
  if (given(msg.ignorable)) size += 2;
  if (given(payload)) size += 1 + varintSize(payload.length) + payload.length;
  if (serviceId) size += 1 + varintSize(serviceId.length) + serviceId.length;
  for (const id of ids) size += 1 + varintSize(id.length) + id.length;
  if (given(msg.connectionId)) size += 1 + varintSize(msg.connectionId >>> 0);
  if (size > MAX_MESSAGE_BYTES) {
    throw frameError('E_FRAME_OVERSIZED', `message of ${size} bytes > ${MAX_MESSAGE_BYTES}`);
  }
  const out = new Uint8Array(2 + size);
  out[0] = size >> 8;
  out[1] = size & 255;
  let pos = 2;
  // Tag = field number << 3 | wire type (0 varint, 2 length-delimited).
  if (given(msg.type)) {
    out[pos++] = 0x08;
    pos = writeInt(out, pos, msg.type);
  }
  if (given(msg.streamId)) {
    out[pos++] = 0x10;
    pos = writeInt(out, pos, msg.streamId | 0);
  }
  if (given(msg.ignorable)) {
    out[pos++] = 0x18;
    out[pos++] = msg.ignorable ? 1 : 0;
  }
  if (given(payload)) {
    out[pos++] = 0x22;
    pos = writeVarint(out, pos, payload.length);
    out.set(payload, pos);
    pos += payload.length;
  }
  if (serviceId) {
    out[pos++] = 0x2a;
    pos = writeVarint(out, pos, serviceId.length);
    out.set(serviceId, pos);
    pos += serviceId.length;
  }
  for (const id of ids) {
    out[pos++] = 0x32;
    pos = writeVarint(out, pos, id.length);
    out.set(id, pos);
    pos += id.length;
  }
  if (given(msg.connectionId)) {
    out[pos++] = 0x38;
    pos = writeVarint(out, pos, msg.connectionId >>> 0);
  }
  return out;
}

// Field number → wire type (0 varint, 2 length-delimited); undefined = unknown field.
const WIRE_TYPES = [undefined, 0, 0, 0, 2, 2, 2, 0];

/**
 * Decodes one protobuf body `buf[start, end)` (no prefix) into a message with proto3 defaults filled in;
 * `payload` is a view into `buf`. Throws E_FRAME_UNKNOWN_FIELD / E_FRAME_MALFORMED / E_FRAME_OVERSIZED like
 * the service's reader.
 */
export function decodeMessage(buf, start, end) {
  if (start === undefined) start = 0;
  if (end === undefined) end = buf.length;
  const m = {
    type: 0,
    streamId: 0,
    ignorable: false,
    payload: buf.subarray(start, start),
    serviceId: '',
    availableServiceIds: [],
    connectionId: 0,
  };
  let pos = start;
  const varint = () => {
    // Exact up to 2^49, then reduced to the low 32 bits (the fields are int32/uint32/enum/bool).
    let value = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) throw frameError('E_FRAME_MALFORMED', 'varint cut short');
      const b = buf[pos++];
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
      throw frameError('E_FRAME_UNKNOWN_FIELD', `unknown field number ${field} (wire type ${wire})`);
    }
    if (wire !== expected) {
      throw frameError('E_FRAME_MALFORMED', `field ${field} has wire type ${wire}, expected ${expected}`);
    }
    if (wire === 0) {
      const v = varint();
      if (field === 1) m.type = v | 0;
      else if (field === 2) m.streamId = v | 0;
      else if (field === 3) m.ignorable = v !== 0;
      else m.connectionId = v >>> 0;
      continue;
    }
    const len = varint();
    if (len > end - pos) throw frameError('E_FRAME_MALFORMED', `field ${field} runs past the message`);
    if (field === 4) {
      if (len > MAX_PAYLOAD_BYTES) {
        throw frameError('E_FRAME_OVERSIZED', `payload of ${len} bytes > ${MAX_PAYLOAD_BYTES}`);
      }
      m.payload = buf.subarray(pos, pos + len);
    } else if (field === 5) m.serviceId = utf8Decode(buf, pos, pos + len);
    else m.availableServiceIds.push(utf8Decode(buf, pos, pos + len));
    pos += len;
  }
  return m;
}

/**
 * A stream decoder: `push(bytes)` (Uint8Array or ArrayBuffer, e.g. a WebSocket message) returns the
 * messages it completes; a partial message waits for the next push (messages are independent of WebSocket
 * frames). After a throw the decoder is unusable: close the socket.
 */
export class FrameDecoder {
  constructor() {
    this.pending = undefined;
  }

  push(chunk) {
    let buf = chunk instanceof Uint8Array ? chunk : new Uint8Array(chunk);
    if (this.pending) {
      const joined = new Uint8Array(this.pending.length + buf.length);
      joined.set(this.pending, 0);
      joined.set(buf, this.pending.length);
      buf = joined;
      this.pending = undefined;
    }
    const out = [];
    let pos = 0;
    while (buf.length - pos >= 2) {
      const len = (buf[pos] << 8) | buf[pos + 1];
      if (buf.length - pos - 2 < len) break;
      out.push(decodeMessage(buf, pos + 2, pos + 2 + len));
      pos += 2 + len;
    }
    if (pos < buf.length) this.pending = buf.slice(pos);
    return out;
  }

  /** Bytes held for an incomplete message. */
  get buffered() {
    return this.pending ? this.pending.length : 0;
  }

  /** Call at end of stream: throws E_FRAME_TRUNCATED when a message was cut short. */
  end() {
    if (this.pending) {
      const n = this.pending.length;
      this.pending = undefined;
      throw frameError('E_FRAME_TRUNCATED', `stream ended inside a message (${n} bytes buffered)`);
    }
  }
}

/** The name of a message type number, e.g. `STREAM_START`, or `TYPE_9`. */
export function messageTypeName(type) {
  for (const name of Object.keys(MessageType)) if (MessageType[name] === type) return name;
  return `TYPE_${type}`;
}
