import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer, type PeerCertificate, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import {
  commonName,
  dnAttributes,
  dnLabel,
  hasPeerCertificate,
  peerChain,
  presentedChain,
  sha256Fingerprint,
} from '../../simulators/common/x509.js';
import { CertificateAuthority } from '../../simulators/pki/index.js';
import { within } from '../helpers/within.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/**
 * What a real TLS server sees of a client that presents `cert` (PEM, leaf first, maybe with its chain):
 * `getPeerCertificate(true)` on the server's side of one handshake.
 */
async function peerOf(server: { cert: string; key: string }, client?: { cert: string; key: string }) {
  const srv = createServer({ ...server, requestCert: true, rejectUnauthorized: false });
  const seen = new Promise<PeerCertificate>((resolve) =>
    srv.once('secureConnection', (s: TLSSocket) => {
      resolve(s.getPeerCertificate(true));
      s.end();
    }),
  );
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  cleanups.push(() => new Promise<void>((r) => srv.close(() => r())));
  const { port } = srv.address() as AddressInfo;
  const sock = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...client });
  sock.on('error', () => undefined);
  cleanups.push(() => void sock.destroy());
  return within(seen, 5000, 'the server side of the handshake');
}

describe('common x509 helpers', () => {
  it('reads the attributes of a distinguished name, the first of a repeated one', () => {
    const dn = dnAttributes('C=JP\nO=Contoso\nOU=first\nOU=second\nCN=dev-1');
    expect(dn.get('CN')).toBe('dev-1');
    expect(dn.get('OU')).toBe('first');
    expect(dnLabel('C=JP\nO=Contoso\nCN=dev-1')).toBe('dev-1');
    // No CN (or an empty one): the whole name on one line names it in a message.
    expect(dnLabel('C=JP\nO=Contoso')).toBe('C=JP, O=Contoso');
    expect(dnLabel('O=Contoso\nCN=')).toBe('O=Contoso, CN=');
  });

  it('walks the chain a TLS client presented, leaf first, and reads its CN', async () => {
    const root = await CertificateAuthority.createRoot({ commonName: 'x509 helper Root' });
    const issuing = await root.createIntermediate({ commonName: 'x509 helper Issuing CA' });
    const server = await root.issueLeaf({ names: ['server.lab.example'] });
    const device = await issuing.issueLeaf({ commonName: 'sensor-9', usage: 'client' });
    const peer = await peerOf(
      { cert: server.chainPem, key: server.keyPem },
      { cert: `${device.chainPem}${root.certPem}`, key: device.keyPem },
    );
    expect(hasPeerCertificate(peer)).toBe(true);
    const chain = presentedChain(peer);
    expect(chain.map((c) => commonName(c))).toEqual([
      'sensor-9',
      'x509 helper Issuing CA',
      'x509 helper Root',
    ]);
    expect(peerChain(peer)[2]?.raw.equals(new X509Certificate(root.certPem).raw)).toBe(true);
    const leaf = new X509Certificate(device.certPem);
    expect(sha256Fingerprint(leaf.raw)).toBe(leaf.fingerprint256.replace(/:/g, '').toLowerCase());
  });

  it('stops at a self-signed certificate (its issuerCertificate is itself)', async () => {
    const own = await CertificateAuthority.createRoot({ commonName: 'self-signed-device' });
    const server = await own.issueLeaf({ names: ['server.lab.example'] });
    const peer = await peerOf(
      { cert: server.chainPem, key: server.keyPem },
      { cert: own.certPem, key: own.keyPem },
    );
    expect(presentedChain(peer).map((c) => commonName(c))).toEqual(['self-signed-device']);
  });

  it('tells a client that sent no certificate', async () => {
    const root = await CertificateAuthority.createRoot({ commonName: 'x509 helper Root' });
    const server = await root.issueLeaf({ names: ['server.lab.example'] });
    const peer = await peerOf({ cert: server.chainPem, key: server.keyPem });
    expect(hasPeerCertificate(peer)).toBe(false);
    expect(hasPeerCertificate(undefined)).toBe(false);
    expect(presentedChain(peer)).toEqual([]);
  });
});
