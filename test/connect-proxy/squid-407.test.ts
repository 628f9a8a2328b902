import { createServer as createHttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SquidHandle, startSquid } from '../../bench/squid.js';
import { type ConnectProxyHandle, start as startProxy } from '../../simulators/connect-proxy/index.js';
import { start as startInspector, type TlsInspectorHandle } from '../../simulators/tls-inspector/index.js';
import { missing } from '../helpers/capability.js';
import {
  basicAuth,
  makeCert,
  RawProxyConnection,
  run,
  startEcho,
  startHttpsTarget,
  type Target,
  type TestCert,
} from './helpers.js';

/**
 * Issue #19: some clients send the authenticated CONNECT on the same socket after a 407. Debian's Squid
 * and the lab proxies are driven by the same raw client, side by side, so the test shows they behave
 * alike: `Proxy-Authenticate` with Squid's casing, `Connection: keep-alive` on HTTP/1.1, the next
 * CONNECT on that connection accepted and tunnelled; on HTTP/1.0 without keep-alive, `Connection: close`.
 */
const USER = { username: 'edge', password: 's3cret:/@' };
const AUTH = basicAuth(USER.username, USER.password);
const REALM = 'corp';

describe.skipIf(missing('cmd:squid', 'cmd:openssl', 'cmd:curl'))('407 as Squid answers it', () => {
  let echo: Target & { accepted: () => number };
  let cert: TestCert;
  let web: Target;
  let squid: SquidHandle;
  let proxy: ConnectProxyHandle;
  let inspector: TlsInspectorHandle;
  const subjects: Record<string, () => number> = {
    squid: () => squid.port,
    'connect-proxy': () => proxy.endpoints[0]!.port,
    // Passthrough: a raw tunnel, so the same echo check applies (interception is not the point here).
    'tls-inspector': () => inspector.endpoints[0]!.port,
  };

  beforeAll(async () => {
    echo = await startEcho();
    cert = makeCert();
    web = await startHttpsTarget(cert);
    const allowPorts = [echo.port, web.port];
    squid = await startSquid({ allowPorts, users: [USER], realm: REALM });
    proxy = await startProxy({ allowPorts, auth: { users: [USER], realm: REALM } });
    inspector = await startInspector({ passthrough: ['*'], auth: { users: [USER], realm: REALM } });
  }, 30_000);
  afterAll(async () => {
    await proxy?.stop();
    await inspector?.stop();
    await squid?.stop();
    await echo?.stop();
    await web?.stop();
    cert?.cleanup();
  });

  const target = () => `127.0.0.1:${echo.port}`;

  it.each(Object.keys(subjects))(
    '%s: 407 kept alive, then the authenticated CONNECT on the same socket tunnels',
    async (name) => {
      const c = await RawProxyConnection.open(subjects[name]!());
      try {
        c.send(`CONNECT ${target()} HTTP/1.1\r\nHost: ${target()}\r\n\r\n`);
        const challenge = await c.response();
        expect(challenge.status).toBe(407);
        // Header names exactly as Squid writes them (RFC 9110 §11.7.1 challenge).
        expect(challenge.lines).toContain(`Proxy-Authenticate: Basic realm="${REALM}"`);
        expect(challenge.lines).toContain('Connection: keep-alive');
        expect(challenge.lines.filter((l) => /^connection:/i.test(l))).toEqual(['Connection: keep-alive']);
        expect(challenge.lines.every((l) => /^[A-Z]/.test(l))).toBe(true);

        c.send(`CONNECT ${target()} HTTP/1.1\r\nHost: ${target()}\r\n${AUTH}\r\n`);
        const ok = await c.response({ tunnel: true });
        expect(ok.status).toBe(200);
        c.send('ping through the tunnel');
        expect(await c.read('ping through the tunnel'.length)).toBe('ping through the tunnel');
      } finally {
        c.destroy();
      }
    },
  );

  it.each(Object.keys(subjects))(
    '%s: wrong credentials, then the right ones, on one socket',
    async (name) => {
      const c = await RawProxyConnection.open(subjects[name]!());
      try {
        c.send(
          `CONNECT ${target()} HTTP/1.1\r\nHost: ${target()}\r\n${basicAuth(USER.username, 'nope')}\r\n`,
        );
        expect((await c.response()).status).toBe(407);
        c.send(`CONNECT ${target()} HTTP/1.1\r\nHost: ${target()}\r\n${AUTH}\r\n`);
        expect((await c.response({ tunnel: true })).status).toBe(200);
        c.send('x');
        expect(await c.read(1)).toBe('x');
      } finally {
        c.destroy();
      }
    },
  );

  it.each(Object.keys(subjects))(
    '%s: an HTTP/1.0 CONNECT gets Connection: close and the end',
    async (name) => {
      const c = await RawProxyConnection.open(subjects[name]!());
      try {
        c.send(`CONNECT ${target()} HTTP/1.0\r\n\r\n`);
        const challenge = await c.response();
        expect(challenge.status).toBe(407);
        expect(challenge.lines).toContain(`Proxy-Authenticate: Basic realm="${REALM}"`);
        expect(challenge.lines).toContain('Connection: close');
        await c.ended();
      } finally {
        c.destroy();
      }
    },
  );

  // curl --proxy-anyauth first asks without credentials and, on a 407 it may keep, retries on that socket.
  it.each(Object.keys(subjects))('%s: curl --proxy-anyauth passes on one connection', async (name) => {
    const url = `http://${encodeURIComponent(USER.username)}:${encodeURIComponent(USER.password)}@127.0.0.1:${subjects[name]!()}`;
    const r = await run('curl', [
      '-sS',
      '-v',
      '--proxy-anyauth',
      '--cacert',
      cert.certPath,
      '-x',
      url,
      `https://127.0.0.1:${web.port}/hello`,
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`tls target says /hello (host: 127.0.0.1:${web.port})`);
    expect(r.stderr).toMatch(/< HTTP\/1\.1 407/);
    expect(r.stderr.match(/^\* Connected to /gm)).toHaveLength(1);
  });

  it('connect-proxy: the TLS listener (an https:// proxy) keeps the connection after a 407 too', async () => {
    const tlsProxy = await startProxy({
      allowPorts: [echo.port],
      auth: { users: [USER], realm: REALM },
      tls: { certPem: cert.certPem, keyPem: cert.keyPem },
    });
    const c = await RawProxyConnection.openTls(tlsProxy.endpoints[0]!.port, cert.certPem, 'lab.example');
    try {
      c.send(`CONNECT ${target()} HTTP/1.1\r\nHost: ${target()}\r\n\r\n`);
      const challenge = await c.response();
      expect(challenge.status).toBe(407);
      expect(challenge.lines).toContain('Connection: keep-alive');
      c.send(`CONNECT ${target()} HTTP/1.1\r\nHost: ${target()}\r\n${AUTH}\r\n`);
      expect((await c.response({ tunnel: true })).status).toBe(200);
      c.send('over tls');
      expect(await c.read(8)).toBe('over tls');
    } finally {
      c.destroy();
      await tlsProxy.stop();
    }
  });

  it.each(['squid', 'connect-proxy'])(
    '%s: a plain HTTP request gets its 407 kept alive; the authenticated one on that socket is forwarded',
    async (name) => {
      const web = createHttpServer((req, res) => res.end(`web says ${req.url}`));
      await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
      const url = `http://127.0.0.1:${(web.address() as AddressInfo).port}/hello`;
      const c = await RawProxyConnection.open(subjects[name]!());
      try {
        c.send(`GET ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
        const challenge = await c.response();
        expect(challenge.status).toBe(407);
        expect(challenge.lines).toContain(`Proxy-Authenticate: Basic realm="${REALM}"`);
        expect(challenge.lines).toContain('Connection: keep-alive');
        c.send(`GET ${url} HTTP/1.1\r\nHost: 127.0.0.1\r\n${AUTH}\r\n`);
        const ok = await c.response();
        expect(ok.status).toBe(200);
        expect(ok.body).toBe('web says /hello');
      } finally {
        c.destroy();
        web.closeAllConnections();
        await new Promise<void>((r) => web.close(() => r()));
      }
    },
  );
});
