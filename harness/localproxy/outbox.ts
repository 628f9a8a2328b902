import type { Socket } from 'node:net';
import type WebSocket from 'ws';
import { MAX_PAYLOAD_BYTES, MAX_WS_FRAME_BYTES } from '../../simulators/tunnel-service/frame.js';

/**
 * The outgoing side of one WebSocket session: tunnel messages queued in order, packed into WebSocket
 * frames of at most 131076 bytes (protocol guide limit) on the next turn of the event loop.
 *
 * ```
 * tcp chunks ─▶ DATA entries (views, coalesced up to 63 KiB per message) ─┐
 * control messages (encoded) ─────────────────────────────────────────────┴▶ pack ─▶ ws.send(frame)
 * ```
 * Each byte is copied once, into the frame; with zero-key masking `ws` sends that buffer as is.
 */

/** Where a DATA message goes (V2 guide: serviceId; V3 guide: connectionId, 0 = omitted). */
export interface DataRoute {
  streamId: number;
  /** UTF-8 service id, or undefined to leave it out (V1). */
  serviceId: Buffer | undefined;
  connectionId: number;
  /** False once the connection was reset: queued DATA for it is dropped. */
  live: boolean;
}

interface DataEntry {
  route: DataRoute;
  streamId: number;
  pieces: Buffer[];
  bytes: number;
}
type Entry = Buffer | DataEntry;

function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Buffer, pos: number, v: number): number {
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/** Message.proto body size of a DATA message (fields 1, 2, 5, 7, then 4 with the payload). */
function dataBodySize(e: DataEntry): number {
  const sid = e.route.serviceId;
  let n = 2 + 1 + varintSize(e.streamId);
  if (sid && sid.length > 0) n += 1 + varintSize(sid.length) + sid.length;
  if (e.route.connectionId) n += 1 + varintSize(e.route.connectionId);
  return n + 1 + varintSize(e.bytes) + e.bytes;
}

function writeData(target: Buffer, pos: number, e: DataEntry, body: number): number {
  target.writeUInt16BE(body, pos);
  pos += 2;
  target[pos++] = 0x08; // field 1 type, varint
  target[pos++] = 1; // DATA
  target[pos++] = 0x10; // field 2 streamId
  pos = writeVarint(target, pos, e.streamId);
  const sid = e.route.serviceId;
  if (sid && sid.length > 0) {
    target[pos++] = 0x2a; // field 5 serviceId, length-delimited
    pos = writeVarint(target, pos, sid.length);
    pos += sid.copy(target, pos);
  }
  if (e.route.connectionId) {
    target[pos++] = 0x38; // field 7 connectionId
    pos = writeVarint(target, pos, e.route.connectionId);
  }
  target[pos++] = 0x22; // field 4 payload
  pos = writeVarint(target, pos, e.bytes);
  for (const p of e.pieces) pos += p.copy(target, pos);
  return pos;
}

export interface OutboxCounters {
  wsMessagesOut: number;
  tunnelMessagesOut: number;
  bytesToService: number;
}

export class Outbox {
  private entries: Entry[] = [];
  private scheduled = false;
  private congested = false;
  private readonly pausedSockets = new Set<Socket>();

  constructor(
    private readonly ws: WebSocket,
    private readonly raw: Socket,
    private readonly highWaterMark: number,
    private readonly counters: OutboxCounters,
  ) {
    raw.on('drain', this.onDrain);
  }

  /** True while the WebSocket has too much unsent: local sockets should not be read. */
  get isCongested(): boolean {
    return this.congested;
  }

  /** Queues an encoded control message (after any queued DATA, so order is kept). */
  control(message: Buffer): void {
    this.entries.push(message);
    this.schedule();
  }

  /** Queues payload bytes for a route; `chunk` is kept as a view until the flush. */
  data(route: DataRoute, chunk: Buffer, from: Socket): void {
    let rest = chunk;
    const last = this.entries[this.entries.length - 1];
    if (last && !Buffer.isBuffer(last) && last.route === route && last.streamId === route.streamId) {
      const room = MAX_PAYLOAD_BYTES - last.bytes;
      if (room > 0) {
        const take = rest.length <= room ? rest : rest.subarray(0, room);
        last.pieces.push(take);
        last.bytes += take.length;
        rest = rest.subarray(take.length);
      }
    }
    while (rest.length > 0) {
      const take = rest.length <= MAX_PAYLOAD_BYTES ? rest : rest.subarray(0, MAX_PAYLOAD_BYTES);
      this.entries.push({ route, streamId: route.streamId, pieces: [take], bytes: take.length });
      rest = rest.subarray(take.length);
    }
    this.counters.bytesToService += chunk.length;
    if (this.congested) this.pauseSocket(from);
    this.schedule();
  }

  /** Pauses a local socket until the WebSocket drains (also for sockets accepted while congested). */
  pauseSocket(s: Socket): void {
    if (!this.congested) return;
    s.pause();
    this.pausedSockets.add(s);
  }

  /** Local sockets paused because the WebSocket is congested. */
  get pausedCount(): number {
    return this.pausedSockets.size;
  }

  forget(s: Socket): void {
    this.pausedSockets.delete(s);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Packs the queue into frames now. */
  flush(): void {
    this.scheduled = false;
    const entries = this.entries;
    this.entries = [];
    if (this.ws.readyState !== this.ws.OPEN) return;
    let batch: Array<{ e: Entry; size: number; body: number }> = [];
    let batchBytes = 0;
    const send = () => {
      if (batch.length === 0) return;
      const frame = Buffer.allocUnsafe(batchBytes);
      let pos = 0;
      for (const b of batch) {
        if (Buffer.isBuffer(b.e)) pos += b.e.copy(frame, pos);
        else pos = writeData(frame, pos, b.e, b.body);
      }
      this.ws.send(frame, { binary: true });
      this.counters.wsMessagesOut++;
      this.counters.tunnelMessagesOut += batch.length;
      batch = [];
      batchBytes = 0;
    };
    for (const e of entries) {
      let size: number;
      let body = 0;
      if (Buffer.isBuffer(e)) size = e.length;
      else {
        if (!e.route.live) continue;
        body = dataBodySize(e);
        size = 2 + body;
      }
      if (batchBytes + size > MAX_WS_FRAME_BYTES) send();
      batch.push({ e, size, body });
      batchBytes += size;
    }
    send();
    if (this.ws.bufferedAmount > this.highWaterMark) this.congested = true;
  }

  private readonly onDrain = (): void => {
    if (!this.congested || this.ws.bufferedAmount > this.highWaterMark / 2) return;
    this.congested = false;
    for (const s of this.pausedSockets) s.resume();
    this.pausedSockets.clear();
  };

  /** Drops everything queued (the session ended). */
  close(): void {
    this.entries = [];
    this.raw.off('drain', this.onDrain);
  }
}
