import type { Socket } from 'node:net';

/**
 * Coalesces the writes aedes makes on a connection (one per packet, see wire-out.ts's whole packets) into
 * one socket write per event-loop turn. With TCP_NODELAY on, every separate write is its own syscall and its
 * own segment: profiling a QoS 0 flood showed ~30 % of the broker's CPU in writev before writes were batched.
 * The packets of a turn are gathered here and concatenated (a memcpy of a few KiB) rather than corked in the
 * socket, which would queue a stream request per packet and walk them all again in writev. The latency
 * added is one loop turn.
 *
 *   write(buffer) ──▶ gathered ──(setImmediate, or the high-water mark reached)──▶ socket.write(concat)
 *   write(anything else: a string, a callback) ──▶ gathered bytes first, then it, in order
 *   end() ──▶ gathered bytes first
 *
 * Backpressure stays the socket's: a write answers false while the socket needs a drain (a 'drain' follows),
 * and gathering past the high-water mark hands the bytes to the socket at once and answers what it says.
 */
export function coalesceWrites(socket: Socket): void {
  const gathered: Buffer[] = [];
  let bytes = 0;
  let scheduled = false;
  const write = socket.write;
  const end = socket.end;
  const flush = (): boolean => {
    if (gathered.length === 0) return !socket.writableNeedDrain;
    const chunk = gathered.length === 1 ? gathered[0]! : Buffer.concat(gathered, bytes);
    gathered.length = 0;
    bytes = 0;
    if (socket.destroyed) return false;
    return (write as (chunk: Buffer) => boolean).call(socket, chunk);
  };
  const onTurn = () => {
    scheduled = false;
    flush();
  };
  socket.write = function coalescedWrite(this: Socket, ...args: unknown[]) {
    const [chunk] = args;
    if (args.length !== 1 || !Buffer.isBuffer(chunk) || this.destroyed) {
      flush();
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    }
    gathered.push(chunk);
    bytes += chunk.length;
    if (bytes >= this.writableHighWaterMark) return flush();
    if (!scheduled) {
      scheduled = true;
      setImmediate(onTurn);
    }
    return !this.writableNeedDrain;
  } as Socket['write'];
  socket.end = function coalescedEnd(this: Socket, ...args: unknown[]) {
    flush();
    return (end as (...a: unknown[]) => Socket).apply(this, args);
  } as Socket['end'];
}
