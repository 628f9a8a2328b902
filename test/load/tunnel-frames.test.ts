import { describe, expect, it } from 'vitest';
import * as js from '../../load/lib/tunnel-frames.js';
import {
  decodeMessage,
  encodeMessage,
  FrameDecoder,
  MessageType,
  type TunnelMessageInput,
} from '../../simulators/tunnel-service/frame.js';

// The k6 scripts' hand-rolled codec (load/lib/tunnel-frames.js) against the service's protobufjs one.
const SAMPLES: TunnelMessageInput[] = [
  { type: MessageType.DATA, streamId: 1, payload: Buffer.from('hello') },
  { type: MessageType.STREAM_START, streamId: 7, serviceId: 'SSH' },
  { type: MessageType.SERVICE_IDS, availableServiceIds: ['SSH', 'RDP', 'HTTP'] },
  { type: MessageType.CONNECTION_START, streamId: 3, serviceId: 'SSH', connectionId: 4_000_000_000 },
  { type: MessageType.STREAM_RESET, streamId: -5 },
  { type: MessageType.DATA, streamId: 2_147_483_647, payload: Buffer.alloc(64_512, 0xab) },
  { type: 9, ignorable: true, payload: Buffer.alloc(0) },
  { type: MessageType.DATA, streamId: 0, ignorable: false, serviceId: '', connectionId: 0 },
  { type: MessageType.STREAM_START, streamId: 300, serviceId: 'sérvice-ü-日本-😀' },
];

describe('load/lib/tunnel-frames.js parity with simulators/tunnel-service/frame.ts', () => {
  it.each(SAMPLES.map((s, i) => [i, s] as const))('sample %i encodes byte-identically', (_i, sample) => {
    const ts = encodeMessage(sample);
    const mine = js.encodeMessage(sample);
    expect(Buffer.from(mine).toString('hex')).toBe(ts.toString('hex'));
  });

  it.each(SAMPLES.map((s, i) => [i, s] as const))('sample %i round-trips both ways', (_i, sample) => {
    // TS encode → JS decode
    const fromTs = js.decodeMessage(encodeMessage(sample), 2);
    // JS encode → TS decode
    const fromJs = decodeMessage(Buffer.from(js.encodeMessage(sample)).subarray(2));
    for (const m of [fromTs, fromJs]) {
      expect(m.type).toBe(sample.type);
      expect(m.streamId).toBe(sample.streamId ?? 0);
      expect(m.ignorable).toBe(sample.ignorable ?? false);
      expect(Buffer.from(m.payload).equals(Buffer.from(sample.payload ?? []))).toBe(true);
      expect(m.serviceId).toBe(sample.serviceId ?? '');
      expect(m.availableServiceIds).toEqual(sample.availableServiceIds ?? []);
      expect(m.connectionId).toBe(sample.connectionId ?? 0);
    }
  });

  it('the stream decoder handles coalesced and split WebSocket messages like the service decoder', () => {
    const stream = Buffer.concat(SAMPLES.map((s) => encodeMessage(s)));
    const cuts = [1, 2, 3, 50, 1000, 70_000];
    const mine = new js.FrameDecoder();
    const ts = new FrameDecoder();
    const a: js.JsTunnelMessage[] = [];
    const b: ReturnType<FrameDecoder['push']> = [];
    let pos = 0;
    for (const cut of [...cuts, stream.length]) {
      const chunk = stream.subarray(pos, Math.min(cut, stream.length));
      pos = Math.min(cut, stream.length);
      // ArrayBuffer input too, as k6 delivers binary messages.
      a.push(...mine.push(new Uint8Array(chunk).slice().buffer));
      b.push(...ts.push(chunk));
    }
    expect(a).toHaveLength(SAMPLES.length);
    expect(a.map((m) => [m.type, m.streamId, m.serviceId, Buffer.from(m.payload).length])).toEqual(
      b.map((m) => [m.type, m.streamId, m.serviceId, m.payload.length]),
    );
    expect(mine.buffered).toBe(0);
    mine.push(new Uint8Array([0, 5, 8]));
    expect(() => mine.end()).toThrow(expect.objectContaining({ code: 'E_FRAME_TRUNCATED' }));
  });

  it('rejects what the service rejects, with the same codes', () => {
    const unknownField = Buffer.from([0x08, 0x01, 0x40, 0x01]); // field 8
    const wrongWire = Buffer.from([0x0a, 0x00]); // field 1 as length-delimited
    const cut = Buffer.from([0x22, 0x05, 0x01]); // payload runs past the end
    expect(() => js.decodeMessage(unknownField)).toThrow(
      expect.objectContaining({ code: 'E_FRAME_UNKNOWN_FIELD' }),
    );
    expect(() => js.decodeMessage(wrongWire)).toThrow(expect.objectContaining({ code: 'E_FRAME_MALFORMED' }));
    expect(() => js.decodeMessage(cut)).toThrow(expect.objectContaining({ code: 'E_FRAME_MALFORMED' }));
    expect(() => decodeMessage(unknownField)).toThrow(
      expect.objectContaining({ code: 'E_FRAME_UNKNOWN_FIELD' }),
    );
    expect(() => js.encodeMessage({ type: 1, payload: new Uint8Array(64_513) })).toThrow(
      expect.objectContaining({ code: 'E_FRAME_OVERSIZED' }),
    );
  });

  it('names types and encodes UTF-8 like Buffer', () => {
    expect(js.messageTypeName(5)).toBe('SERVICE_IDS');
    expect(js.messageTypeName(42)).toBe('TYPE_42');
    const s = 'a\u00e9\u65e5\u{1f600}';
    const bytes = js.utf8Encode(s);
    expect(Buffer.from(bytes).equals(Buffer.from(s, 'utf8'))).toBe(true);
    expect(js.utf8Decode(bytes, 0, bytes.length)).toBe(s);
  });
});
