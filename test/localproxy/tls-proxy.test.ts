import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { localproxyCommand } from '../../harness/localproxy/cli.js';
import { type LocalProxyHandle, startLocalProxy } from '../../harness/localproxy/index.js';
import { start as startConnectProxy } from '../../simulators/connect-proxy/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import {
  Cleanup,
  echoRoundTrip,
  echoServer,
  nextEvent,
  openTunnel,
  proxy,
  type Service,
  startService,
  within,
} from './helpers.js';

const c = new Cleanup();
afterEach(() => c.run());

let pki: PkiHandle;
let tlsOpts: { certPem: string; keyPem: string };
beforeAll(async () => {
  pki = await startPki();
  const leaf = await pki.issueServer(['127.0.0.1', 'tunnel.lab.example']);
  tlsOpts = { certPem: leaf.chainPem, keyPem: leaf.keyPem };
});
afterAll(() => pki?.stop());

/** A TLS tunnel service with a tunnel and a destination localproxy (trusting the lab CA) to an echo. */
async function tlsLab(): Promise<{ s: Service; source: string; port: number }> {
  const s = await startService(c, { tls: tlsOpts });
  const t = await openTunnel(s);
  const echo = await echoServer(c);
  await proxy(c, {
    mode: 'destination',
    accessToken: t.destination,
    endpoint: s.data,
    caPath: pki.trust.hashDir,
    destinationApp: `127.0.0.1:${echo.port}`,
  });
  return { s, source: t.source, port: Number(s.data.split(':')[1]) };
}

describe('localproxy TLS and HTTPS_PROXY', () => {
  it('-c: trusts the CAs of a rehashed directory (wss, TLS 1.2+)', async () => {
    const { s, source } = await tlsLab();
    const src = await proxy(c, {
      mode: 'source',
      accessToken: source,
      endpoint: s.data,
      caPath: pki.trust.hashDir,
      sourceListenPort: '0',
    });
    const [a, b] = await echoRoundTrip(src.listeners[0]?.port as number, 256 * 1024);
    expect(b).toBe(a);
  });

  it('without the CA the TLS failure is retried, then given up as tls.untrusted-root', async () => {
    const { s, source } = await tlsLab();
    const tlsError = nextEvent(s.svc.events, 'tls-client-error');
    const h = await startLocalProxy(
      {
        mode: 'source',
        accessToken: source,
        endpoint: s.data,
        sourceListenPort: '0',
        retryDelayMs: 20,
        maxRetries: 1,
      },
      { waitReady: false },
    );
    c.add(() => h.stop());
    const reconnecting: Array<{ failureClass?: string; delayMs: number }> = [];
    h.events.onEvent('reconnecting', (e) => reconnecting.push(e));
    const err = await h.ready.catch((e: unknown) => e as { code?: string });
    expect(err).toMatchObject({ code: 'E_TUNNEL_TLS' });
    const exit = await within(h.done, 5000, 'the localproxy to end');
    expect(exit).toMatchObject({ reason: 'retries-exhausted', failureClass: 'tls.untrusted-root' });
    expect(reconnecting).toEqual([
      expect.objectContaining({ failureClass: 'tls.untrusted-root', delayMs: 20 }),
    ]);
    expect(h.listeners).toEqual([]);
    await tlsError;
  });

  it('-k: connects to a service whose certificate it cannot verify', async () => {
    const { s, source } = await tlsLab();
    const lines: string[] = [];
    let onStarted!: (h: LocalProxyHandle) => void;
    const started = new Promise<LocalProxyHandle>((r) => {
      onStarted = r;
    });
    const ac = new AbortController();
    const run = localproxyCommand(['-k', '-t', source, '-e', s.data, '-s', 'SSH=0'], {
      env: {},
      log: (l) => lines.push(l),
      signal: ac.signal,
      onStarted,
    });
    c.add(async () => {
      ac.abort();
      await run;
    });
    const h = await within(started, 5000, 'the CLI to start');
    const [a, b] = await echoRoundTrip(h.listeners[0]?.port as number, 4096);
    expect(b).toBe(a);
    expect(lines.join('\n')).toMatch(/wss:\/\/127\.0\.0\.1:\d+\/tunnel\?local-proxy-mode=source/);
    ac.abort();
    expect(await within(run, 5000, 'the CLI to stop')).toBe(0);
  });

  it('HTTPS_PROXY: goes through an HTTP CONNECT proxy (credentials from the URL)', async () => {
    const { s, source, port } = await tlsLab();
    const cp = await startConnectProxy({
      allowPorts: [port],
      auth: { users: [{ username: 'dev', password: 'p@ss' }] },
    });
    c.add(() => cp.stop());
    const allowed = nextEvent<{ target: string }>(cp.events, 'connect-allowed');
    let onStarted!: (h: LocalProxyHandle) => void;
    const started = new Promise<LocalProxyHandle>((r) => {
      onStarted = r;
    });
    const ac = new AbortController();
    const run = localproxyCommand(['-t', source, '-e', s.data, '-c', pki.trust.hashDir, '-s', '0'], {
      env: { HTTPS_PROXY: cp.proxyUrl({ username: 'dev', password: 'p@ss' }) },
      log: () => {},
      signal: ac.signal,
      onStarted,
    });
    c.add(async () => {
      ac.abort();
      await run;
    });
    const h = await within(started, 5000, 'the CLI to start');
    expect((await allowed).target).toBe(s.data);
    const [a, b] = await echoRoundTrip(h.listeners[0]?.port as number, 128 * 1024);
    expect(b).toBe(a);
  });

  it('HTTPS_PROXY: a denied CONNECT ends it as proxy.connect-denied (not retried)', async () => {
    const { s, source } = await tlsLab();
    const cp = await startConnectProxy({ allowPorts: [443] });
    c.add(() => cp.stop());
    const denied = nextEvent(cp.events, 'connect-denied');
    const err = await proxy(c, {
      mode: 'source',
      accessToken: source,
      endpoint: s.data,
      caPath: pki.trust.hashDir,
      httpsProxy: cp.proxyUrl(),
      sourceListenPort: '0',
    }).catch((e: unknown) => e as { code?: string; message: string });
    await denied;
    expect(err).toMatchObject({ code: 'E_TUNNEL_PROXY' });
    expect((err as Error).message).toMatch(/HTTP 403/);
  });
});
