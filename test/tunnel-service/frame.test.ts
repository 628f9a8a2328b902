import { describe, expect, it } from 'vitest';
import {
  decodeMessage,
  encodeMessage,
  FrameDecoder,
  FrameSplitter,
  MAX_PAYLOAD_BYTES,
  MessageType,
  scanMessage,
} from '../../simulators/tunnel-service/frame.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

/** A raw prefixed message from protobuf body bytes. */
function prefixed(body: number[]): Buffer {
  const b = Buffer.alloc(2 + body.length);
  b.writeUInt16BE(body.length, 0);
  Buffer.from(body).copy(b, 2);
  return b;
}

describe('tunnel frame codec', () => {
  it('round-trips every message type with all fields', () => {
    for (const type of Object.values(MessageType)) {
      const msg = {
        type,
        streamId: 7,
        ignorable: type === 0,
        payload: Buffer.from(`payload-${type}`),
        serviceId: 'SSH',
        availableServiceIds: type === MessageType.SERVICE_IDS ? ['SSH', 'RDP'] : [],
        connectionId: 3,
      };
      const [out] = new FrameDecoder().push(encodeMessage(msg));
      expect(out).toEqual(msg);
    }
  });

  it('encodes the length prefix big-endian and proto3 defaults as absent', () => {
    const buf = encodeMessage({ type: MessageType.STREAM_START, streamId: 1 });
    expect(buf.readUInt16BE(0)).toBe(buf.length - 2);
    // field 1 varint 2, field 2 varint 1
    expect([...buf.subarray(2)]).toEqual([0x08, 0x02, 0x10, 0x01]);
  });

  it('handles negative int32 stream ids and large uint32 connection ids', () => {
    const [m] = new FrameDecoder().push(
      encodeMessage({ type: MessageType.DATA, streamId: -5, connectionId: 4_000_000_000 }),
    );
    expect(m?.streamId).toBe(-5);
    expect(m?.connectionId).toBe(4_000_000_000);
    const h = scanMessage(encodeMessage({ type: 1, streamId: -5, connectionId: 4_000_000_000 }).subarray(2));
    expect(h.streamId).toBe(-5);
    expect(h.connectionId).toBe(4_000_000_000);
  });

  it('decodes messages split across chunks and several per chunk', () => {
    const a = encodeMessage({ type: MessageType.DATA, streamId: 1, payload: Buffer.alloc(1000, 1) });
    const b = encodeMessage({ type: MessageType.DATA, streamId: 1, payload: Buffer.alloc(10, 2) });
    const c = encodeMessage({ type: MessageType.STREAM_RESET, streamId: 1 });
    const all = Buffer.concat([a, b, c]);
    const dec = new FrameDecoder();
    const got = [];
    // One byte at a time: the prefix itself is split too.
    for (let i = 0; i < all.length; i++) got.push(...dec.push(all.subarray(i, i + 1)));
    expect(got.map((m) => m.type)).toEqual([1, 1, 3]);
    expect(got[0]?.payload.equals(Buffer.alloc(1000, 1))).toBe(true);
    expect(new FrameDecoder().push(all)).toHaveLength(3);
    expect(() => dec.end()).not.toThrow();
  });

  it('keeps the original bytes of each message for forwarding', () => {
    const a = encodeMessage({ type: MessageType.DATA, streamId: 2, payload: Buffer.from('hello') });
    const frames = new FrameSplitter().push(Buffer.concat([a, a]));
    expect(frames).toHaveLength(2);
    expect(frames[1]?.bytes.equals(a)).toBe(true);
    const h = frames[0]?.header;
    expect(h && a.subarray(h.payloadOffset, h.payloadOffset + h.payloadLength).toString()).toBe('hello');
  });

  it('reports a truncated message only at end of stream', () => {
    const a = encodeMessage({ type: MessageType.DATA, streamId: 1, payload: Buffer.alloc(50) });
    const dec = new FrameDecoder();
    expect(dec.push(a.subarray(0, 20))).toEqual([]);
    expect(codeOf(() => dec.end())).toBe('E_FRAME_TRUNCATED');
    const dec2 = new FrameDecoder();
    dec2.push(a.subarray(0, 1)); // half a length prefix
    expect(codeOf(() => dec2.end())).toBe('E_FRAME_TRUNCATED');
  });

  it('rejects oversized payloads when encoding and decoding', () => {
    expect(codeOf(() => encodeMessage({ type: 1, payload: Buffer.alloc(MAX_PAYLOAD_BYTES + 1) }))).toBe(
      'E_FRAME_OVERSIZED',
    );
    expect(() => encodeMessage({ type: 1, payload: Buffer.alloc(MAX_PAYLOAD_BYTES) })).not.toThrow();
    // Hand-built: field 4, length 64513 (varint 0x81 0xf8 0x03), body fits a 2-byte prefix.
    const body = [0x08, 0x01, 0x22, 0x81, 0xf8, 0x03, ...new Array(64_513).fill(0)];
    expect(codeOf(() => new FrameDecoder().push(prefixed(body)))).toBe('E_FRAME_OVERSIZED');
  });

  it('rejects unknown field numbers (protobufjs alone would skip them)', () => {
    // field 1 = 1, then field 9 varint 1
    expect(codeOf(() => new FrameDecoder().push(prefixed([0x08, 0x01, 0x48, 0x01])))).toBe(
      'E_FRAME_UNKNOWN_FIELD',
    );
    expect(codeOf(() => decodeMessage(Buffer.from([0x08, 0x01, 0x48, 0x01])))).toBe('E_FRAME_UNKNOWN_FIELD');
  });

  it('rejects garbage as malformed', () => {
    // wrong wire type for field 1 (length-delimited)
    expect(codeOf(() => new FrameDecoder().push(prefixed([0x0a, 0x01, 0x00])))).toBe('E_FRAME_MALFORMED');
    // length running past the message
    expect(codeOf(() => new FrameDecoder().push(prefixed([0x22, 0x10, 0x00])))).toBe('E_FRAME_MALFORMED');
    // a cut varint
    expect(codeOf(() => new FrameDecoder().push(prefixed([0x08, 0x81])))).toBe('E_FRAME_MALFORMED');
    // impossible wire type 7
    expect(codeOf(() => new FrameDecoder().push(prefixed([0x0f, 0x00])))).toBe('E_FRAME_MALFORMED');
  });

  it('decodes an empty message as proto3 defaults', () => {
    const [m] = new FrameDecoder().push(prefixed([]));
    expect(m).toMatchObject({ type: 0, streamId: 0, ignorable: false, serviceId: '', connectionId: 0 });
    expect(m?.payload.length).toBe(0);
  });
});
