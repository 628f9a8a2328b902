import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { EnvHttpProxyAgent, fetch } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ConnectProxyHandle, start } from '../../simulators/connect-proxy/index.js';
import { httpsText, makeCert, nextEvent, startHttpsTarget, type Target, type TestCert } from './helpers.js';

const CREDS = { username: 'edge', password: 'p@ss:w/ord' };

/** A raw CONNECT; resolves with the response head and the open socket. */
function rawConnect(port: number, target: string, auth?: string): Promise<{ head: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const authLine = auth ? `Proxy-Authorization: Basic ${Buffer.from(auth).toString('base64')}\r\n` : '';
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${authLine}\r\n`);
    let buf = '';
    const timer = setTimeout(() => reject(new Error('no CONNECT answer')), 5000);
    socket.on('data', function onData(c: Buffer) {
      buf += c.toString('latin1');
      if (buf.includes('\r\n\r\n')) {
        clearTimeout(timer);
        socket.off('data', onData);
        resolve({ head: buf, socket });
      }
    });
    socket.on('error', reject);
  });
}

describe('connect-proxy with Node clients', () => {
  let cert: TestCert;
  let tls: Target;
  const started: ConnectProxyHandle[] = [];
  const cleanups: Array<() => void | Promise<void>> = [];

  beforeAll(async () => {
    cert = makeCert();
    tls = await startHttpsTarget(cert);
  });
  afterAll(async () => {
    await tls.stop();
    cert.cleanup();
  });
  afterEach(async () => {
    for (const h of started.splice(0)) await h.stop();
    for (const c of cleanups.splice(0)) await c();
  });

  async function proxy(o: Parameters<typeof start>[0] = {}) {
    const h = await start(o);
    started.push(h);
    return h;
  }
  const hub = () => ({ 'iothub.lab.example:443': `127.0.0.1:${tls.port}` });

  it('serves https.get through https-proxy-agent with URL-form credentials', async () => {
    const p = await proxy({ auth: 'http://edge:p%40ss%3Aw%2Ford@127.0.0.1:3128', map: hub() });
    const agent = new HttpsProxyAgent(p.proxyUrl(CREDS));
    cleanups.push(() => agent.destroy());
    const body = await httpsText('https://iothub.lab.example/agent', { agent, ca: cert.certPem });
    expect(body).toBe('tls target says /agent (host: iothub.lab.example)');
    expect(p.stats()).toMatchObject({ allowed: 1, authFailures: 0 });
  });

  it('serves undici EnvHttpProxyAgent reading HTTPS_PROXY from an env object', async () => {
    const p = await proxy({ auth: { users: [CREDS] }, map: hub() });
    const env: Record<string, string> = { HTTPS_PROXY: p.proxyUrl(CREDS), NO_PROXY: '' };
    const dispatcher = new EnvHttpProxyAgent({
      httpsProxy: env.HTTPS_PROXY,
      noProxy: env.NO_PROXY,
      requestTls: { ca: cert.certPem },
    });
    cleanups.push(() => dispatcher.close());
    const allowed = nextEvent(p.events, 'connect-allowed');
    const res = await fetch('https://iothub.lab.example/undici', { dispatcher });
    expect(await res.text()).toBe('tls target says /undici (host: iothub.lab.example)');
    expect(await allowed).toMatchObject({ target: 'iothub.lab.example:443', method: 'CONNECT' });
  });

  it('chains through a second instance that holds the credentials, policy and map', async () => {
    const inner = await proxy({ name: 'inner', auth: { users: [CREDS] }, map: hub() });
    const outer = await proxy({ name: 'outer', upstream: inner.proxyUrl(CREDS) });
    const innerAllowed = nextEvent(inner.events, 'connect-allowed');
    const outerAllowed = nextEvent(outer.events, 'connect-allowed');
    const agent = new HttpsProxyAgent(outer.proxyUrl());
    cleanups.push(() => agent.destroy());
    const body = await httpsText('https://iothub.lab.example/chain', { agent, ca: cert.certPem });
    expect(body).toBe('tls target says /chain (host: iothub.lab.example)');
    expect(await outerAllowed).toMatchObject({
      target: 'iothub.lab.example:443',
      upstream: `http://***@${inner.endpoints[0]!.host}:${inner.endpoints[0]!.port}`,
    });
    expect((await innerAllowed).mappedTarget).toBe(`127.0.0.1:${tls.port}`);
  });

  it('goes direct for hosts an upstream rule exempts', async () => {
    const inner = await proxy({ name: 'inner' });
    const outer = await proxy({
      name: 'outer',
      upstream: inner.proxyUrl(),
      upstreamRules: [{ hosts: ['*.direct.example'], upstream: null }],
      map: { 'hub.direct.example:443': `127.0.0.1:${tls.port}` },
    });
    const agent = new HttpsProxyAgent(outer.proxyUrl());
    cleanups.push(() => agent.destroy());
    const body = await httpsText('https://hub.direct.example/d', {
      agent,
      ca: cert.certPem,
      servername: 'lab.example',
    });
    expect(body).toBe('tls target says /d (host: hub.direct.example)');
    expect(inner.stats().connections).toBe(0);
    expect(outer.stats().allowed).toBe(1);
  });

  it('answers 502 when the upstream proxy refuses our credentials, and 504 when it is silent', async () => {
    const inner = await proxy({ auth: { users: [CREDS] } });
    const wrong = await proxy({ upstream: inner.proxyUrl({ username: 'edge', password: 'bad' }) });
    const err = nextEvent(wrong.events, 'upstream-error');
    const r = await rawConnect(wrong.endpoints[0]!.port, 'iothub.lab.example:443');
    r.socket.destroy();
    expect(r.head).toMatch(/^HTTP\/1\.1 502 /);
    expect(await err).toMatchObject({ code: 'E_UPSTREAM_407', status: 502 });

    const silent = createServer(() => {});
    const held = new Set<Socket>();
    silent.on('connection', (s) => held.add(s));
    await new Promise<void>((res) => silent.listen(0, '127.0.0.1', res));
    cleanups.push(
      () =>
        new Promise<void>((res) => {
          for (const s of held) s.destroy();
          silent.close(() => res());
        }),
    );
    const port = (silent.address() as AddressInfo).port;
    const slow = await proxy({ upstream: `http://127.0.0.1:${port}`, connectTimeoutMs: 300 });
    const timeout = nextEvent(slow.events, 'upstream-error');
    const t = await rawConnect(slow.endpoints[0]!.port, 'iothub.lab.example:443');
    t.socket.destroy();
    expect(t.head).toMatch(/^HTTP\/1\.1 504 /);
    expect(await timeout).toMatchObject({ code: 'ETIMEDOUT', status: 504 });
  });

  it('keeps serving a good client while another sends garbage', async () => {
    const p = await proxy({ map: hub() });
    const malformed = nextEvent(p.events, 'connect-denied');
    const port = p.endpoints[0]!.port;
    const garbage = connect(port, '127.0.0.1');
    const garbageClosed = new Promise<string>((res) => {
      let got = '';
      garbage.on('data', (c: Buffer) => {
        got += c.toString('latin1');
      });
      garbage.on('close', () => res(got));
      garbage.on('error', () => {});
    });
    garbage.write(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a]));
    const good = rawConnect(port, 'iothub.lab.example:443');
    const agent = new HttpsProxyAgent(p.proxyUrl());
    cleanups.push(() => agent.destroy());
    const [body, g, gone] = await Promise.all([
      httpsText('https://iothub.lab.example/good', { agent, ca: cert.certPem }),
      good,
      garbageClosed,
    ]);
    g.socket.destroy();
    const bad = await rawConnect(port, 'no-port-here');
    bad.socket.destroy();
    expect(bad.head).toMatch(/^HTTP\/1\.1 400 /);
    expect(body).toBe('tls target says /good (host: iothub.lab.example)');
    expect(g.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(gone).toMatch(/^HTTP\/1\.1 400 /);
    expect(await malformed).toMatchObject({ target: 'no-port-here', rule: 'malformed', status: 400 });
  });

  it('stop() destroys an open tunnel and its destination socket', async () => {
    const p = await proxy({ map: hub() });
    const port = p.endpoints[0]!.port;
    const { head, socket } = await rawConnect(port, 'iothub.lab.example:443');
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    expect(p.stats().active).toBe(1);
    const clientClosed = new Promise<void>((res) => socket.once('close', () => res()));
    socket.on('error', () => {});
    const closedEvent = nextEvent(p.events, 'closed');
    await p.stop();
    await clientClosed;
    expect((await closedEvent).target).toBe('iothub.lab.example:443');
    expect(p.stats().active).toBe(0);
    // The listener is gone: a new connection is refused.
    const refused = await new Promise<string>((res) => {
      const s = connect(port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        res('connected');
      });
      s.on('error', (e: NodeJS.ErrnoException) => res(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    await p.stop(); // idempotent
  });
});
