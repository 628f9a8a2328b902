import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SUBPROTOCOLS } from '../../harness/localproxy/index.js';
import { MessageType } from '../../simulators/tunnel-service/index.js';
import { connect as connectRaw } from '../helpers/tunnel.js';
import {
  Cleanup,
  dial,
  echoRoundTrip,
  echoServer,
  nextEvent,
  openTunnel,
  proxy,
  readN,
  sha256,
  startService,
  within,
} from './helpers.js';

const MB = 1 << 20;
const V3 = SUBPROTOCOLS[3];
/** The subprotocol a test pairs with a `-y` format, to act as a client of that version. */
const subprotocolOf = (v: 'V1' | 'V2' | 'V3') => Number(v[1]) as 1 | 2 | 3;
const c = new Cleanup();
/** Protocol versions the service negotiated, in connection order (reset per test). */
let protocols: number[] = [];
afterEach(async () => {
  await c.run();
  protocols = [];
});

/** Service + destination localproxy (→ echo) + source localproxy, for one protocol version. */
async function pair(version: 'V1' | 'V2' | 'V3', services = ['SSH']) {
  const s = await startService(c);
  s.svc.events.onEvent('peer-connected', (e) => protocols.push(e.protocol));
  const t = await openTunnel(s, services);
  const echo = await echoServer(c);
  const endpoint = `ws://${s.data}`;
  const dst = await proxy(c, {
    mode: 'destination',
    accessToken: t.destination,
    endpoint,
    destinationApp: `127.0.0.1:${echo.port}`,
    destinationClientType: version,
    subprotocol: subprotocolOf(version),
  });
  const src = await proxy(c, {
    mode: 'source',
    accessToken: t.source,
    endpoint,
    sourceListenPort: '0',
    destinationClientType: version,
    subprotocol: subprotocolOf(version),
  });
  return { s, t, src, dst, port: src.listeners[0]?.port as number };
}

