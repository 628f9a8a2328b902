import { X509Certificate } from 'node:crypto';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFieldlabError } from '../../simulators/common/errors.js';
import {
  PP2,
  PROXY_V2_SIGNATURE,
  parseProxyV2,
  proxiedTlsFacts,
  readProxyV2,
} from '../../simulators/common/proxy-v2.js';
import { peerCertificateOf } from '../../simulators/mqtt-broker/proxied-tls.js';
import type { PkiHandle } from '../../simulators/pki/index.js';
import { start as startPki } from '../../simulators/pki/index.js';
import { within } from '../helpers/within.js';

/** What fieldlab-tls-front writes (proxy-protocol.txt §2.2): hex-built, as the spec lays it out. */
function header(tlvs: Array<[number, Buffer]>, family = 0x11): Buffer {
  const addrs =
    family === 0x11
      ? Buffer.from([198, 51, 100, 7, 127, 0, 0, 1, 0xc3, 0x50, 0x22, 0xb3]) // 198.51.100.7:50000 → 127.0.0.1:8883
      : Buffer.alloc(0);
  const body = Buffer.concat([
    addrs,
    ...tlvs.map(([t, v]) => Buffer.concat([Buffer.from([t, v.length >> 8, v.length & 0xff]), v])),
  ]);
  return Buffer.concat([
    PROXY_V2_SIGNATURE,
    Buffer.from([0x21, family, body.length >> 8, body.length & 0xff]),
    body,
  ]);
}

const sslTlv = (version: string) =>
  Buffer.concat([
    Buffer.from([PP2.CLIENT_SSL | PP2.CLIENT_CERT_CONN, 0, 0, 0, 1]),
    Buffer.from([PP2.SUBTYPE_SSL_VERSION, 0, version.length]),
    Buffer.from(version),
  ]);

describe('PROXY protocol v2 header', () => {
  let pki: PkiHandle;
  beforeAll(async () => {
    pki = await startPki({ name: 'pki' });
  });
  afterAll(() => pki.stop());

  it('reads the client address, ALPN, SNI, SSL version and the certificate chain', async () => {
    const leaf = await pki.issueClient('sensor-1');
    const leafDer = new X509Certificate(leaf.certPem).raw;
    const interDer = new X509Certificate(pki.intermediate.certPem).raw;
    const h = parseProxyV2(
      header([
        [PP2.ALPN, Buffer.from('x-amzn-mqtt-ca')],
        [PP2.AUTHORITY, Buffer.from('iot.example.com')],
        [PP2.SSL, sslTlv('TLSv1.3')],
        [PP2.CLIENT_CERTIFICATE, leafDer],
        [PP2.CLIENT_CERTIFICATE, interDer],
      ]),
    );
    expect(h?.command).toBe('proxy');
    expect(h?.source).toEqual({ address: '198.51.100.7', port: 50000 });
    expect(h?.destination).toEqual({ address: '127.0.0.1', port: 8883 });
    const facts = proxiedTlsFacts(h!);
    expect(facts).toMatchObject({
      alpn: 'x-amzn-mqtt-ca',
      servername: 'iot.example.com',
      version: 'TLSv1.3',
    });
    // The shape the personas read from getPeerCertificate(true): raw, fingerprint256, issuerCertificate.
    const peer = peerCertificateOf(facts.certificates);
    expect(peer?.raw.equals(leafDer)).toBe(true);
    expect(peer?.subject.CN).toBe('sensor-1');
    expect(peer?.issuerCertificate.raw.equals(interDer)).toBe(true);
    expect(peer?.fingerprint256).toBe(new X509Certificate(leafDer).fingerprint256);
  });

  it('waits for the rest of a header cut short, and refuses what is not one', () => {
    const full = header([[PP2.ALPN, Buffer.from('mqtt')]]);
    expect(parseProxyV2(full.subarray(0, 10))).toBeUndefined();
    expect(parseProxyV2(full.subarray(0, full.length - 1))).toBeUndefined();
    expect(parseProxyV2(full)?.length).toBe(full.length);
    const notOne = (() => {
      try {
        parseProxyV2(Buffer.from('\x10\x14\x00\x04MQTT\x04\x02\x00\x3c', 'latin1'));
      } catch (err) {
        return err;
      }
    })();
    expect(isFieldlabError(notOne) && notOne.code).toBe('E_PROXY_PROTOCOL');
    const v1 = Buffer.from(full);
    v1[12] = 0x11; // version 1 in the binary form
    expect(() => parseProxyV2(v1)).toThrow(/version 1/);
    const longTlv = Buffer.concat([full.subarray(0, 16), Buffer.from([PP2.ALPN, 0, 9, 0x6d])]);
    longTlv[13] = 0x00; // UNSPEC: no addresses, the TLV right after the length
    longTlv.writeUInt16BE(4, 14);
    expect(() => parseProxyV2(longTlv)).toThrow(/longer than the header/);
  });

  it('hands the bytes after the header to the next reader of the socket', async () => {
    let server: Server | undefined;
    const got = new Promise<{ host?: string; rest: string }>((resolve, reject) => {
      server = createServer((s: Socket) => {
        readProxyV2(s, 2000).then((h) => {
          s.once('data', (d: Buffer) => resolve({ host: h.source?.address, rest: d.toString() }));
          s.resume();
        }, reject);
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const port = (server!.address() as { port: number }).port;
    const c = createConnection(port, '127.0.0.1');
    c.end(Buffer.concat([header([[PP2.ALPN, Buffer.from('mqtt')]]), Buffer.from('CONNECT')]));
    try {
      expect(await within(got, 5000, 'the bytes after the header')).toEqual({
        host: '198.51.100.7',
        rest: 'CONNECT',
      });
    } finally {
      c.destroy();
      await new Promise<void>((r) => server!.close(() => r()));
    }
  });
});
