/**
 * What the AWS C++ localproxy (aws-samples/aws-iot-securetunneling-localproxy, v3) sends and expects,
 * pinned as bytes and message sequences. The C++ binary is not packaged for Debian, npm or the Go module
 * proxy, so it cannot run here; these vectors come from reading its source (TcpAdapterProxy.cpp:
 * async_send_stream_start, do_accept_tcp_connection, handle_control_message_*, is_valid_stream_id) and
 * the V2/V3 protocol guides, and the service must handle them as that client needs.
 */
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { closeReason } from '../../simulators/tunnel-service/data-plane.js';
import {
  decodeMessage,
  encodeMessage,
  FrameDecoder,
  MessageType as T,
} from '../../simulators/tunnel-service/index.js';
import {
  CLIENT_TOKEN_A,
  connect,
  connectPair,
  type Lab,
  openTunnel,
  type RawPeer,
  startLab,
  stopLab,
  V3,
  within,
} from './helpers.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const body = (frame: Buffer): Buffer => frame.subarray(2);

// 'SSH' = 53 53 48. Field numbers: type 1, streamId 2, ignorable 3, payload 4, serviceId 5,
// availableServiceIds 6, connectionId 7 (V3 guide's Message schema).
const V = {
  serviceIdsSsh: hex('0007 0805 3203 535348'),
  serviceIdsNone: hex('0002 0805'),
  streamStartV3: hex('000b 0802 1001 2a03535348 3801'),
  streamStartV2: hex('0009 0802 1001 2a03535348'),
  streamStartV1: hex('0004 0802 1001'),
  streamStartUnnamed: hex('0006 0802 1001 3801'),
  dataCpp: hex('000f 0801 1001 22026869 2a03535348 3801'),
  dataOurOrder: hex('000f 0801 1001 2a03535348 3801 22026869'),
  connectionStart2: hex('000b 0806 1001 2a03535348 3802'),
  connectionReset2: hex('000b 0807 1001 2a03535348 3802'),
  streamResetStaleConn: hex('000b 0803 1001 2a03535348 3802'),
  streamResetSsh: hex('0009 0803 1001 2a03535348'),
};

describe('C++ localproxy messages, byte for byte', () => {
  it('SERVICE_IDS, with one service and with none, encode as the C++ client parses them', () => {
    expect(encodeMessage({ type: T.SERVICE_IDS, availableServiceIds: ['SSH'] })).toEqual(V.serviceIdsSsh);
    expect(encodeMessage({ type: T.SERVICE_IDS, availableServiceIds: [] })).toEqual(V.serviceIdsNone);
  });

  it('decodes the STREAM_START of each -y format and of an unnamed -s port', () => {
    expect(decodeMessage(body(V.streamStartV3))).toMatchObject({
      type: T.STREAM_START,
      streamId: 1,
      serviceId: 'SSH',
      connectionId: 1,
    });
    expect(decodeMessage(body(V.streamStartV2))).toMatchObject({ serviceId: 'SSH', connectionId: 0 });
    expect(decodeMessage(body(V.streamStartV1))).toMatchObject({
      streamId: 1,
      serviceId: '',
      connectionId: 0,
    });
    expect(decodeMessage(body(V.streamStartUnnamed))).toMatchObject({ serviceId: '', connectionId: 1 });
  });

  it('DATA decodes the same in C++ field order and in ours', () => {
    const a = decodeMessage(body(V.dataCpp));
    const b = decodeMessage(body(V.dataOurOrder));
    expect(a).toEqual(b);
    expect(a.payload.toString()).toBe('hi');
    // Reassembled from 1-byte WebSocket messages, as a reader of a byte stream must.
    const d = new FrameDecoder();
    const out = [...Buffer.concat([V.dataCpp, V.dataOurOrder])].flatMap((byte) =>
      d.push(Buffer.from([byte])),
    );
    expect(out.map((m) => m.payload.toString())).toEqual(['hi', 'hi']);
  });

  it('the largest C++ DATA message (63 KiB payload) round-trips', () => {
    const payload = Buffer.alloc(63 * 1024);
    const frame = encodeMessage({ type: T.DATA, streamId: 1, payload, serviceId: 'SSH', connectionId: 1 });
    expect(frame.readUInt16BE(0)).toBe(64_527);
    expect(frame.subarray(2, 10)).toEqual(hex('0801 1001 2280f803'));
    expect(decodeMessage(body(frame)).payload.length).toBe(payload.length);
  });

  it('a close reason is cut to 123 bytes of UTF-8 at a whole character', () => {
    const r = closeReason(`STREAM_START for unknown service ${'サービス'.repeat(20)}`);
    expect(Buffer.byteLength(r)).toBeLessThanOrEqual(123);
    expect(Buffer.byteLength(r)).toBeGreaterThan(118);
    expect(r.endsWith('\uFFFD')).toBe(false);
    expect(closeReason('short')).toBe('short');
  });
});

