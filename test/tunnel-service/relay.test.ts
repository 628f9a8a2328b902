import { randomBytes } from 'node:crypto';
import {
  CloseTunnelCommand,
  DescribeTunnelCommand,
  OpenTunnelCommand,
} from '@aws-sdk/client-iotsecuretunneling';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { joined } from '../../simulators/tunnel-service/data-plane.js';
import { encodeMessage, MAX_PAYLOAD_BYTES, MessageType as T } from '../../simulators/tunnel-service/index.js';
import {
  CLIENT_TOKEN_A,
  connect,
  connectPair,
  type Lab,
  openTunnel,
  refusal,
  startLab,
  stopLab,
  V1,
  V3,
  within,
} from './helpers.js';

let lab: Lab | undefined;
afterEach(async () => {
  await stopLab(lab);
  lab = undefined;
});

/** A raw prefixed message from protobuf body bytes. */
function prefixed(body: number[]): Buffer {
  const b = Buffer.alloc(2 + body.length);
  b.writeUInt16BE(body.length, 0);
  Buffer.from(body).copy(b, 2);
  return b;
}

describe('tunnel-service relay', () => {
  it('relays a 1 MB v2 stream intact both ways, and reports aggregated data', async () => {
    lab = await startLab({ dataEventIntervalMs: 50 });
    const t = await openTunnel(lab);
    const { src, dst } = await connectPair(lab, t);
    src.send({ type: T.STREAM_START, streamId: 1, serviceId: 'SSH' });
    expect(await dst.next()).toMatchObject({ type: T.STREAM_START, streamId: 1, serviceId: 'SSH' });
    const blob = randomBytes(1 << 20);
    // Several messages per WebSocket frame, and messages split across frames.
    const wire = [];
    for (let off = 0; off < blob.length; off += 60_000) {
      const { encodeMessage } = await import('../../simulators/tunnel-service/frame.js');
      wire.push(
        encodeMessage({
          type: T.DATA,
          streamId: 1,
          serviceId: 'SSH',
          payload: blob.subarray(off, off + 60_000),
        }),
      );
    }
    const all = Buffer.concat(wire);
    for (let off = 0; off < all.length; off += 100_000) src.ws.send(all.subarray(off, off + 100_000));
    const got: Buffer[] = [];
    let size = 0;
    while (size < blob.length) {
      const m = await dst.next(5000);
      expect(m.type).toBe(T.DATA);
      got.push(m.payload);
      size += m.payload.length;
    }
    expect(Buffer.concat(got).equals(blob)).toBe(true);
    // Back the other way (no serviceId: one service, the V2 guide allows leaving it out).
    dst.send({ type: T.DATA, streamId: 1, payload: Buffer.from('pong') });
    expect((await src.next()).payload.toString()).toBe('pong');
    const data: Array<{ from: string; bytes: number }> = [];
    lab.svc.events.onEvent('data', (e) => data.push(e));
    await vi.waitFor(() => expect(data.length).toBeGreaterThan(0), { timeout: 3000 });
    expect(lab.svc.stats().bytesRelayed).toBeGreaterThan(blob.length);
    src.close();
    dst.close();
  });

  it('multiplexes two v3 connections in one stream', async () => {
    lab = await startLab();
    const t = await openTunnel(lab, ['SSH', 'HTTP']);
    const { src, dst } = await connectPair(lab, t, V3);
    src.send({ type: T.STREAM_START, streamId: 4, serviceId: 'HTTP', connectionId: 1 });
    expect(await dst.next()).toMatchObject({ type: T.STREAM_START, streamId: 4, connectionId: 1 });
    src.send({ type: T.CONNECTION_START, streamId: 4, serviceId: 'HTTP', connectionId: 2 });
    expect(await dst.next()).toMatchObject({ type: T.CONNECTION_START, connectionId: 2 });
    src.send(
      { type: T.DATA, streamId: 4, serviceId: 'HTTP', connectionId: 1, payload: Buffer.from('one') },
      { type: T.DATA, streamId: 4, serviceId: 'HTTP', connectionId: 2, payload: Buffer.from('two') },
    );
    const a = await dst.next();
    const b = await dst.next();
    expect([a.connectionId, a.payload.toString(), b.connectionId, b.payload.toString()]).toEqual([
      1,
      'one',
      2,
      'two',
    ]);
    dst.send({ type: T.CONNECTION_RESET, streamId: 4, serviceId: 'HTTP', connectionId: 2 });
    expect(await src.next()).toMatchObject({ type: T.CONNECTION_RESET, connectionId: 2 });
    // DATA for the reset connection is stale and dropped; connection 1 (sent as 0 = 1) still flows.
    src.send(
      { type: T.DATA, streamId: 4, serviceId: 'HTTP', connectionId: 2, payload: Buffer.from('stale') },
      { type: T.DATA, streamId: 4, serviceId: 'HTTP', payload: Buffer.from('live') },
    );
    const c = await dst.next();
    expect(c.payload.toString()).toBe('live');
    src.close();
    dst.close();
  });

  it('a new STREAM_START replaces the stream; stale DATA is dropped; STREAM_RESET ends it', async () => {
    lab = await startLab();
    const t = await openTunnel(lab);
    const { src, dst } = await connectPair(lab, t);
    const starts: number[] = [];
    lab.svc.events.onEvent('stream-start', (e) => starts.push(e.streamId));
    src.send({ type: T.STREAM_START, streamId: 1, serviceId: 'SSH' });
    src.send({ type: T.STREAM_START, streamId: 2, serviceId: 'SSH' });
    expect((await dst.next()).streamId).toBe(1);
    expect((await dst.next()).streamId).toBe(2);
    dst.send(
      { type: T.DATA, streamId: 1, serviceId: 'SSH', payload: Buffer.from('old') },
      { type: T.DATA, streamId: 2, serviceId: 'SSH', payload: Buffer.from('new') },
    );
    const m = await src.next();
    expect([m.streamId, m.payload.toString()]).toEqual([2, 'new']);
    expect(lab.svc.stats().framesDropped).toBe(1);
    src.send({ type: T.STREAM_RESET, streamId: 2, serviceId: 'SSH' });
    expect(await dst.next()).toMatchObject({ type: T.STREAM_RESET, streamId: 2 });
    expect(starts).toEqual([1, 2]);
    // DATA racing the reset is stale and dropped, not a violation; a new stream then flows.
    dst.send({ type: T.DATA, streamId: 2, serviceId: 'SSH', payload: Buffer.from('late') });
    src.send({ type: T.STREAM_START, streamId: 5, serviceId: 'SSH' });
    src.send({ type: T.DATA, streamId: 5, serviceId: 'SSH', payload: Buffer.from('fresh') });
    expect((await dst.next()).type).toBe(T.STREAM_START);
    dst.send({ type: T.DATA, streamId: 5, serviceId: 'SSH', payload: Buffer.from('back') });
    expect((await dst.next()).payload.toString()).toBe('fresh');
    const back = await src.next();
    expect([back.streamId, back.payload.toString()]).toEqual([5, 'back']);
    src.close();
    dst.close();
  });

  it('forwards a frame of messages as the bytes it came as, and without a stale message in between', async () => {
    lab = await startLab();
    const t = await openTunnel(lab);
    const { src, dst } = await connectPair(lab, t);
    const frames: Buffer[] = [];
    dst.ws.on('message', (d: Buffer) => frames.push(Buffer.from(d)));
    const data = (streamId: number, text: string) =>
      encodeMessage({ type: T.DATA, streamId, serviceId: 'SSH', payload: Buffer.from(text) });
    const start = encodeMessage({ type: T.STREAM_START, streamId: 2, serviceId: 'SSH' });
    src.ws.send(Buffer.concat([start, data(2, 'a'), data(2, 'b')]));
    for (let i = 0; i < 3; i++) await dst.next();
    // Stream 1 is not the active stream: its DATA is stale and dropped, the rest goes on as one frame.
    src.ws.send(Buffer.concat([data(2, 'c'), data(1, 'stale'), data(2, 'd')]));
    for (let i = 0; i < 2; i++) await dst.next();
    expect(frames).toEqual([
      Buffer.concat([start, data(2, 'a'), data(2, 'b')]),
      Buffer.concat([data(2, 'c'), data(2, 'd')]),
    ]);
    expect(lab.svc.stats().framesDropped).toBe(1);
    src.close();
    dst.close();
  });

  it('joins back-to-back messages as a view of the received bytes, others as a copy', () => {
    const received = Buffer.alloc(10, '0123456789'); // not from the shared pool: its own memory
    const view = joined([received.subarray(2, 5), received.subarray(5, 9)], 7);
    expect(view.toString()).toBe('2345678');
    expect(view.buffer).toBe(received.buffer);
    const copy = joined([received.subarray(0, 2), received.subarray(5, 9)], 6);
    expect(copy.toString()).toBe('015678');
    expect(copy.buffer).not.toBe(received.buffer);
    const apart = joined([received.subarray(0, 2), Buffer.from('xy')], 4);
    expect(apart.toString()).toBe('01xy');
  });

  it('relays ignorable messages of unknown types and answers pings', async () => {
    lab = await startLab();
    const t = await openTunnel(lab);
    const { src, dst } = await connectPair(lab, t);
    src.send({ type: 42, ignorable: true, payload: Buffer.from('future') });
    expect(await dst.next()).toMatchObject({ type: 42, ignorable: true });
    const pong = new Promise<Buffer>((r) => src.ws.once('pong', r));
    src.ws.ping(Buffer.from('rtt'));
    expect((await within(pong, 3000, 'pong')).toString()).toBe('rtt');
    src.close();
    dst.close();
  });

  it('relays v1 (no service ids)', async () => {
    lab = await startLab();
    const open = await lab.sdk.send(new OpenTunnelCommand({}));
    const t = {
      source: open.sourceAccessToken as string,
      destination: open.destinationAccessToken as string,
    };
    const { src, dst } = await connectPair(lab, t, V1);
    src.send({ type: T.STREAM_START, streamId: 9 });
    expect((await dst.next()).type).toBe(T.STREAM_START);
    src.send({ type: T.DATA, streamId: 9, payload: Buffer.from('v1') });
    expect((await dst.next()).payload.toString()).toBe('v1');
    src.close();
    dst.close();
  });

  it('a reconnect with the same client token replaces the peer and resets the other side', async () => {
    lab = await startLab();
    const t = await openTunnel(lab);
    const dst = await connect(lab, { mode: 'destination', token: t.destination });
    await dst.next();
    const src = await connect(lab, { mode: 'source', token: t.source, clientToken: CLIENT_TOKEN_A });
    await src.next();
    src.send({ type: T.STREAM_START, streamId: 3, serviceId: 'SSH' });
    expect((await dst.next()).type).toBe(T.STREAM_START);
    const connected: boolean[] = [];
    lab.svc.events.onEvent('peer-connected', (e) => connected.push(e.replaced));
    const src2 = await connect(lab, { mode: 'source', token: t.source, clientToken: CLIENT_TOKEN_A });
    expect(await dst.next()).toMatchObject({ type: T.STREAM_RESET, streamId: 3, serviceId: 'SSH' });
    expect((await src.whenClosed()).code).toBe(1000);
    expect(connected).toEqual([true]);
    expect((await src2.next()).type).toBe(T.SERVICE_IDS);
    src2.send({ type: T.STREAM_START, streamId: 4, serviceId: 'SSH' });
    expect((await dst.next()).streamId).toBe(4);
    src2.close();
    dst.close();
  });

  it('CloseTunnel ends both sides with 1000 and the tunnel never reopens', async () => {
    lab = await startLab();
    const t = await openTunnel(lab);
    const { src, dst } = await connectPair(lab, t);
    const { tunnel } = await lab.sdk.send(new DescribeTunnelCommand({ tunnelId: t.tunnelId }));
    expect(tunnel?.sourceConnectionState?.status).toBe('CONNECTED');
    expect(tunnel?.destinationConnectionState?.status).toBe('CONNECTED');
    await lab.sdk.send(new CloseTunnelCommand({ tunnelId: t.tunnelId }));
    const [a, b] = await Promise.all([src.whenClosed(), dst.whenClosed()]);
    expect([a.code, b.code]).toEqual([1000, 1000]);
    const rejected: string[] = [];
    lab.svc.events.onEvent('token-rejected', (e) => rejected.push(e.reason));
    expect(await refusal(connect(lab, { mode: 'source', token: t.source }))).toBe(403);
    expect(rejected).toEqual(['closed']);
    await vi.waitFor(async () => {
      const d = await lab?.sdk.send(new DescribeTunnelCommand({ tunnelId: t.tunnelId }));
      expect(d?.tunnel?.sourceConnectionState?.status).toBe('DISCONNECTED');
    });
  });

  it('stop() ends connected peers and resolves promptly', async () => {
    const l = await startLab();
    const t = await openTunnel(l);
    const { src, dst } = await connectPair(l, t);
    await within(l.svc.stop(), 3000, 'stop()');
    const [a, b] = await Promise.all([src.whenClosed(), dst.whenClosed()]);
    expect([a.code, b.code]).toEqual([1006, 1006]);
    await stopLab(l);
  });

  it('enforces the max lifetime', async () => {
    lab = await startLab({ maxLifetimeMs: 300 });
    const t = await openTunnel(lab);
    const closed = new Promise((r) => lab?.svc.events.onceEvent('tunnel-closed', r));
    const { src, dst } = await connectPair(lab, t);
    expect(await within(closed, 3000, 'tunnel-closed')).toMatchObject({
      tunnelId: t.tunnelId,
      reason: 'lifetime',
    });
    const [a, b] = await Promise.all([src.whenClosed(), dst.whenClosed()]);
    expect([a.code, b.code]).toEqual([1000, 1000]);
    const { tunnel } = await lab.sdk.send(new DescribeTunnelCommand({ tunnelId: t.tunnelId }));
    expect(tunnel?.status).toBe('CLOSED');
  });

  it('delivers destination tokens through the notify hook on open and rotation', async () => {
    const calls: Array<[string, string]> = [];
    lab = await startLab({
      region: 'ap-northeast-1',
      notify: (topic, payload) => void calls.push([topic, payload]),
    });
    const t = await openTunnel(lab, ['SSH'], 'gw-7');
    expect(calls).toHaveLength(1);
    expect(calls[0]?.[0]).toBe('$aws/things/gw-7/tunnels/notify');
    expect(JSON.parse(calls[0]?.[1] ?? '')).toEqual({
      clientAccessToken: t.destination,
      clientMode: 'destination',
      region: 'ap-northeast-1',
      services: ['SSH'],
    });
    const { RotateTunnelAccessTokenCommand } = await import('@aws-sdk/client-iotsecuretunneling');
    await lab.sdk.send(new RotateTunnelAccessTokenCommand({ tunnelId: t.tunnelId, clientMode: 'SOURCE' }));
    expect(calls).toHaveLength(1);
    const r = await lab.sdk.send(
      new RotateTunnelAccessTokenCommand({ tunnelId: t.tunnelId, clientMode: 'DESTINATION' }),
    );
    expect(calls).toHaveLength(2);
    expect(JSON.parse(calls[1]?.[1] ?? '').clientAccessToken).toBe(r.destinationAccessToken);
  });

  it('throttles DATA to the bandwidth quota', async () => {
    lab = await startLab({ bandwidthBytesPerSecond: 200_000 });
    const t = await openTunnel(lab);
    const { src, dst } = await connectPair(lab, t);
    src.send({ type: T.STREAM_START, streamId: 1, serviceId: 'SSH' });
    await dst.next();
    const chunk = { type: T.DATA, streamId: 1, serviceId: 'SSH', payload: Buffer.alloc(50_000) };
    const started = Date.now();
    for (let i = 0; i < 10; i++) src.send(chunk); // 500 KB at 200 KB/s: well over a second
    let got = 0;
    while (got < 500_000) got += (await dst.next(5000)).payload.length;
    expect(Date.now() - started).toBeGreaterThan(900);
    src.close();
    dst.close();
  });
});

