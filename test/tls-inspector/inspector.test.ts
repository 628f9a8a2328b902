import { X509Certificate } from 'node:crypto';
import { get as httpsGet } from 'node:https';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { CertificateAuthority } from '../../simulators/pki/index.js';
import {
  start,
  type TlsInspectorHandle,
  type TlsInspectorOptions,
} from '../../simulators/tls-inspector/index.js';
import {
  HOSTS,
  type HttpsTarget,
  inspectorCa,
  labCa,
  nextEvent,
  openTunnel,
  readAll,
  startAlpnTarget,
  startHttpsTarget,
  tlsThrough,
} from './helpers.js';

let ca: Promise<CertificateAuthority> | undefined;
let target: HttpsTarget;
let inspector: TlsInspectorHandle | undefined;
const cleanups: Array<() => Promise<void>> = [];

beforeEach(async () => {
  target = await startHttpsTarget();
});

afterEach(async () => {
  await inspector?.stop();
  inspector = undefined;
  await target.stop();
  for (const c of cleanups.splice(0)) await c();
});

/** Starts the inspector with the lab trust upstream and every lab name mapped to the HTTPS target. */
async function startInspector(extra: Partial<TlsInspectorOptions> = {}): Promise<TlsInspectorHandle> {
  ca ??= inspectorCa();
  const lab = await labCa();
  const to = `127.0.0.1:${target.port}`;
  const map: Record<string, string> = { 'api.lab.example:443': to, 'pass.lab.example:443': to };
  for (const h of HOSTS) map[`${h}:443`] = to;
  inspector = await start({ ca: await ca, upstreamCa: [lab.root.certPem], map, ...extra });
  return inspector;
}

function proxyPort(h: TlsInspectorHandle): number {
  return h.endpoints[0]!.port;
}

