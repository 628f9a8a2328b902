import { createHash } from 'node:crypto';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import type { RelayEvents, RelayHandle } from '../../harness/faults/index.js';

export const HOST = '127.0.0.1';

export interface TestServer {
  port: number;
  connections: number;
  stop(): Promise<void>;
}

/** Starts a server on 127.0.0.1:0 whose connections are handled by `onConn`; stop() destroys them all. */
export async function startServer(onConn: (s: Socket) => void): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
    handle.connections++;
    onConn(s);
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, HOST, () => res());
  });
  const handle: TestServer = {
    port: (server.address() as AddressInfo).port,
    connections: 0,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
  return handle;
}

/** Echo: writes back what it reads; half-closes when the client does. */
export function echoServer(): Promise<TestServer> {
  return startServer((s) => {
    s.setNoDelay(true);
    s.pipe(s);
  });
}

/** Sink: hashes what it reads; on the client's FIN answers the byte count and sha256, then ends. */
export function sinkServer(): Promise<TestServer> {
  return startServer((s) => {
    const hash = createHash('sha256');
    let n = 0;
    s.on('data', (c: Buffer) => {
      n += c.length;
      hash.update(c);
    });
    s.on('end', () => s.end(`${n} ${hash.digest('hex')}`));
  });
}

/** Source: on connect sends `payload` and half-closes. */
export function sourceServer(payload: Buffer): Promise<TestServer> {
  return startServer((s) => {
    s.setNoDelay(true);
    s.end(payload);
    s.resume();
  });
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Connects to 127.0.0.1:port; rejects on error. */
export function dial(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: HOST, port, noDelay: true, allowHalfOpen: true });
    s.once('error', reject);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

import { within } from '../helpers/within.js';

export { within };

/** Resolves 'quiet' when the socket sends no data for `ms`, or 'data' / 'closed' when it does / closes. */
export function quietFor(s: Socket, ms: number): Promise<'quiet' | 'data' | 'closed'> {
  return new Promise((resolve) => {
    const done = (v: 'quiet' | 'data' | 'closed') => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      resolve(v);
    };
    const onData = () => done('data');
    const onClose = () => done('closed');
    const timer = setTimeout(() => done('quiet'), ms);
    s.on('data', onData);
    s.on('close', onClose);
  });
}

/** Reads until the peer half-closes (or the socket closes); resolves the bytes and the chunk count. */
export function readAll(
  s: Socket,
): Promise<{ data: Buffer; chunks: number; endedAt: number; lastDataAt: number }> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let lastDataAt = 0;
    s.on('data', (c: Buffer) => {
      parts.push(c);
      lastDataAt = performance.now();
    });
    s.once('error', reject);
    const done = () =>
      resolve({ data: Buffer.concat(parts), chunks: parts.length, endedAt: performance.now(), lastDataAt });
    s.once('end', done);
    s.once('close', done);
  });
}

/** One request/response round trip on an echo connection: ms until `msg.length` bytes came back. */
export function roundTrip(s: Socket, msg: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let got = 0;
    const onData = (c: Buffer) => {
      got += c.length;
      if (got >= msg.length) {
        s.off('data', onData);
        s.off('error', reject);
        resolve(performance.now() - t0);
      }
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(msg);
  });
}

/** The next relay event of a type (matching `pred`), bounded. */
export function nextEvent<K extends keyof RelayEvents & string>(
  relay: RelayHandle,
  type: K,
  ms: number,
  pred: (d: RelayEvents[K]) => boolean = () => true,
): Promise<RelayEvents[K] & { at: number }> {
  return within(
    new Promise((resolve) => {
      const on = (d: RelayEvents[K]) => {
        if (!pred(d)) return;
        relay.events.off(type, on as (...a: unknown[]) => void);
        resolve({ ...(d as object), at: performance.now() } as RelayEvents[K] & { at: number });
      };
      relay.events.onEvent(type, on);
    }),
    ms,
    `relay event ${type}`,
  );
}
