import { get as httpsGet } from 'node:https';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { Agent, fetch, ProxyAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { classifyError, classifyStatus, errorChain } from '../../harness/probe/node-errors.js';
import * as f from './fixtures.js';

afterEach(() => f.closeAll());
const pki = () => f.testPki();
const chain = (l: f.Issued) => l.certPem + pki().intermediatePem;

/** https.get: resolves with the error, or the status when there was a response. */
function viaHttps(
  url: string,
  opts: { ca?: string[]; agent?: HttpsProxyAgent<string>; timeout?: number } = {},
) {
  return new Promise<{ err?: unknown; status?: number }>((resolve) => {
    const req = httpsGet(
      url,
      { ...(opts.ca ? { ca: opts.ca } : {}), ...(opts.agent ? { agent: opts.agent } : {}) },
      (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0 });
      },
    );
    req.on('error', (err) => resolve({ err }));
    if (opts.timeout)
      req.setTimeout(opts.timeout, () =>
        req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })),
      );
  });
}

async function viaFetch(url: string, dispatcher: Agent | ProxyAgent, ms = 5000) {
  try {
    const r = await fetch(url, { dispatcher, signal: AbortSignal.timeout(ms) });
    await r.arrayBuffer();
    return { status: r.status } as { err?: unknown; status?: number };
  } catch (err) {
    return { err };
  }
}

const agent = (ca?: string[]) => new Agent({ connect: ca ? { ca } : {} });

describe('classifyError with errors from real Node clients', () => {
  const tlsCases: [string, () => { chain: string; key: string }, string][] = [
    [
      'untrusted root',
      () => ({ chain: pki().untrusted.certPem + pki().otherRootPem, key: pki().untrusted.keyPem }),
      'tls.untrusted-root',
    ],
    [
      'leaf without its intermediate',
      () => ({ chain: pki().good.certPem, key: pki().good.keyPem }),
      'tls.incomplete-chain',
    ],
    [
      'wrong host name',
      () => ({ chain: chain(pki().wrongName), key: pki().wrongName.keyPem }),
      'tls.hostname-mismatch',
    ],
    ['expired', () => ({ chain: chain(pki().expired), key: pki().expired.keyPem }), 'tls.expired'],
    [
      'not yet valid',
      () => ({ chain: chain(pki().notYetValid), key: pki().notYetValid.keyPem }),
      'tls.not-yet-valid',
    ],
  ];

  it.each(tlsCases)('https.get and fetch: %s', async (_n, make, cls) => {
    const { chain: c, key } = make();
    const s = await f.tlsServer(c, key);
    const url = `https://localhost:${s.port}/`;
    const a = await viaHttps(url, { ca: [pki().rootPem] });
    expect(classifyError(a.err)).toMatchObject({ ok: false, class: cls });
    const d = agent([pki().rootPem]);
    const b = await viaFetch(url, d);
    await d.close();
    expect((b.err as Error).message).toBe('fetch failed');
    expect(classifyError(b.err)).toMatchObject({ ok: false, class: cls });
  });

  it('refused, reset, hung and unknown-name errors', async () => {
    const refused = await viaHttps(`https://127.0.0.1:${await f.refusedPort()}/`);
    expect(classifyError(refused.err)).toMatchObject({ class: 'tcp.refused' });
    const reset = await viaHttps(`https://127.0.0.1:${(await f.resetServer()).port}/`);
    expect(classifyError(reset.err)).toMatchObject({ class: 'tcp.reset' });
    const hang = await f.tcpServer();
    const d = agent();
    const hung = await viaFetch(`http://127.0.0.1:${hang.port}/`, d, 300);
    await d.close();
    expect((hung.err as Error).name).toBe('TimeoutError');
    expect(classifyError(hung.err)).toMatchObject({ class: 'tcp.timeout' });
    const nx = await viaHttps('https://no-such-host.invalid/');
    expect(classifyError(nx.err)).toMatchObject({ class: 'dns.nxdomain' });
    const d2 = agent();
    const resetFetch = await viaFetch(`http://127.0.0.1:${(await f.resetServer()).port}/`, d2);
    await d2.close();
    expect(classifyError(resetFetch.err)).toMatchObject({ class: 'tcp.reset' });
  });

  it('TLS to a plain port: tls.handshake; https:// to a plain proxy: scheme mismatch', async () => {
    const plain = await f.httpServer();
    const direct = await viaHttps(`https://127.0.0.1:${plain}/`);
    expect(classifyError(direct.err)).toMatchObject({ class: 'tls.handshake' });
    const proxy = await f.connectProxy('tunnel');
    const pa = new ProxyAgent({
      uri: `https://127.0.0.1:${proxy.port}`,
      proxyTls: { rejectUnauthorized: false },
    });
    const r = await viaFetch('https://localhost:8443/', pa);
    await pa.close();
    expect(classifyError(r.err, { viaProxy: true })).toMatchObject({ class: 'proxy.scheme-mismatch' });
    expect(classifyError(r.err)).toMatchObject({ class: 'tls.handshake' });
  });

  it.each([
    [407, 'proxy.auth-required'],
    [403, 'proxy.connect-denied'],
    [502, 'proxy.bad-gateway'],
  ] as const)(
    'proxy answering %i: undici throws, https-proxy-agent replays the status',
    async (status, cls) => {
      const proxy = await f.connectProxy(status);
      const pa = new ProxyAgent(`http://127.0.0.1:${proxy.port}`);
      const u = await viaFetch('https://localhost:8443/', pa);
      await pa.close();
      expect(classifyError(u.err)).toMatchObject({ ok: false, class: cls });
      const hpa = new HttpsProxyAgent(`http://127.0.0.1:${proxy.port}`);
      const h = await viaHttps('https://localhost:8443/', { agent: hpa });
      hpa.destroy();
      expect(h.err).toBeUndefined();
      expect(h.status).toBe(status);
      expect(classifyStatus(h.status!, { viaProxyConnect: true })).toMatchObject({ ok: false, class: cls });
    },
  );

  it('a proxy that is down is a refusal', async () => {
    const pa = new ProxyAgent(`http://127.0.0.1:${await f.refusedPort()}`);
    const u = await viaFetch('https://localhost:8443/', pa);
    await pa.close();
    expect(classifyError(u.err)).toMatchObject({ class: 'tcp.refused' });
  });
});