/** GET over https through the inspector with https-proxy-agent; resolves status + body or rejects. */
function getVia(h: TlsInspectorHandle, url: string, ca?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const agent = new HttpsProxyAgent(h.proxyUrl());
    const req = httpsGet(url, { agent, ...(ca ? { ca } : {}), timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

describe('tls-inspector with Node clients', () => {
  it('a Node https client fails without the inspector root and passes with it', async () => {
    const h = await startInspector();
    const err = await getVia(h, 'https://api.lab.example/a').catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('UNABLE_TO_GET_ISSUER_CERT_LOCALLY');

    const ok = await getVia(h, 'https://api.lab.example/hello?x=1', h.rootPem);
    expect(ok).toEqual({ status: 200, body: 'target says /hello?x=1' });
    expect(h.stats().intercepted).toBe(1);
  });

  it('a Node TLS client that rejects the leaf sends no alert: the inspector reports a hangup', async () => {
    const h = await startInspector();
    const hangup = nextEvent(h.events, 'tls-client-error');
    const err = await tlsThrough(proxyPort(h), 'api.lab.example:443', {}).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('UNABLE_TO_GET_ISSUER_CERT_LOCALLY');
    const ev = await hangup;
    expect(ev).toMatchObject({ host: 'api.lab.example', code: 'E_CLIENT_HANGUP' });
    expect(ev.alert).toBeUndefined();
    expect(h.stats().clientRejected).toBe(1);
  });

  it('the client sees a leaf issued by the inspector for the SNI, with the intermediate', async () => {
    const h = await startInspector();
    const intercepted = nextEvent(h.events, 'intercepted');
    const t = await tlsThrough(proxyPort(h), 'api.lab.example:443', { ca: h.rootPem });
    const peer = t.getPeerX509Certificate();
    const ev = await intercepted; // the inspector's side completes when it reads the client's Finished
    t.destroy();
    expect(peer?.issuer).toContain('fieldlab test Inspector Issuing CA');
    expect(peer?.subjectAltName).toContain('DNS:api.lab.example');
    expect(peer?.checkIssued(new X509Certificate(h.ca.certPem))).toBe(true);
    expect(ev).toMatchObject({ host: 'api.lab.example', sni: 'api.lab.example', leafCached: false });
    expect(ev.issueMs).toBeGreaterThanOrEqual(0);
  });

  it('an IP target gets a leaf with an IP SAN (no SNI)', async () => {
    const h = await startInspector();
    const t = await tlsThrough(proxyPort(h), `127.0.0.1:${target.port}`, { ca: h.rootPem });
    const peer = t.getPeerX509Certificate();
    t.destroy();
    expect(peer?.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(peer?.issuer).toContain('Inspector');
  });

  it('WebSocket over wss passes through the inspector (echo round-trip)', async () => {
    const h = await startInspector();
    const ws = new WebSocket('wss://api.lab.example/echo', {
      agent: new HttpsProxyAgent(h.proxyUrl()),
      ca: h.rootPem,
    });
    const echoed = await new Promise<string>((resolve, reject) => {
      ws.once('open', () => ws.send('ping through the inspector'));
      ws.once('message', (d) => resolve(String(d)));
      ws.once('error', reject);
    });
    ws.close();
    expect(echoed).toBe('ping through the inspector');
    expect(h.stats().intercepted).toBe(1);
  });

  it('ALPN: the client offers mqtt, the target chooses it, both legs negotiate mqtt', async () => {
    const mqttTarget = await startAlpnTarget(['mqtt']);
    cleanups.push(() => mqttTarget.stop());
    const h = await startInspector({ map: { 'broker.lab.example:8883': `127.0.0.1:${mqttTarget.port}` } });
    const intercepted = nextEvent(h.events, 'intercepted');
    const t = await tlsThrough(proxyPort(h), 'broker.lab.example:8883', {
      ca: h.rootPem,
      ALPNProtocols: ['x-amzn-mqtt-ca', 'mqtt'],
    });
    expect(t.alpnProtocol).toBe('mqtt');
    // The target writes what it negotiated with the inspector: the same protocol.
    expect(await readAll(t)).toBe('alpn=mqtt');
    expect((await intercepted).alpn).toBe('mqtt');
  });

  it('passthrough hosts get the target’s original certificate', async () => {
    const lab = await labCa();
    const h = await startInspector({ passthrough: ['pass.*.example'] });
    const passthrough = nextEvent(h.events, 'passthrough');
    const t = await tlsThrough(proxyPort(h), 'pass.lab.example:443', { ca: lab.root.certPem });
    const peer = t.getPeerX509Certificate();
    t.destroy();
    expect(peer?.issuer).toContain('fieldlab test Lab Issuing CA');
    expect(await passthrough).toEqual({ host: 'pass.lab.example' });
    // The inspector root does not verify it: it really is not the inspector's leaf.
    await expect(tlsThrough(proxyPort(h), 'pass.lab.example:443', { ca: h.rootPem })).rejects.toMatchObject({
      code: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
    });
    expect(h.stats()).toMatchObject({ passthrough: 2, intercepted: 0 });
  });

  it('an unreachable passthrough target gets 502 and upstream-error', async () => {
    const h = await startInspector({ passthrough: ['pass.lab.example'] });
    await target.stop(); // the port it maps to now refuses
    const upstreamError = nextEvent(h.events, 'upstream-error');
    const tunnel = await openTunnel(proxyPort(h), 'pass.lab.example:443');
    tunnel.socket.destroy();
    expect(tunnel.status).toBe(502);
    expect(await upstreamError).toMatchObject({ target: 'pass.lab.example:443', code: 'ECONNREFUSED' });
  });

  it.each([
    ['expired', 'CERT_HAS_EXPIRED'],
    ['wrong-host', 'ERR_TLS_CERT_ALTNAME_INVALID'],
    ['missing-intermediate', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'],
  ] as const)('fault %s: a client trusting the inspector root fails with %s', async (fault, code) => {
    const h = await startInspector({ fault });
    await expect(tlsThrough(proxyPort(h), 'api.lab.example:443', { ca: h.rootPem })).rejects.toMatchObject({
      code,
    });
  });

  it('setFault switches the leaves served from then on', async () => {
    const h = await startInspector();
    (await tlsThrough(proxyPort(h), 'api.lab.example:443', { ca: h.rootPem })).destroy();
    h.setFault('expired');
    await expect(tlsThrough(proxyPort(h), 'api.lab.example:443', { ca: h.rootPem })).rejects.toMatchObject({
      code: 'CERT_HAS_EXPIRED',
    });
  });

  it('untrusted upstream: the client gets a fatal alert, upstream-error names the cause', async () => {
    const { CertificateAuthority } = await import('../../simulators/pki/index.js');
    const rogue = await CertificateAuthority.createRoot({ commonName: 'fieldlab test Rogue Root' });
    const rogueTarget = await startAlpnTarget(['http/1.1'], rogue);
    cleanups.push(() => rogueTarget.stop());
    const h = await startInspector({ map: { 'api.lab.example:443': `127.0.0.1:${rogueTarget.port}` } });
    const upstreamError = nextEvent(h.events, 'upstream-error');
    const err = await tlsThrough(proxyPort(h), 'api.lab.example:443', { ca: h.rootPem }).catch(
      (e: unknown) => e,
    );
    expect((err as Error).message).toMatch(/alert handshake failure/);
    const ev = await upstreamError;
    expect(ev.target).toBe('api.lab.example:443');
    expect(ev.code).toMatch(
      /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/,
    );
  });

  it('20 concurrent clients to 20 hosts all pass; the repeat is served from the leaf cache', async () => {
    const h = await startInspector();
    const round = () => Promise.all(HOSTS.map((host) => getVia(h, `https://${host}/${host}`, h.rootPem)));
    const first = await round();
    expect(first.map((r) => r.body)).toEqual(HOSTS.map((host) => `target says /${host}`));
    expect(h.stats()).toMatchObject({ leavesIssued: 20, leafCacheMisses: 20 });
    const second = await round();
    expect(second.every((r) => r.status === 200)).toBe(true);
    expect(h.stats()).toMatchObject({ leavesIssued: 20, leafCacheHits: 20, intercepted: 40 });
  });

  it('concurrent first requests for one host share one signing', async () => {
    const h = await startInspector();
    const results = await Promise.all(
      Array.from({ length: 6 }, () => getVia(h, 'https://api.lab.example/same', h.rootPem)),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(h.stats()).toMatchObject({ leavesIssued: 1, leafCacheMisses: 1, leafCacheHits: 5 });
  });

  it('garbage after CONNECT is reported and closed; other clients are unaffected', async () => {
    const h = await startInspector();
    const bad = nextEvent(h.events, 'tls-client-error');
    const tunnel = await openTunnel(proxyPort(h), 'api.lab.example:443');
    expect(tunnel.status).toBe(200);
    const closed = new Promise<void>((resolve) => tunnel.socket.once('close', () => resolve()));
    tunnel.socket.on('error', () => undefined);
    tunnel.socket.resume();
    tunnel.socket.write(Buffer.from('\x16\x03\x01\x00\x10this is no hello', 'latin1'));
    expect(await bad).toMatchObject({ host: 'api.lab.example', code: 'E_BAD_CLIENT_HELLO' });
    await closed;
    const ok = await getVia(h, 'https://api.lab.example/after', h.rootPem);
    expect(ok.body).toBe('target says /after');
    expect(h.stats()).toMatchObject({ badClientHello: 1, intercepted: 1 });
  });

  it('Basic auth: 407 without credentials, tunnel with them', async () => {
    const h = await startInspector({ auth: { users: [{ username: 'dev', password: 's3cret' }] } });
    const required = nextEvent(h.events, 'auth-required');
    const denied = await openTunnel(proxyPort(h), 'api.lab.example:443');
    denied.socket.destroy();
    expect(denied.status).toBe(407);
    expect(await required).toEqual({ reason: 'missing', status: 407 });
    const wrong = await openTunnel(proxyPort(h), 'api.lab.example:443', {
      'Proxy-Authorization': `Basic ${Buffer.from('dev:nope').toString('base64')}`,
    });
    wrong.socket.destroy();
    expect(wrong.status).toBe(407);
    const agent = new HttpsProxyAgent(h.proxyUrl({ username: 'dev', password: 's3cret' }));
    const status = await new Promise<number>((resolve, reject) => {
      httpsGet('https://api.lab.example/', { agent, ca: h.rootPem }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
    expect(status).toBe(200);
  });

  it('bad options are E_BAD_OPTION naming the field', async () => {
    await expect(start({ fault: 'nope' as never })).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
      message: expect.stringContaining('options.fault'),
    });
    await expect(start({ map: { 'no-port': '127.0.0.1:1' } })).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
    });
    const { CertificateAuthority } = await import('../../simulators/pki/index.js');
    const root = await CertificateAuthority.createRoot({ commonName: 'fieldlab test lone root' });
    await expect(start({ ca: root, fault: 'missing-intermediate' })).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
      message: expect.stringContaining('intermediate'),
    });
  });

  it('a bad request-target gets 400; stop() is idempotent and closes open tunnels', async () => {
    const h = await startInspector();
    const bad = await openTunnel(proxyPort(h), 'no-port-here');
    bad.socket.destroy();
    expect(bad.status).toBe(400);
    const t = await tlsThrough(proxyPort(h), 'api.lab.example:443', { ca: h.rootPem });
    const gone = new Promise<void>((resolve) => t.once('close', () => resolve()));
    t.on('error', () => undefined);
    await Promise.all([h.stop(), h.stop()]);
    await gone;
    expect(t.destroyed).toBe(true);
  });
});
