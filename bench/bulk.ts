import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { ConnectionTracker, closeServer, listen } from '../simulators/common/net.js';
import { bounded } from './lib.js';

/**
 * The bulk-transfer pieces the throughput benchmarks share: a sink that reads an 8-byte length, then
 * that many bytes, then answers `k`; and a sender that streams with backpressure and times until the
 * sink's answer (so bytes buffered along the path count only once they arrived).
 */
export const MiB = 1024 * 1024;

export interface BulkSink {
  port: number;
  stop(): Promise<void>;
}

export async function startBulkSink(host: string): Promise<BulkSink> {
  const tracker = new ConnectionTracker();
  const server = createServer((c) => {
    tracker.track(c);
    c.on('error', () => {});
    c.setNoDelay(true);
    let want = -1;
    let got = 0;
    let head = Buffer.alloc(0);
    c.on('data', (chunk: Buffer) => {
      if (want < 0) {
        head = Buffer.concat([head, chunk]);
        if (head.length < 8) return;
        want = Number(head.readBigUInt64BE(0));
        got = head.length - 8;
      } else got += chunk.length;
      if (got >= want) c.end('k');
    });
  });
  const port = await listen(server, host, 0);
  return { port, stop: () => closeServer(server, tracker) };
}

/** A direct TCP connection to host:port, for `bulkOnce`. */
export async function connectDirect(host: string, port: number): Promise<Socket> {
  const s = connect({ host, port, noDelay: true });
  await bounded(once(s, 'connect'), 10_000, 'connect');
  return s;
}

/** MiB/s for `bytes` streamed one way over the socket `open` yields (timed from before it opens). */
export async function bulkOnce(
  open: () => Promise<Socket>,
  bytes: number,
  timeoutMs = 300_000,
): Promise<number> {
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  const t0 = performance.now();
  const s = await open();
  const acked = new Promise<void>((res, rej) => {
    s.on('data', (c: Buffer) => {
      if (c.includes(0x6b)) res();
    });
    s.once('error', rej);
    s.once('close', () => rej(new Error('closed before the sink acknowledged')));
  });
  s.resume();
  const size = Buffer.alloc(8);
  size.writeBigUInt64BE(BigInt(bytes));
  s.write(size);
  let sent = 0;
  while (sent < bytes) {
    const n = Math.min(chunk.length, bytes - sent);
    sent += n;
    if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await once(s, 'drain');
  }
  await bounded(acked, timeoutMs, 'bulk acknowledgement');
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  return bytes / MiB / secs;
}
