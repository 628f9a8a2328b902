import type { Socket } from 'node:net';
import type WebSocket from 'ws';
import { MAX_PAYLOAD_BYTES, MAX_WS_FRAME_BYTES } from '../../simulators/tunnel-service/frame.js';

/**
 * The outgoing side of one WebSocket session: tunnel messages queued in order, packed into WebSocket
 * frames of at most 131076 bytes (protocol guide limit) on the next turn of the event loop.
 *
 * ```
 * tcp chunks ─▶ DATA entries (views, coalesced up to 63 KiB per message) ─┐
 * control messages (encoded) ─────────────────────────────────────────────┴▶ pack ─▶ frame
 * ```
 * With the zero masking key (the default) a frame goes to the socket as its pieces in one `writev`:
 * header and message fields from one small buffer, the TCP payloads as the views they arrived as, never
 * copied. With random keys each byte is copied once, into the frame `ws` masks and sends.
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

/** Writes a DATA message's length prefix and fields up to its payload; returns the payload's offset. */
function writeDataHead(target: Buffer, pos: number, e: DataEntry, body: number): number {
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
  return writeVarint(target, pos, e.bytes);
}

/** Bytes of a DATA message that are not payload (prefix and fields). */
const dataHeadSize = (e: DataEntry, body: number): number => 2 + body - e.bytes;

/**
 * RFC 6455 §5.2 header of a final binary frame from a client, masked (§5.3) with the zero key, which
 * leaves the payload as it is: 2 bytes, the extended length (§5.2: 16 bits from 126, 64 from 65536),
 * then the 4-byte key.
 */
function wsHeaderSize(payload: number): number {
  return 2 + (payload < 126 ? 0 : payload < 65_536 ? 2 : 8) + 4;
}

function writeWsHeader(target: Buffer, payload: number): number {
  target[0] = 0x82; // FIN, opcode 2 (binary)
  let pos = 2;
  if (payload < 126) target[1] = 0x80 | payload;
  else if (payload < 65_536) {
    target[1] = 0x80 | 126;
    target.writeUInt16BE(payload, 2);
    pos = 4;
  } else {
    target[1] = 0x80 | 127;
    target.writeUInt32BE(0, 2);
    target.writeUInt32BE(payload, 6);
    pos = 10;
  }
  target.writeUInt32BE(0, pos); // the zero masking key
  return pos + 4;
}

interface Packed {
  e: Entry;
  /** Bytes in the frame: the message with its length prefix. */
  size: number;
  /** A DATA message's protobuf body size (0 for a control message). */
  body: number;
}

/** The frame's payload as one buffer (each payload byte copied once), for `ws.send`. */
function packFrame(batch: Packed[], bytes: number): Buffer {
  const frame = Buffer.allocUnsafe(bytes);
  let pos = 0;
  for (const b of batch) {
    if (Buffer.isBuffer(b.e)) pos += b.e.copy(frame, pos);
    else {
      pos = writeDataHead(frame, pos, b.e, b.body);
      for (const p of b.e.pieces) pos += p.copy(frame, pos);
    }
  }
  return frame;
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
    /** Frames are masked with the zero key: they can be written without `ws` (see `writeFrame`). */
    private readonly zeroMask = false,
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
    let batch: Packed[] = [];
    let batchBytes = 0;
    const send = () => {
      if (batch.length === 0) return;
      if (this.zeroMask) this.writeFrame(batch, batchBytes);
      else this.ws.send(packFrame(batch, batchBytes), { binary: true });
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

  /**
   * Writes one frame of messages straight to the socket under the WebSocket, as its pieces in one corked
   * burst (one `writev`): the frame header and the messages' own bytes from one small buffer, the TCP
   * payloads as the views they arrived as. With the zero key the frame is byte for byte what `ws` would
   * send for the packed frame, without copying the payloads into it. Safe beside `ws`'s own writes
   * (pings, close): its sender writes to the socket at once too (no compression, no queue), so order holds.
   */
  private writeFrame(batch: Packed[], payload: number): void {
    let small = wsHeaderSize(payload);
    for (const b of batch) small += Buffer.isBuffer(b.e) ? b.size : dataHeadSize(b.e, b.body);
    const head = Buffer.allocUnsafe(small);
    let pos = writeWsHeader(head, payload);
    let from = 0;
    const raw = this.raw;
    raw.cork();
    for (const b of batch) {
      if (Buffer.isBuffer(b.e)) {
        pos += b.e.copy(head, pos);
        continue;
      }
      pos = writeDataHead(head, pos, b.e, b.body);
      raw.write(head.subarray(from, pos));
      from = pos;
      for (const p of b.e.pieces) raw.write(p);
    }
    if (pos > from) raw.write(head.subarray(from, pos));
    raw.uncork();
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
