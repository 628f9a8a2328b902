import { request } from 'node:https';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/index.js';
import type { GeoDnsHandle } from '../../simulators/geo-dns/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { type ResolverHandle, start } from '../../simulators/resolver/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';
import { dig, lastAddress, NA_CLIENT, record, startGeo, US, upstreamOf } from './helpers.js';

let pki: PkiHandle;
let geo: GeoDnsHandle | undefined;
let resolver: ResolverHandle | undefined;
beforeAll(async () => {
  pki = await startPki({ name: 'pki' });
});
afterAll(() => pki.stop());
afterEach(async () => {
  await resolver?.stop();
  await geo?.stop();
  resolver = geo = undefined;
});

async function startBoth(): Promise<ResolverHandle> {
  geo = await startGeo(60);
  const cert = await pki.issueServer(['resolver.lab', '127.0.0.1']);
  resolver = await start({
    name: 'resolver',
    persona: 'isp-na',
    forward: [{ zone: 'iot.example.com', upstream: [upstreamOf(geo)] }],
    tls: { certPem: cert.chainPem, keyPem: cert.keyPem },
  });
  return resolver;
}

/** dig's TLS options: verify the resolver's certificate against the lab root, by name. */
const verify = (): string[] => [`+tls-ca=${pki.trust.bundlePath}`, '+tls-hostname=resolver.lab'];

describe.skipIf(missing('cmd:dig'))('resolver over TLS and HTTPS with dig', () => {
  it('answers DNS over TLS (RFC 7858) with the lab certificate', async () => {
    const r = await startBoth();
    const dot = endpointOf(r, 'dot');
    const answers = record(r, 'answer');
    const res = await dig(dot.host, dot.port, ['global.iot.example.com', 'A', '+tls', ...verify()], {
      bind: NA_CLIENT,
    });
    expect(res.status).toBe('NOERROR');
    expect(lastAddress(res)).toBe(US);
    expect(res.stdout).toMatch(/\(TLS\)/);
    expect(answers.map((a) => [a.transport, a.client])).toEqual([['dot', NA_CLIENT]]);
    expect(r.stats().byTransport.dot).toBe(1);
  });

  it('answers DNS over HTTPS (RFC 8484) POST and GET on /dns-query, over HTTP/2', async () => {
    const r = await startBoth();
    const doh = endpointOf(r, 'doh');
    expect(doh.url).toBe(`https://${doh.host}:${doh.port}/dns-query`);
    const post = await dig(doh.host, doh.port, ['global.iot.example.com', 'A', '+https', ...verify()], {
      bind: NA_CLIENT,
    });
    expect(post.status).toBe('NOERROR');
    expect(lastAddress(post)).toBe(US);
    expect(post.stdout).toMatch(/\(HTTPS\)/);
    const get = await dig(doh.host, doh.port, ['global.iot.example.com', 'A', '+https-get', ...verify()], {
      bind: NA_CLIENT,
    });
    expect(lastAddress(get)).toBe(US);
    expect(r.stats().byTransport.doh).toBe(2);
  });

  it('DoH over HTTP/1.1: 415 for a wrong Content-Type, an answer with Cache-Control for a right one', async () => {
    const r = await startBoth();
    const doh = endpointOf(r, 'doh');
    const post = (contentType: string, body: Buffer) =>
      within(
        new Promise<{ status: number; type?: string; cache?: string; body: Buffer }>((resolve, reject) => {
          const req = request(
            {
              host: doh.host,
              port: doh.port,
              path: '/dns-query',
              method: 'POST',
              ca: pki.root.certPem,
              servername: 'resolver.lab',
              headers: { 'content-type': contentType, accept: 'application/dns-message' },
            },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('end', () =>
                resolve({
                  status: res.statusCode ?? 0,
                  ...(res.headers['content-type'] ? { type: res.headers['content-type'] } : {}),
                  ...(res.headers['cache-control'] ? { cache: res.headers['cache-control'] } : {}),
                  body: Buffer.concat(chunks),
                }),
              );
            },
          );
          req.on('error', reject);
          req.end(body);
        }),
        5000,
        'a DoH answer',
      );
    // us-east-1.iot.example.com A, RD
    const query = Buffer.concat([
      Buffer.from([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
      Buffer.from('\x09us-east-1\x03iot\x07example\x03com\x00', 'latin1'),
      Buffer.from([0, 1, 0, 1]),
    ]);
    expect((await post('text/plain', query)).status).toBe(415);
    const ok = await post('application/dns-message', query);
    expect(ok.status).toBe(200);
    expect(ok.type).toBe('application/dns-message');
    expect(ok.cache).toMatch(/^max-age=\d+$/); // RFC 8484 §5.1
    expect(ok.body.readUInt16BE(2) & 0x808f).toBe(0x8080); // QR, RA, NOERROR
    expect(ok.body.subarray(-4)).toEqual(Buffer.from([127, 53, 0, 2]));
  });
});
