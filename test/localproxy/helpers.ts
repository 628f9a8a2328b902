import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { IoTSecureTunnelingClient } from '@aws-sdk/client-iotsecuretunneling';
import {
  type LocalProxyHandle,
  type LocalProxyOptions,
  startLocalProxy,
} from '../../harness/localproxy/index.js';
import { endpointOf } from '../../simulators/common/handle.js';
import {
  start,
  type TunnelServiceHandle,
  type TunnelServiceOptions,
} from '../../simulators/tunnel-service/index.js';
import { openTunnelWith, tunnelSdk } from '../helpers/tunnel.js';

export const CLIENT_TOKEN_SRC = `src-${'a'.repeat(32)}`;
export const CLIENT_TOKEN_DST = `dst-${'b'.repeat(32)}`;

import { within } from '../helpers/within.js';

export { within };

/** Stops everything registered, last first (afterEach). */
export class Cleanup {
  private readonly fns: Array<() => unknown> = [];
  add(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.fns.splice(0).reverse()) await fn();
  }
}

export interface Service {
  svc: TunnelServiceHandle;
  sdk: IoTSecureTunnelingClient;
  /** `host:port` of the data plane (for -e). */
  data: string;
}

export async function startService(c: Cleanup, options: TunnelServiceOptions = {}): Promise<Service> {
  const svc = await start(options);
  const sdk = tunnelSdk(endpointOf(svc, 'api').url as string);
  c.add(async () => {
    sdk.destroy();
    await svc.stop();
  });
  const d = endpointOf(svc, 'data');
  return { svc, sdk, data: `${d.host}:${d.port}` };
}

export function openTunnel(s: Service, services = ['SSH']) {
  return openTunnelWith(s.sdk, services, 'thing-1');
}

/** Starts a localproxy and registers its stop. */
export async function proxy(c: Cleanup, o: LocalProxyOptions): Promise<LocalProxyHandle> {
  const h = await within(startLocalProxy({ retryDelayMs: 50, maxRetries: 3, ...o }), 5000, 'the localproxy');
  c.add(() => h.stop());
  return h;
}

/**
 * A TCP server on 127.0.0.1 whose sockets (each accepted one, and any `track` adds) are destroyed and the
 * server closed by `c`; socket errors are the test's to observe, never unhandled.
 */
export async function tcpServer(
  c: Cleanup,
  onSocket: (s: Socket, track: (s: Socket) => void) => void,
): Promise<{ port: number; server: Server }> {
  const sockets = new Set<Socket>();
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };
  const server = createServer((s) => {
    track(s);
    onSocket(s, track);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  c.add(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as { port: number }).port, server };
}

/** A TCP echo server on 127.0.0.1 (optionally tagging its answers to tell services apart). */
export function echoServer(c: Cleanup, tag?: string): Promise<{ port: number; server: Server }> {
  return tcpServer(c, (s) => {
    if (tag) s.write(`${tag}\n`);
    s.pipe(s);
  });
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Opens a TCP connection (bounded). */
export async function dial(port: number, host = '127.0.0.1'): Promise<Socket> {
  const s = connect({ host, port });
  s.on('error', () => {});
  await within(once(s, 'connect'), 3000, `TCP connect to ${port}`);
  return s;
}

/** Reads exactly n bytes from s (bounded). */
export function readN(s: Socket, n: number, ms = 10_000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return within(
    new Promise<Buffer>((resolve, reject) => {
      const onData = (b: Buffer) => {
        chunks.push(b);
        got += b.length;
        if (got >= n) {
          s.off('data', onData);
          s.off('close', onClose);
          resolve(Buffer.concat(chunks).subarray(0, n));
        }
      };
      const onClose = () => reject(new Error(`closed after ${got} of ${n} bytes`));
      s.on('data', onData);
      s.once('close', onClose);
    }),
    ms,
    `${n} bytes`,
  );
}

/** Sends `size` random bytes through an echo at `port` and returns [sent checksum, received checksum]. */
export async function echoRoundTrip(
  port: number,
  size: number,
  skipHeader = 0,
  host = '127.0.0.1',
): Promise<[string, string]> {
  const s = await dial(port, host);
  try {
    const data = randomBytes(size);
    const reading = readN(s, size + skipHeader);
    s.write(data);
    const back = (await reading).subarray(skipHeader);
    return [sha256(data), sha256(back)];
  } finally {
    s.destroy();
  }
}

/** Waits for a typed event (bounded). */
export function nextEvent<T>(
  emitter: { once(type: string, fn: (d: T) => void): unknown },
  type: string,
  ms = 5000,
): Promise<T> {
  return within(new Promise<T>((r) => emitter.once(type, r)), ms, `event ${type}`);
}

/** A TCP relay whose connections can be dropped at once (a middlebox losing state). */
export async function dropRelay(
  c: Cleanup,
  target: string,
): Promise<{ endpoint: string; dropAll(): void; accepted(): number; refuse(on: boolean): void }> {
  const [host, port] = [
    target.slice(0, target.lastIndexOf(':')),
    Number(target.slice(target.lastIndexOf(':') + 1)),
  ];
  const pairs = new Set<[Socket, Socket]>();
  let accepted = 0;
  let refusing = false;
  const server = createServer((a) => {
    accepted++;
    if (refusing) {
      a.resetAndDestroy();
      return;
    }
    const b = connect({ host, port });
    const pair: [Socket, Socket] = [a, b];
    pairs.add(pair);
    const done = () => {
      a.destroy();
      b.destroy();
      pairs.delete(pair);
    };
    a.on('error', done).on('close', done);
    b.on('error', done).on('close', done);
    a.pipe(b);
    b.pipe(a);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const dropAll = () => {
    for (const [a, b] of pairs) {
      // RST, no FIN: the peers see a drop, not a close frame.
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    pairs.clear();
  };
  c.add(
    () =>
      new Promise<void>((r) => {
        dropAll();
        server.close(() => r());
      }),
  );
  return {
    endpoint: `127.0.0.1:${(server.address() as { port: number }).port}`,
    dropAll,
    accepted: () => accepted,
    /** While on, new connections are reset at once (the service looks down). */
    refuse: (on) => {
      refusing = on;
    },
  };
}