describe('C++ localproxy sequences against the service', () => {
  let lab: Lab;
  beforeEach(async () => {
    lab = await startLab();
  });
  afterEach(() => stopLab(lab));

  const peer = (mode: 'source' | 'destination', token: string, clientToken?: string) =>
    connect(lab, { mode, token, protocols: [V3], ...(clientToken ? { clientToken } : {}) });
  const closeCleanly = async (p: RawPeer) => {
    p.ws.close(1000);
    await p.whenClosed();
  };

  it('answers a 3.0 handshake with the subprotocol and a channel-id, then SERVICE_IDS once', async () => {
    const t = await openTunnel(lab);
    const src = await peer('source', t.source);
    expect(src.upgradeHeaders['sec-websocket-protocol']).toBe(V3);
    expect(src.upgradeHeaders['channel-id']).toMatch(/^[0-9a-f-]+$/);
    expect(await src.next()).toMatchObject({ type: T.SERVICE_IDS, availableServiceIds: ['SSH'] });
    const dst = await peer('destination', t.destination);
    await dst.next();
    src.ws.send(V.streamStartV3);
    expect((await dst.next()).type).toBe(T.STREAM_START);
    expect(src.messages).toEqual([]); // no second SERVICE_IDS: C++ would rebind its listeners
  });

  for (const side of ['source', 'destination'] as const) {
    it(`a ${side} that closed and reconnects makes the service reset the other side's streams`, async () => {
      const t = await openTunnel(lab);
      const dst = await peer(
        'destination',
        t.destination,
        side === 'destination' ? CLIENT_TOKEN_A : undefined,
      );
      await dst.next();
      const src = await peer('source', t.source, side === 'source' ? CLIENT_TOKEN_A : undefined);
      await src.next();
      src.ws.send(V.streamStartV3);
      expect((await dst.next()).type).toBe(T.STREAM_START);

      if (side === 'source') {
        // A new C++ session numbers streams from 1 again: the destination must drop its old stream first.
        await closeCleanly(src);
        const src2 = await peer('source', t.source, CLIENT_TOKEN_A);
        await src2.next();
        expect(await dst.next()).toMatchObject({ type: T.STREAM_RESET, streamId: 1, serviceId: 'SSH' });
        src2.ws.send(V.streamStartV3);
        expect(await dst.next()).toMatchObject({ type: T.STREAM_START, streamId: 1 });
      } else {
        await closeCleanly(dst);
        const dst2 = await peer('destination', t.destination, CLIENT_TOKEN_A);
        await dst2.next();
        expect(await src.next()).toMatchObject({ type: T.STREAM_RESET, streamId: 1, serviceId: 'SSH' });
        expect(dst2.messages).toEqual([]);
      }
    });
  }

  it('relays v3 connection messages in order, a STREAM_RESET with a leftover connection id included', async () => {
    const t = await openTunnel(lab);
    const { src, dst } = await connectPair(lab, t, V3);
    const data2 = hex('000f 0801 1001 22026869 2a03535348 3802');
    src.ws.send(
      Buffer.concat([
        V.streamStartV3,
        V.dataCpp,
        V.connectionStart2,
        data2,
        V.connectionReset2,
        V.streamResetStaleConn,
      ]),
    );
    const got: Array<[number, number]> = [];
    for (let i = 0; i < 6; i++) {
      const m = await dst.next();
      got.push([m.type, m.connectionId]);
    }
    expect(got).toEqual([
      [T.STREAM_START, 1],
      [T.DATA, 1],
      [T.CONNECTION_START, 2],
      [T.DATA, 2],
      [T.CONNECTION_RESET, 2],
      [T.STREAM_RESET, 2],
    ]);
  });

  it('a tunnel without services: an unnamed -s port starts streams with no service id', async () => {
    const t = await openTunnel(lab, []);
    const dst = await peer('destination', t.destination);
    expect(await dst.next()).toMatchObject({ type: T.SERVICE_IDS, availableServiceIds: [] });
    const src = await peer('source', t.source);
    await src.next();
    src.ws.send(Buffer.concat([V.streamStartUnnamed, hex('000a 0801 1001 22026869 3801')]));
    expect(await dst.next()).toMatchObject({ type: T.STREAM_START, serviceId: '' });
    expect((await dst.next()).payload.toString()).toBe('hi');
  });

  it('a tunnel with two services takes a STREAM_START without a service id (V2 guide)', async () => {
    const t = await openTunnel(lab, ['SSH', 'HTTP']);
    const { src, dst } = await connectPair(lab, t, V3);
    src.ws.send(V.streamStartUnnamed);
    expect(await dst.next()).toMatchObject({ type: T.STREAM_START, streamId: 1, serviceId: '' });
  });

  it('a violation named by a long non-ASCII service id closes that socket with 1008; others go on', async () => {
    const t = await openTunnel(lab);
    const src = await peer('source', t.source);
    await src.next();
    src.send({ type: T.STREAM_START, streamId: 1, serviceId: 'サービス'.repeat(15), connectionId: 1 });
    const closed = await src.whenClosed();
    expect(closed.code).toBe(1008);
    expect(closed.reason).toContain('unknown service');
    const t2 = await openTunnel(lab);
    const other = await peer('source', t2.source);
    expect((await other.next()).type).toBe(T.SERVICE_IDS);
  });

  it('echoes a ping with its payload and never sends a pong of its own (C++ parses it as a number)', async () => {
    const t = await openTunnel(lab);
    const src = await peer('source', t.source);
    await src.next();
    const pongs: string[] = [];
    src.ws.on('pong', (d: Buffer) => pongs.push(d.toString()));
    for (const payload of ['1700000000000', '1700000000001']) {
      const pong = once(src.ws, 'pong');
      src.ws.ping(payload);
      await within(pong, 3000, 'the pong');
    }
    expect(pongs).toEqual(['1700000000000', '1700000000001']);
  });
});
