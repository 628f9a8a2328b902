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

/**
 * The other direction: a source that reads an 8-byte length, then sends that many bytes and ends. With
 * `downloadOnce` it measures what a relay does with bytes coming from the server side.
 */
export async function startBulkSource(host: string): Promise<BulkSink> {
  const tracker = new ConnectionTracker();
  const chunk = Buffer.alloc(256 * 1024, 0x62);
  const server = createServer((c) => {
    tracker.track(c);
    c.on('error', () => {});
    c.setNoDelay(true);
    let head = Buffer.alloc(0);
    const onHead = async (data: Buffer): Promise<void> => {
      head = Buffer.concat([head, data]);
      if (head.length < 8) return;
      c.off('data', onHead);
      let left = Number(head.readBigUInt64BE(0));
      while (left > 0 && !c.destroyed) {
        const n = Math.min(chunk.length, left);
        left -= n;
        if (!c.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await drainedOrClosed(c);
      }
      c.end();
    };
    c.on('data', onHead);
  });
  const port = await listen(server, host, 0);
  return { port, stop: () => closeServer(server, tracker) };
}

/** MiB/s for `bytes` streamed from a `startBulkSource` to this end (timed from before it opens). */
export async function downloadOnce(
  open: () => Promise<Socket>,
  bytes: number,
  timeoutMs = 300_000,
): Promise<number> {
  const t0 = performance.now();
  const s = await open();
  let got = 0;
  const done = new Promise<void>((res, rej) => {
    s.on('data', (c: Buffer) => {
      got += c.length;
    });
    s.once('end', () => (got === bytes ? res() : rej(new Error(`got ${got} of ${bytes} bytes`))));
    s.once('error', rej);
  });
  const size = Buffer.alloc(8);
  size.writeBigUInt64BE(BigInt(bytes));
  s.write(size);
  await bounded(done, timeoutMs, 'bulk download');
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  return bytes / MiB / secs;
}

function drainedOrClosed(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}