describe('localproxy relay through the lab tunnel service', () => {
  it.each(['V1', 'V2', 'V3'] as const)('%s: carries 1 MB through a TCP echo intact', async (version) => {
    const { s, src, dst, port } = await pair(version);
    expect(src.listeners).toEqual([{ serviceId: version === 'V1' ? '' : 'SSH', host: '127.0.0.1', port }]);
    const [sent, got] = await echoRoundTrip(port, MB);
    expect(got).toBe(sent);
    expect(src.stats().bytesToService).toBe(MB);
    expect(src.stats().bytesFromService).toBe(MB);
    expect(dst.stats().bytesFromService).toBe(MB);
    expect(s.svc.stats().violations).toBe(0);
    // Batching: fewer WebSocket messages than 63 KiB payloads would need one each, never more.
    expect(src.stats().wsMessagesOut).toBeLessThanOrEqual(src.stats().tunnelMessagesOut);
    expect(src.stats().connects).toBe(1);
    // The subprotocol asked for is the one the service negotiated, on both sides.
    expect(protocols).toEqual([subprotocolOf(version), subprotocolOf(version)]);
  });

  // The C++ localproxy's backward-compatible use (its README, example 3): `-s 5555` / `-d 22` with no
  // service id, on a tunnel opened without services or with several.
  it.each([
    ['V2', []],
    ['V3', []],
    ['V3', ['SSH', 'HTTP']],
  ] as const)('%s, tunnel services %j: unnamed -s and -d carry data', async (version, services) => {
    const { s, src, port } = await pair(version, [...services]);
    expect(src.listeners).toEqual([{ serviceId: '', host: '127.0.0.1', port }]);
    const starts: string[] = [];
    s.svc.events.onEvent('stream-start', (e) => starts.push(e.serviceId));
    const [sent, got] = await echoRoundTrip(port, 64 * 1024);
    expect(got).toBe(sent);
    expect(starts).toEqual(['']);
    expect(s.svc.stats().violations).toBe(0);
  });

  it('a source without -s listens on a free port for each of the tunnel services, as localproxy', async () => {
    const s = await startService(c);
    const t = await openTunnel(s, ['ssh', 'http']);
    const ssh = await echoServer(c, 'SSH-APP');
    const http = await echoServer(c, 'HTTP-APP');
    const endpoint = `ws://${s.data}`;
    await proxy(c, {
      mode: 'destination',
      accessToken: t.destination,
      endpoint,
      destinationApp: `ssh=${ssh.port},http=${http.port}`,
    });
    const src = await proxy(c, { mode: 'source', accessToken: t.source, endpoint });
    expect(src.listeners.map((l) => l.serviceId).sort()).toEqual(['http', 'ssh']);
    const port = src.listeners.find((l) => l.serviceId === 'http')?.port as number;
    expect(port).toBeGreaterThan(0);
    const sock = await dial(port);
    c.add(() => sock.destroy());
    expect((await readN(sock, 9)).toString()).toBe('HTTP-APP\n');
  });

  it('-y V1 as localproxy: subprotocol 3.0, waits for SERVICE_IDS, STREAM_START without ids', async () => {
    const s = await startService(c);
    s.svc.events.onEvent('peer-connected', (e) => protocols.push(e.protocol));
    const t = await openTunnel(s);
    const dst = await connectRaw(
      { dataUrl: `ws://${s.data}` },
      { mode: 'destination', token: t.destination, protocols: [V3] },
    );
    c.add(() => dst.close());
    expect((await dst.next()).type).toBe(MessageType.SERVICE_IDS);
    const src = await proxy(c, {
      mode: 'source',
      accessToken: t.source,
      endpoint: `ws://${s.data}`,
      sourceListenPort: '0',
      destinationClientType: 'V1',
    });
    expect(src.listeners).toEqual([expect.objectContaining({ serviceId: '' })]); // bound after SERVICE_IDS
    const app = await dial(src.listeners[0]?.port as number);
    c.add(() => app.destroy());
    const start = await dst.next(5000);
    expect(start).toMatchObject({ type: MessageType.STREAM_START, serviceId: '', connectionId: 0 });
    expect(start.streamId).toBeGreaterThan(0);
    expect(protocols).toEqual([3, 3]);
  });

  it('V3: multiplexes two concurrent TCP connections in one stream (CONNECTION_START/RESET)', async () => {
    const { s, src, port } = await pair('V3');
    const starts: Array<{ connectionId: number; streamId: number }> = [];
    src.events.onEvent('stream-start', (e) => starts.push(e));
    const connStarted = nextEvent(s.svc.events, 'connection-start');
    const a = await dial(port);
    const b = await dial(port);
    await connStarted;
    const ra = readN(a, 200_000);
    const rb = readN(b, 200_000);
    a.write(Buffer.alloc(200_000, 0x61));
    b.write(Buffer.alloc(200_000, 0x62));
    const [ba, bb] = await Promise.all([ra, rb]);
    expect(ba.every((x) => x === 0x61)).toBe(true);
    expect(bb.every((x) => x === 0x62)).toBe(true);
    expect(starts.map((e) => e.connectionId)).toEqual([1, 2]);
    expect(new Set(starts.map((e) => e.streamId)).size).toBe(1);
    // Closing one connection resets only it: the other still echoes.
    const reset = nextEvent<{ connectionId: number }>(s.svc.events, 'connection-reset');
    a.destroy();
    expect((await reset).connectionId).toBe(1);
    const again = readN(b, 5);
    b.write('hello');
    expect((await again).toString()).toBe('hello');
    b.destroy();
    expect(s.svc.stats().violations).toBe(0);
  });

  it('V2: a new connection replaces the stream; the previous one is closed', async () => {
    const { s, port } = await pair('V2');
    const a = await dial(port);
    const first = nextEvent<{ streamId: number }>(s.svc.events, 'stream-start');
    a.write('x');
    const s1 = (await first).streamId;
    const closedA = new Promise((r) => a.once('close', r));
    const second = nextEvent<{ streamId: number }>(s.svc.events, 'stream-start');
    const b = await dial(port);
    expect((await second).streamId).not.toBe(s1);
    await closedA;
    const echo = readN(b, 3);
    b.write('abc');
    expect((await echo).toString()).toBe('abc');
    b.destroy();
  });

  it.each(['V2', 'V3'] as const)('%s: several services, each to its own destination app', async (version) => {
    const s = await startService(c);
    const t = await openTunnel(s, ['ssh', 'http']);
    const sshApp = await echoServer(c, 'SSH-APP');
    const httpApp = await echoServer(c, 'HTTP-APP');
    const endpoint = `ws://${s.data}`;
    await proxy(c, {
      mode: 'destination',
      accessToken: t.destination,
      endpoint,
      destinationApp: `ssh=127.0.0.1:${sshApp.port},http=127.0.0.1:${httpApp.port}`,
      destinationClientType: version,
      subprotocol: subprotocolOf(version),
    });
    const src = await proxy(c, {
      mode: 'src',
      accessToken: t.source,
      endpoint,
      sourceListenPort: 'ssh=0,http=0',
      bindAddress: '127.0.0.2',
      destinationClientType: version,
      subprotocol: subprotocolOf(version),
    });
    expect(src.listeners.map((l) => l.host)).toEqual(['127.0.0.2', '127.0.0.2']);
    const byId = new Map(src.listeners.map((l) => [l.serviceId, l.port]));
    expect([...byId.keys()].sort()).toEqual(['http', 'ssh']);
    const [ssh, http] = await Promise.all([
      dial(byId.get('ssh') as number, '127.0.0.2'),
      dial(byId.get('http') as number, '127.0.0.2'),
    ]);
    const [a, b] = await Promise.all([readN(ssh, 8), readN(http, 9)]);
    expect(a.toString()).toBe('SSH-APP\n');
    expect(b.toString()).toBe('HTTP-APP\n');
    const [sent, got] = await echoRoundTrip(byId.get('http') as number, 256 * 1024, 9, '127.0.0.2');
    expect(got).toBe(sent);
    ssh.destroy();
    http.destroy();
  });

  it('backpressure: a stalled app pauses the WebSocket, a full WebSocket pauses the local socket', async () => {
    const s = await startService(c);
    const t = await openTunnel(s);
    let onApp!: (sock: Socket) => void;
    const appConn = new Promise<Socket>((r) => {
      onApp = r;
    });
    const app = createServer((sock) => {
      sock.pause(); // the app does not read yet
      onApp(sock);
    });
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    c.add(() => new Promise<void>((r) => app.close(() => r())));
    const endpoint = `ws://${s.data}`;
    const dst = await proxy(c, {
      mode: 'destination',
      accessToken: t.destination,
      endpoint,
      destinationApp: `127.0.0.1:${(app.address() as { port: number }).port}`,
    });
    const src = await proxy(c, {
      mode: 'source',
      accessToken: t.source,
      endpoint,
      sourceListenPort: '0',
      highWaterMark: 256 * 1024,
    });
    const client = await dial(src.listeners[0]?.port as number);
    c.add(() => client.destroy());
    // About 16 MB fill the kernel buffers and the service queue on the way here; 32 MB leave margin.
    const data = randomBytes(32 * MB);
    client.write(data);
    const sock = await within(appConn, 5000, 'the app connection');
    c.add(() => sock.destroy());
    await vi.waitFor(() => expect(dst.stats().localWritesBlocked).toBe(1), { timeout: 10_000, interval: 50 });
    await vi.waitFor(() => expect(src.stats().localReadsPaused).toBe(1), { timeout: 10_000, interval: 50 });
    expect(src.stats().bytesToService).toBeLessThan(data.length);
    // The app reads again: everything arrives, in order.
    const all = readN(sock, data.length, 15_000);
    sock.resume();
    expect(sha256(await all)).toBe(sha256(data));
    expect(src.stats().localReadsPaused).toBe(0);
  });

  it('destination: a stream for a service without -d is reset; the source connection closes', async () => {
    const s = await startService(c);
    const t = await openTunnel(s, ['ssh', 'http']);
    const sshApp = await echoServer(c);
    const endpoint = `ws://${s.data}`;
    const dst = await proxy(c, {
      mode: 'destination',
      accessToken: t.destination,
      endpoint,
      destinationApp: `ssh=127.0.0.1:${sshApp.port}`,
    });
    const src = await proxy(c, {
      mode: 'source',
      accessToken: t.source,
      endpoint,
      sourceListenPort: 'ssh=0,http=0',
      zeroMask: false, // random masking keys, as the AWS localproxy
    });
    const http = await dial(src.listeners.find((l) => l.serviceId === 'http')?.port as number);
    const closed = new Promise((r) => http.once('close', r));
    const warned = nextEvent<{ message: string }>(dst.events, 'warning');
    http.write('GET / HTTP/1.0\r\n\r\n');
    expect((await warned).message).toMatch(/no destination \(-d\) for service "http"/);
    await within(closed, 5000, 'the source connection to close');
    const [a, b] = await echoRoundTrip(
      src.listeners.find((l) => l.serviceId === 'ssh')?.port as number,
      64 * 1024,
    );
    expect(b).toBe(a);
  });

  it('source waits for SERVICE_IDS and refuses a -s id the tunnel lacks when nothing else matches', async () => {
    const s = await startService(c);
    const t = await openTunnel(s, ['SSH']);
    const err = await proxy(c, {
      mode: 'source',
      accessToken: t.source,
      endpoint: `ws://${s.data}`,
      sourceListenPort: 'rdp=0',
    }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('E_LOCALPROXY_SERVICE_MAPPING');
  });
});