describe('tunnel-service protocol violations', () => {
  async function violation(send: (p: Awaited<ReturnType<typeof connectPair>>) => void, proto?: string) {
    lab = await startLab();
    const t = await openTunnel(lab);
    const pair = await connectPair(lab, t, proto);
    const seen = new Promise<{ reason: string; code: string; mode: string }>((r) =>
      lab?.svc.events.onceEvent('protocol-violation', r),
    );
    send(pair);
    const ev = await within(seen, 3000, 'protocol-violation');
    const closes = await within(
      Promise.race([pair.src.closed, pair.dst.closed]),
      3000,
      'the violating socket to close',
    );
    pair.src.close();
    pair.dst.close();
    await stopLab(lab);
    lab = undefined;
    return { ...ev, closeCode: closes.code };
  }

  it('closes on DATA for a service never started (1008)', async () => {
    const v = await violation(({ src }) => src.send({ type: T.DATA, streamId: 1, serviceId: 'SSH' }));
    expect(v).toMatchObject({ code: 'E_TUNNEL_NO_STREAM', mode: 'source', closeCode: 1008 });
  });

  it('closes on stream id 0 and on an unknown non-ignorable type (1008)', async () => {
    const a = await violation(({ src }) => src.send({ type: T.DATA, streamId: 0, serviceId: 'SSH' }));
    expect(a).toMatchObject({ code: 'E_TUNNEL_STREAM_ID', closeCode: 1008 });
    const b = await violation(({ src }) => src.send({ type: 42 }));
    expect(b).toMatchObject({ code: 'E_TUNNEL_MESSAGE_TYPE', closeCode: 1008 });
    const c = await violation(({ src }) => src.send({ type: T.UNKNOWN, ignorable: true }));
    expect(c).toMatchObject({ code: 'E_TUNNEL_MESSAGE_TYPE', closeCode: 1008 });
  });

  it('closes on a destination STREAM_START, client SERVICE_IDS and SESSION_RESET (1008)', async () => {
    const a = await violation(({ dst }) => dst.send({ type: T.STREAM_START, streamId: 1, serviceId: 'SSH' }));
    expect(a).toMatchObject({ mode: 'destination', closeCode: 1008 });
    const b = await violation(({ src }) => src.send({ type: T.SERVICE_IDS, availableServiceIds: ['x'] }));
    expect(b).toMatchObject({ code: 'E_TUNNEL_SERVICE_ONLY', closeCode: 1008 });
    const c = await violation(({ dst }) => dst.send({ type: T.SESSION_RESET }));
    expect(c).toMatchObject({ code: 'E_TUNNEL_SERVICE_ONLY', closeCode: 1008 });
    const d = await violation(({ src }) =>
      src.send({ type: T.STREAM_START, streamId: 1, serviceId: 'NOPE' }),
    );
    expect(d).toMatchObject({ code: 'E_TUNNEL_SERVICE_ID', closeCode: 1008 });
    const e = await violation(({ src }) =>
      src.send({ type: T.CONNECTION_START, streamId: 1, serviceId: 'SSH' }),
    );
    expect(e).toMatchObject({ code: 'E_TUNNEL_V3_ONLY' });
  });

  it('closes on unknown fields, oversized and malformed messages (1002)', async () => {
    const a = await violation(({ src }) => src.ws.send(prefixed([0x08, 0x02, 0x10, 0x01, 0x48, 0x01])));
    expect(a).toMatchObject({ code: 'E_FRAME_UNKNOWN_FIELD', closeCode: 1002 });
    const big = [0x08, 0x01, 0x10, 0x01, 0x22, 0x81, 0xf8, 0x03, ...new Array(MAX_PAYLOAD_BYTES + 1).fill(0)];
    const b = await violation(({ src }) => src.ws.send(prefixed(big)));
    expect(b).toMatchObject({ code: 'E_FRAME_OVERSIZED', closeCode: 1002 });
    const c = await violation(({ dst }) => dst.ws.send(prefixed([0x0a, 0xff])));
    expect(c).toMatchObject({ code: 'E_FRAME_MALFORMED', closeCode: 1002 });
    const d = await violation(({ dst }) => dst.ws.send('text'));
    expect(d).toMatchObject({ code: 'E_FRAME_TEXT', closeCode: 1003 });
  });

  it('delivers the valid messages that preceded a violation in the same frame', async () => {
    lab = await startLab();
    const t = await openTunnel(lab);
    const { src, dst } = await connectPair(lab, t);
    src.send(
      { type: T.STREAM_START, streamId: 1, serviceId: 'SSH' },
      { type: T.DATA, streamId: 1, serviceId: 'SSH', payload: Buffer.from('ok') },
      { type: T.SESSION_RESET },
    );
    expect((await dst.next()).type).toBe(T.STREAM_START);
    expect((await dst.next()).payload.toString()).toBe('ok');
    expect((await src.whenClosed()).code).toBe(1008);
    dst.close();
  });

  it('a violating client does not disturb other tunnels', async () => {
    lab = await startLab();
    const t1 = await openTunnel(lab);
    const t2 = await openTunnel(lab);
    const bad = await connectPair(lab, t1);
    const good = await connectPair(lab, t2);
    bad.src.ws.send(prefixed([0x78, 0x00])); // field 15: unknown
    expect((await bad.src.whenClosed()).code).toBe(1002);
    good.src.send({ type: T.STREAM_START, streamId: 1, serviceId: 'SSH' });
    expect((await good.dst.next()).type).toBe(T.STREAM_START);
    for (const p of [bad.dst, good.src, good.dst]) p.close();
  });
});
