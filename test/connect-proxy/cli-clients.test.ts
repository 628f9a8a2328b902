import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ConnectProxyHandle, start } from '../../simulators/connect-proxy/index.js';
import { missing } from '../helpers/capability.js';
import {
  collect,
  makeCert,
  nextEvent,
  run,
  startHttpsTarget,
  startHttpTarget,
  type Target,
  type TestCert,
} from './helpers.js';

const USER = 'edge';
const PASS = 'p@ss:w/ord';
const ENCODED = 'p%40ss%3Aw%2Ford';

/**
 * curl through `proxy` to `target`, printing only a status: the CONNECT answer's (`%{http_connect}`) unless
 * `write` names another; `extra` options go before the rest.
 */
const curlStatus = (proxy: string, target: string, o: { write?: string; extra?: string[] } = {}) =>
  run('curl', [
    '-s',
    ...(o.extra ?? []),
    '-o',
    '/dev/null',
    '-w',
    o.write ?? '%{http_connect}',
    '-x',
    proxy,
    target,
  ]);

describe.skipIf(missing('cmd:curl', 'cmd:openssl'))('connect-proxy with curl and openssl', () => {
  let cert: TestCert;
  let tls: Target;
  let http: Target;
  let proxy: ConnectProxyHandle | undefined;

  beforeAll(async () => {
    cert = makeCert();
    tls = await startHttpsTarget(cert);
    http = await startHttpTarget();
  });
  afterAll(async () => {
    await tls.stop();
    await http.stop();
    cert.cleanup();
  });
  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
  });

  async function startProxy(extra: Parameters<typeof start>[0] = {}) {
    proxy = await start({
      auth: { users: [{ username: USER, password: PASS }] },
      map: { 'iothub.lab.example:443': `127.0.0.1:${tls.port}` },
      ...extra,
    });
    return proxy;
  }

  const proxyAddr = () => {
    const ep = proxy!.endpoints[0]!;
    return `${ep.host}:${ep.port}`;
  };

  it('tunnels curl with percent-encoded credentials in the proxy URL, through the map', async () => {
    const p = await startProxy();
    const allowed = nextEvent(p.events, 'connect-allowed');
    const closed = nextEvent(p.events, 'closed');
    const url = p.proxyUrl({ username: USER, password: PASS });
    expect(url).toBe(`http://${USER}:${ENCODED}@${proxyAddr()}`);
    const r = await run('curl', [
      '-sS',
      '--cacert',
      cert.certPath,
      '-x',
      url,
      'https://iothub.lab.example/devices',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('tls target says /devices (host: iothub.lab.example)');
    const a = await allowed;
    expect(a).toMatchObject({ target: 'iothub.lab.example:443', method: 'CONNECT' });
    expect(a.mappedTarget).toBe(`127.0.0.1:${tls.port}`);
    const c = await closed;
    expect(c.target).toBe('iothub.lab.example:443');
    expect(c.bytesIn).toBeGreaterThan(100);
    expect(c.targetBytesIn).toBeGreaterThan(100);
    expect(c.timings.upstreamMs).toBeGreaterThanOrEqual(c.timings.authMs ?? Number.NaN);
    expect(p.stats()).toMatchObject({ connections: 1, allowed: 1, denied: 0, active: 0 });
    expect(p.stats().bytesUp).toBe(c.bytesIn);
  });

  it('accepts --proxy-user with the raw password', async () => {
    const p = await startProxy();
    const r = await run('curl', [
      '-sS',
      '--cacert',
      cert.certPath,
      '-x',
      `http://${proxyAddr()}`,
      '--proxy-user',
      `${USER}:${PASS}`,
      'https://iothub.lab.example/x',
    ]);
    expect(r.stdout).toBe('tls target says /x (host: iothub.lab.example)');
    expect(p.stats().authFailures).toBe(0);
  });

  it('answers 407 with a Basic challenge to missing and wrong credentials', async () => {
    const p = await startProxy();
    const seen = collect(p.events, 'auth-required');
    const none = await curlStatus(`http://${proxyAddr()}`, 'https://iothub.lab.example/', { extra: ['-v'] });
    expect(none.stdout).toBe('407');
    expect(none.stderr).toMatch(/Proxy-Authenticate: Basic realm="fieldlab"/i);
    const wrong = await curlStatus(
      p.proxyUrl({ username: USER, password: 'nope' }),
      'https://iothub.lab.example/',
    );
    expect(wrong.stdout).toBe('407');
    expect(seen.map((e) => e.reason)).toEqual(['missing', 'wrong']);
    expect(seen[1]).toMatchObject({ status: 407, username: USER });
    expect(p.stats().authFailures).toBe(2);
  });

  it('denies CONNECT to 8883 with 403 naming the rule', async () => {
    const p = await startProxy();
    const denied = nextEvent(p.events, 'connect-denied');
    const r = await curlStatus(
      p.proxyUrl({ username: USER, password: PASS }),
      'https://mqtt.lab.example:8883/',
      { extra: ['-v'] },
    );
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('403');
    const e = await denied;
    expect(e).toMatchObject({ target: 'mqtt.lab.example:8883', status: 403, rule: "#1 'deny-port-not-ssl'" });
    expect(e.reason).toBe("denied by rule #1 'deny-port-not-ssl': port 8883 is not in SSL_ports [443]");
    // The body names the rule too (read raw: curl does not print a failed CONNECT's body).
    const raw = await run('curl', [
      '-s',
      '-i',
      '--http1.1',
      '-x',
      p.proxyUrl({ username: USER, password: PASS }),
      '-X',
      'CONNECT',
      '--request-target',
      'mqtt.lab.example:8883',
      'http://mqtt.lab.example:8883',
    ]);
    expect(raw.stdout).toContain(
      "denied by rule #1 'deny-port-not-ssl': port 8883 is not in SSL_ports [443]",
    );
  });

  it('tunnels plain HTTP with -p and forwards absolute-URI requests, both through the map', async () => {
    const p = await startProxy({
      allowPorts: [443, 8080],
      map: { 'plain.lab.example:8080': `127.0.0.1:${http.port}` },
    });
    const url = p.proxyUrl({ username: USER, password: PASS });
    const tunnel = await run('curl', ['-sS', '-p', '-x', url, 'http://plain.lab.example:8080/t']);
    expect(tunnel.stdout).toBe('http target says /t (host: plain.lab.example:8080)');
    const fwd = await run('curl', ['-sS', '-x', url, 'http://plain.lab.example:8080/f']);
    expect(fwd.stdout).toBe('http target says /f (host: plain.lab.example:8080)');
    // Plain HTTP goes to any port by default; CONNECT to 9090 does not.
    const methods = collect(p.events, 'connect-denied');
    const blocked = await curlStatus(url, 'http://x.lab.example:9090/', { extra: ['-p'] });
    expect(blocked.stdout).toBe('403');
    expect(methods[0]?.method).toBe('CONNECT');
    expect(p.stats().allowed).toBe(2);
  });

  it('answers 502 when the mapped destination refuses, with an upstream-error event', async () => {
    const p = await startProxy({ map: { 'down.lab.example:443': '127.0.0.1:1' } });
    const err = nextEvent(p.events, 'upstream-error');
    const r = await curlStatus(p.proxyUrl({ username: USER, password: PASS }), 'https://down.lab.example/');
    expect(r.stdout).toBe('502');
    expect(await err).toMatchObject({ target: 'down.lab.example:443', code: 'ECONNREFUSED', status: 502 });
    // Plain HTTP forwarding too (proxy-chain's own 594 becomes 502).
    const fwdErr = nextEvent(p.events, 'upstream-error');
    const fwd = await curlStatus(
      p.proxyUrl({ username: USER, password: PASS }),
      'http://down.lab.example:443/',
      { write: '%{http_code}' },
    );
    expect(fwd.stdout).toBe('502');
    expect(await fwdErr).toMatchObject({ target: '127.0.0.1:1', code: 'ECONNREFUSED', status: 502 });
    expect(p.stats().upstreamErrors).toBe(2);
  });

  it('tunnels openssl s_client -proxy with -proxy_user/-proxy_pass', async () => {
    const p = await startProxy();
    const allowed = nextEvent(p.events, 'connect-allowed');
    const r = await run(
      'openssl',
      [
        's_client',
        '-proxy',
        proxyAddr(),
        '-proxy_user',
        USER,
        '-proxy_pass',
        `pass:${PASS}`,
        '-connect',
        'iothub.lab.example:443',
        '-servername',
        'iothub.lab.example',
        '-CAfile',
        cert.certPath,
        '-verify_return_error',
        '-quiet',
      ],
      { input: 'GET /ossl HTTP/1.0\r\nHost: iothub.lab.example\r\n\r\n' },
    );
    expect(r.stdout).toContain('tls target says /ossl');
    expect((await allowed).target).toBe('iothub.lab.example:443');
  });

  it('emits protocol-error when curl speaks TLS to the plain proxy (https:// scheme mismatch)', async () => {
    const p = await startProxy();
    const perr = nextEvent(p.events, 'protocol-error');
    const r = await run('curl', [
      '-sS',
      '--proxy-insecure',
      '-x',
      `https://${USER}:${ENCODED}@${proxyAddr()}`,
      'https://iothub.lab.example/',
    ]);
    expect(r.code).not.toBe(0);
    expect(await perr).toMatchObject({ reason: 'tls-to-plain-proxy' });
    expect(p.stats().protocolErrors).toBe(1);
  });

  it('serves a TLS listener that curl reaches with --proxy-cacert', async () => {
    const p = await startProxy({ tls: { certPem: cert.certPem, keyPem: cert.keyPem } });
    expect(p.endpoints[0]).toMatchObject({ protocol: 'https', url: `https://${proxyAddr()}` });
    const url = p.proxyUrl({ username: USER, password: PASS });
    expect(url.startsWith('https://')).toBe(true);
    const r = await run('curl', [
      '-sS',
      '--proxy-cacert',
      cert.certPath,
      '--cacert',
      cert.certPath,
      '-x',
      url,
      'https://iothub.lab.example/tls',
    ]);
    expect(r.stdout).toBe('tls target says /tls (host: iothub.lab.example)');
    // And a client that speaks plain HTTP to it is reported.
    const perr = nextEvent(p.events, 'protocol-error');
    const plain = await run('curl', [
      '-s',
      '-x',
      `http://${USER}:${ENCODED}@${proxyAddr()}`,
      'https://iothub.lab.example/',
    ]);
    expect(plain.code).not.toBe(0);
    expect(await perr).toMatchObject({ reason: 'plain-to-tls-proxy' });
  });
});