describe('classifyError rules', () => {
  const sys = (code: string, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(code), { code, ...extra });
  it.each([
    [sys('ECONNREFUSED', { syscall: 'connect' }), 'tcp.refused'],
    [sys('ECONNREFUSED', { syscall: 'queryA' }), 'dns.refused'],
    [sys('ETIMEDOUT'), 'tcp.timeout'],
    [sys('ESOCKETTIMEDOUT'), 'tcp.timeout'],
    [sys('EPIPE'), 'tcp.reset'],
    [sys('EHOSTUNREACH'), 'tcp.unreachable'],
    [sys('ENETUNREACH'), 'tcp.unreachable'],
    [sys('ENOTFOUND', { syscall: 'getaddrinfo' }), 'dns.nxdomain'],
    [sys('ENODATA', { syscall: 'queryA' }), 'dns.nodata'],
    [sys('ESERVFAIL', { syscall: 'queryA' }), 'dns.servfail'],
    [sys('EREFUSED', { syscall: 'queryA' }), 'dns.refused'],
    [sys('ETIMEOUT', { syscall: 'queryA' }), 'dns.timeout'],
    [sys('SELF_SIGNED_CERT_IN_CHAIN'), 'tls.untrusted-root'],
    [sys('DEPTH_ZERO_SELF_SIGNED_CERT'), 'tls.untrusted-root'],
    [sys('UNABLE_TO_GET_ISSUER_CERT_LOCALLY'), 'tls.untrusted-root'],
    [sys('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'tls.incomplete-chain'],
    [new Error('something odd'), 'client.error'],
  ])('%s → %s', (err, cls) => {
    expect(classifyError(err)).toMatchObject({ ok: false, class: cls });
  });

  it('walks cause chains and AggregateErrors, and the most specific finding wins', () => {
    const inner = sys('CERT_HAS_EXPIRED');
    const wrapped = new TypeError('fetch failed', { cause: new AggregateError([sys('ECONNRESET'), inner]) });
    expect(errorChain(wrapped)).toHaveLength(4);
    const v = classifyError(wrapped);
    expect(v).toMatchObject({
      ok: false,
      class: 'tls.expired',
      detail: 'CERT_HAS_EXPIRED: CERT_HAS_EXPIRED',
    });
    const loop: Error & { cause?: unknown } = new Error('loop');
    loop.cause = loop;
    expect(classifyError(loop)).toMatchObject({ class: 'client.error' });
  });

  it('classifyStatus', () => {
    expect(classifyStatus(200)).toEqual({ ok: true, detail: 'HTTP 200' });
    expect(classifyStatus(407)).toMatchObject({ class: 'proxy.auth-required' });
    expect(classifyStatus(403)).toMatchObject({ class: 'http.status' });
    expect(classifyStatus(403, { viaProxyConnect: true })).toMatchObject({ class: 'proxy.connect-denied' });
  });
});
