import type { LookupFunction } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { probeHttps } from '../../harness/probe/https-probe.js';
import * as f from './fixtures.js';

afterEach(() => f.closeAll());
const pki = () => f.testPki();
const chain = (l: f.Issued) => l.certPem + pki().intermediatePem;

/** A lab-style lookup: lab.example → 127.0.0.1, anything else NXDOMAIN. */
const labLookup: LookupFunction = (host, _opts, cb) => {
  if (host === 'lab.example' || host === 'localhost')
    (cb as (e: null, a: string, f: number) => void)(null, '127.0.0.1', 4);
  else
    cb(Object.assign(new Error(`queryA ENOTFOUND ${host}`), { code: 'ENOTFOUND', syscall: 'queryA' }), '', 0);
};

/** The last phase is `name` and never finished. */
function expectOpen(r: { phases: { name: string; end?: number }[] }, name: string) {
  const last = r.phases.at(-1);
  expect(last?.name).toBe(name);
  expect(last?.end).toBeUndefined();
}

function names(r: { phases: { name: string }[] }) {
  return r.phases.map((p) => p.name);
}

describe('probeHttps', () => {
  it('measures every phase of a good request, monotonic', async () => {
    const s = await f.tlsServer(chain(pki().good), pki().good.keyPem);
    const r = await probeHttps({
      url: `https://localhost:${s.port}/x`,
      ca: [pki().rootPem],
      lookup: labLookup,
      timeoutMs: 5000,
    });
    expect(r.verdict).toEqual({ ok: true, detail: 'HTTP 200' });
    expect(r.status).toBe(200);
    expect(names(r)).toEqual(['dns', 'tcp', 'tls', 'first-byte', 'transfer']);
    let prev = 0;
    for (const p of r.phases) {
      expect(p.start).toBeGreaterThanOrEqual(prev);
      expect(p.end).toBeGreaterThanOrEqual(p.start);
      prev = p.end!;
    }
    expect(r.durationMs).toBeGreaterThanOrEqual(prev);
  });

  it('tunnels through a CONNECT proxy with percent-decoded credentials', async () => {
    const s = await f.tlsServer(chain(pki().good), pki().good.keyPem);
    const proxy = await f.connectProxy('tunnel', { user: 'dev@site', pass: 'p:ss/w' });
    const r = await probeHttps({
      url: `https://localhost:${s.port}/`,
      proxy: `http://dev%40site:p%3Ass%2Fw@127.0.0.1:${proxy.port}`,
      ca: [pki().rootPem],
      timeoutMs: 5000,
    });
    expect(r.verdict.ok).toBe(true);
    expect(names(r)).toEqual(['dns', 'tcp', 'proxy-connect', 'tls', 'first-byte', 'transfer']);
    expect(proxy.connects).toEqual([`localhost:${s.port}`]);
  });

  it('tunnels plain HTTP through the proxy too', async () => {
    const port = await f.httpServer(200);
    const proxy = await f.connectProxy('tunnel');
    const r = await probeHttps({
      url: `http://127.0.0.1:${port}/`,
      proxy: `http://127.0.0.1:${proxy.port}`,
      timeoutMs: 5000,
    });
    expect(r.verdict).toEqual({ ok: true, detail: 'HTTP 200' });
    expect(names(r)).toEqual(['dns', 'tcp', 'proxy-connect', 'first-byte', 'transfer']);
  });

  it.each([
    [407, 'proxy.auth-required'],
    [403, 'proxy.connect-denied'],
    [502, 'proxy.bad-gateway'],
  ] as const)('classifies a proxy answering %i, leaving proxy-connect open', async (status, cls) => {
    const proxy = await f.connectProxy(status);
    const r = await probeHttps({
      url: 'https://localhost:8443/',
      proxy: `http://127.0.0.1:${proxy.port}`,
      timeoutMs: 5000,
    });
    expect(r.verdict).toMatchObject({ ok: false, class: cls });
    expectOpen(r, 'proxy-connect');
  });

  it('classifies https:// to a plain proxy as a scheme mismatch', async () => {
    const proxy = await f.connectProxy('tunnel');
    const r = await probeHttps({
      url: 'https://localhost:8443/',
      proxy: `https://127.0.0.1:${proxy.port}`,
      timeoutMs: 5000,
    });
    expect(r.verdict).toMatchObject({ ok: false, class: 'proxy.scheme-mismatch' });
  });

  it.each([
    [
      'untrusted root',
      () => [pki().untrusted.certPem + pki().otherRootPem, pki().untrusted.keyPem],
      'tls.untrusted-root',
    ],
    ['wrong name', () => [chain(pki().wrongName), pki().wrongName.keyPem], 'tls.hostname-mismatch'],
    ['expired', () => [chain(pki().expired), pki().expired.keyPem], 'tls.expired'],
  ] as const)('TLS failure: %s, in the tls phase', async (_n, make, cls) => {
    const [c, k] = make() as [string, string];
    const s = await f.tlsServer(c, k);
    const r = await probeHttps({ url: `https://localhost:${s.port}/`, ca: [pki().rootPem], timeoutMs: 5000 });
    expect(r.verdict).toMatchObject({ ok: false, class: cls });
    expectOpen(r, 'tls');
  });

  it('honours servername for SNI and the name check', async () => {
    const s = await f.tlsServer(chain(pki().wrongName), pki().wrongName.keyPem);
    const r = await probeHttps({
      url: `https://127.0.0.1:${s.port}/`,
      servername: 'other.example',
      ca: [pki().rootPem],
      timeoutMs: 5000,
    });
    expect(r.verdict.ok).toBe(true);
  });

  it('refused, reset, hung, unknown name, HTTP error', async () => {
    const refused = await probeHttps({ url: `https://127.0.0.1:${await f.refusedPort()}/`, timeoutMs: 5000 });
    expect(refused.verdict).toMatchObject({ class: 'tcp.refused' });
    expectOpen(refused, 'tcp');
    const reset = await probeHttps({
      url: `http://127.0.0.1:${(await f.resetServer()).port}/`,
      timeoutMs: 5000,
    });
    expect(reset.verdict).toMatchObject({ class: 'tcp.reset' });
    const hang = await f.tcpServer();
    const hung = await probeHttps({ url: `http://127.0.0.1:${hang.port}/`, timeoutMs: 300 });
    expect(hung.verdict).toMatchObject({ class: 'tcp.timeout' });
    expect(hung.durationMs).toBeLessThan(2000);
    expectOpen(hung, 'first-byte');
    const nx = await probeHttps({ url: 'https://nowhere.lab/', lookup: labLookup, timeoutMs: 5000 });
    expect(nx.verdict).toMatchObject({ class: 'dns.nxdomain' });
    expect(names(nx)).toEqual(['dns']);
    const notFound = await probeHttps({
      url: `http://lab.example:${await f.httpServer(404)}/`,
      lookup: labLookup,
      timeoutMs: 5000,
    });
    expect(notFound.verdict).toMatchObject({ ok: false, class: 'http.status', detail: 'HTTP 404' });
    expect(notFound.status).toBe(404);
  });

  it('never throws on a bad URL', async () => {
    const r = await probeHttps({ url: 'not a url', timeoutMs: 1000 });
    expect(r.verdict).toMatchObject({ ok: false, class: 'client.error' });
  });
});
