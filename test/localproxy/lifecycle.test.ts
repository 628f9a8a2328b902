import { CloseTunnelCommand } from '@aws-sdk/client-iotsecuretunneling';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { localproxyCommand } from '../../harness/localproxy/cli.js';
import type { LocalProxyExit, LocalProxyHandle } from '../../harness/localproxy/index.js';
import {
  CLIENT_TOKEN_DST,
  CLIENT_TOKEN_SRC,
  Cleanup,
  dial,
  dropRelay,
  echoRoundTrip,
  echoServer,
  nextEvent,
  openTunnel,
  proxy,
  readN,
  startService,
  tcpServer,
  within,
} from './helpers.js';

const c = new Cleanup();
afterEach(() => c.run());

function connectedAgain(h: LocalProxyHandle): Promise<unknown> {
  return within(
    new Promise((r) => h.events.onEvent('connected', (e) => e.reconnect && r(e))),
    5000,
    'a reconnect',
  );
}

describe('localproxy lifecycle', () => {
  it('reconnects with the same token and client token after a drop; the tunnel keeps working', async () => {
    const s = await startService(c);
    const t = await openTunnel(s);
    const echo = await echoServer(c);
    const relay = await dropRelay(c, s.data);
    const endpoint = `ws://${relay.endpoint}`;
    const dst = await proxy(c, {
      mode: 'destination',
      accessToken: t.destination,
      clientToken: CLIENT_TOKEN_DST,
      endpoint,
      destinationApp: `127.0.0.1:${echo.port}`,
    });
    const src = await proxy(c, {
      mode: 'source',
      accessToken: t.source,
      clientToken: CLIENT_TOKEN_SRC,
      endpoint,
      sourceListenPort: '0',
    });
    const port = src.listeners[0]?.port as number;
    const [a, b] = await echoRoundTrip(port, 64 * 1024);
    expect(b).toBe(a);

    const live = await dial(port);
    const lost = new Promise((r) => live.once('close', r));
    const reconnecting = nextEvent<{ reason: string }>(src.events, 'reconnecting');
    const srcBack = connectedAgain(src);
    const dstBack = connectedAgain(dst);
    relay.dropAll();
    expect((await reconnecting).reason).toMatch(/without a close frame/);
    await Promise.all([srcBack, dstBack]);
    // The connection that was in the tunnel is gone; the listener and the tunnel are not.
    await within(lost, 5000, 'the old connection to close');
    expect(src.listeners[0]?.port).toBe(port);
    const [x, y] = await echoRoundTrip(port, 128 * 1024);
    expect(y).toBe(x);
    expect(src.stats().connects).toBe(2);
    expect(src.stats().state).toBe('connected');
    expect(relay.accepted()).toBe(4);
  });

  it('a connection accepted while reconnecting waits for the new session, then goes through', async () => {
    const s = await startService(c);
    const t = await openTunnel(s);
    const echo = await echoServer(c);
    const relay = await dropRelay(c, s.data);
    await proxy(c, {
      mode: 'destination',
      accessToken: t.destination,
      clientToken: CLIENT_TOKEN_DST,
      endpoint: `ws://${s.data}`,
      destinationApp: `127.0.0.1:${echo.port}`,
    });
    const src = await proxy(c, {
      mode: 'source',
      accessToken: t.source,
      clientToken: CLIENT_TOKEN_SRC,
      endpoint: `ws://${relay.endpoint}`,
      sourceListenPort: '0',
      retryDelayMs: 30,
      maxRetries: 100,
    });
    const failures: string[] = [];
    src.events.onEvent('reconnecting', (e) => failures.push(e.reason));
    relay.refuse(true);
    relay.dropAll();
    // Down: the first attempt after the drop is refused, so the service is unreachable for a while.
    await vi.waitFor(() => expect(failures.length).toBeGreaterThanOrEqual(2), {
      timeout: 3000,
      interval: 10,
    });
    const port = src.listeners[0]?.port as number;
    const sock = await dial(port);
    const back = readN(sock, 5);
    sock.write('queue');
    expect(src.stats().state).toBe('reconnecting');
    const up = connectedAgain(src);
    relay.refuse(false);
    await up;
    expect((await back).toString()).toBe('queue');
    sock.destroy();
  });

  it('without a client token, the reconnect is refused (403 token used) and the localproxy ends', async () => {
    const s = await startService(c);
    const t = await openTunnel(s);
    const relay = await dropRelay(c, s.data);
    const src = await proxy(c, {
      mode: 'source',
      accessToken: t.source,
      endpoint: `ws://${relay.endpoint}`,
      sourceListenPort: '0',
    });
    relay.dropAll();
    const exit = await within(src.done, 5000, 'the localproxy to end');
    expect(exit).toMatchObject({
      reason: 'handshake-rejected',
      code: 'E_TUNNEL_TOKEN_USED',
      status: 403,
      failureClass: 'tunnel.token-used',
    });
    expect(exit.message).toMatch(/HTTP 403.*tunnel\.token-used/);
    expect(src.stats().state).toBe('closed');
  });

  it('CLI: reusing a used token exits non-zero naming the 403 and tunnel.token-used', async () => {
    const s = await startService(c);
    const t = await openTunnel(s);
    await proxy(c, {
      mode: 'source',
      accessToken: t.source,
      endpoint: `ws://${s.data}`,
      sourceListenPort: '0',
    });
    const lines: string[] = [];
    const code = await within(
      localproxyCommand(['-e', `ws://${s.data}`, '-s', '0', '--max-retries', '0'], {
        env: { AWSIOT_TUNNEL_ACCESS_TOKEN: t.source },
        log: (l) => lines.push(l),
      }),
      5000,
      'the CLI',
    );
    expect(code).toBe(1);
    const out = lines.join('\n');
    expect(out).toMatch(/HTTP 403/);
    expect(out).toMatch(/tunnel\.token-used/);
    expect(out).toMatch(/client token/);
  });

  it('CLI: bad options exit 2 with a clear message', async () => {
    const lines: string[] = [];
    const code = await localproxyCommand(['-t', 'x', '-e', '127.0.0.1:1'], {
      env: {},
      log: (l) => lines.push(l),
    });
    expect(code).toBe(2);
    expect(lines.join('\n')).toMatch(/mode/);
    expect(await localproxyCommand(['--bogus'], { env: {}, log: () => {} })).toBe(2);
    lines.length = 0;
    expect(
      await localproxyCommand(['-s', '0', '-e', '127.0.0.1:1'], { env: {}, log: (l) => lines.push(l) }),
    ).toBe(2);
    expect(lines.join('\n')).toMatch(/AWSIOT_TUNNEL_ACCESS_TOKEN/);
  });

  it('a close frame (CloseTunnel) ends both localproxies; the CLI exits 0', async () => {
    const s = await startService(c);
    const t = await openTunnel(s);
    const echo = await echoServer(c);
    const dst = await proxy(c, {
      mode: 'destination',
      accessToken: t.destination,
      endpoint: `ws://${s.data}`,
      destinationApp: `${echo.port}`,
    });
    let onStarted!: (h: LocalProxyHandle) => void;
    const startedP = new Promise<LocalProxyHandle>((r) => {
      onStarted = r;
    });
    const cli = localproxyCommand(['-t', t.source, '-e', `ws://${s.data}`, '-s', '0', '-m', 'src'], {
      env: {},
      log: () => {},
      onStarted,
    });
    const started = await within(startedP, 5000, 'the CLI to start');
    const [a, b] = await echoRoundTrip(started.listeners[0]?.port as number, 4096);
    expect(b).toBe(a);
    await s.sdk.send(new CloseTunnelCommand({ tunnelId: t.tunnelId }));
    const exit: LocalProxyExit = await within(dst.done, 5000, 'the destination to end');
    expect(exit).toMatchObject({ reason: 'close-frame', closeCode: 1000, failureClass: 'tunnel.closed' });
    expect(await within(cli, 5000, 'the CLI to end')).toBe(0);
  });

  it('pings the service every pingIntervalMs and counts the pongs', async () => {
    const s = await startService(c);
    const t = await openTunnel(s);
    const src = await proxy(c, {
      mode: 'source',
      accessToken: t.source,
      endpoint: `ws://${s.data}`,
      sourceListenPort: '0',
      pingIntervalMs: 25,
    });
    await vi.waitFor(() => expect(src.stats().pongs).toBeGreaterThanOrEqual(2), {
      timeout: 3000,
      interval: 20,
    });
    expect(src.stats().pings).toBeGreaterThanOrEqual(src.stats().pongs);
  });

  it('a 5xx handshake is retried every retryDelayMs, then given up (bounded)', async () => {
    let attempts = 0;
    const { port } = await tcpServer(c, (sock) => {
      attempts++;
      sock.once('data', () =>
        sock.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy'),
      );
    });
    const t0 = Date.now();
    const err = await proxy(c, {
      mode: 'source',
      accessToken: 'tok',
      endpoint: `ws://127.0.0.1:${port}`,
      sourceListenPort: '0',
      retryDelayMs: 100,
      maxRetries: 2,
    }).catch((e: unknown) => e as { code?: string; message: string });
    expect(attempts).toBe(3);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(180);
    expect(err).toMatchObject({ code: 'E_TUNNEL_HANDSHAKE_5XX' });
    expect((err as Error).message).toMatch(/gave up after 3 .*HTTP 503/);
  });
});
