import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type BadCertKind, type PkiHandle, start } from '../../simulators/pki/index.js';
import { handshake } from './tls-helpers.js';

// Leaves checked by Node's own TLS stack: a real server on 127.0.0.1 and a real client trusting the lab root.
describe('pki leaves under Node TLS', () => {
  let pki: PkiHandle;
  beforeEach(async () => {
    pki = await start();
  });
  afterEach(async () => {
    await pki.stop();
  });

  it('serves a leaf + intermediate chain that a client trusting the root accepts', async () => {
    const leaf = await pki.issueServer(['device.lab.test']);
    const r = await handshake(leaf, { ca: pki.root.certPem, servername: 'device.lab.test' });
    expect(r).toMatchObject({ ok: true, code: undefined });
  });

  it('accepts an IP SAN for a client connecting to 127.0.0.1 (no SNI)', async () => {
    const leaf = await pki.issueServer(['127.0.0.1']);
    expect(leaf.ips).toEqual(['127.0.0.1']);
    expect(leaf.names).toEqual([]);
    const r = await handshake(leaf, { ca: pki.root.certPem });
    expect(r.ok).toBe(true);
  });

  it('rejects a DNS-only leaf when the client connects by IP', async () => {
    const leaf = await pki.issueServer(['device.lab.test']);
    const r = await handshake(leaf, { ca: pki.root.certPem });
    expect(r.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('accepts a wildcard name', async () => {
    const leaf = await pki.issueServer(['*.lab.test']);
    const r = await handshake(leaf, { ca: pki.root.certPem, servername: 'a.lab.test' });
    expect(r.ok).toBe(true);
  });

  it('is refused by a client that does not trust the lab root', async () => {
    const other = await pki.createAuthority('Other Root');
    const leaf = await pki.issueServer(['device.lab.test']);
    const r = await handshake(leaf, { ca: other.certPem, servername: 'device.lab.test' });
    expect(r.code).toBe('UNABLE_TO_GET_ISSUER_CERT_LOCALLY');
  });

  const expected: Record<BadCertKind, string> = {
    expired: 'CERT_HAS_EXPIRED',
    'not-yet-valid': 'CERT_NOT_YET_VALID',
    'wrong-host': 'ERR_TLS_CERT_ALTNAME_INVALID',
    'self-signed': 'DEPTH_ZERO_SELF_SIGNED_CERT',
    'missing-intermediate': 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    // The chain is leaf + an unknown intermediate (never the root), so the issuer of the last one is missing.
    'unknown-root': 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  };
  for (const [kind, code] of Object.entries(expected) as [BadCertKind, string][]) {
    it(`bad('${kind}') fails the handshake with ${code}`, async () => {
      const cert = await pki.bad(kind, ['device.lab.test']);
      const r = await handshake(cert, { ca: pki.root.certPem, servername: 'device.lab.test' });
      expect(r.ok).toBe(false);
      expect(r.code).toBe(code);
    });
  }

  it('unknown-root serves leaf + its own intermediate, never the root', async () => {
    const cert = await pki.bad('unknown-root', ['device.lab.test']);
    expect(cert.chainPem.match(/BEGIN CERTIFICATE/g)?.length).toBe(2);
    expect(cert.chainPem).not.toContain(pki.intermediate.certPem);
    // Even a client trusting both lab CAs fails: the issuer is another PKI.
    const r = await handshake(cert, {
      ca: pki.root.certPem + pki.intermediate.certPem,
      servername: 'device.lab.test',
    });
    expect(r.code).toBe('UNABLE_TO_GET_ISSUER_CERT_LOCALLY');
  });

  it('a TLS inspector root issues leaves clients accept only after trusting it', async () => {
    const inspector = await pki.createAuthority('Inspector Root CA');
    const leaf = await inspector.issueLeaf({ names: ['cloud.example.test'], reuseKey: true });
    expect(leaf.chainPem).toBe(leaf.certPem); // signed by the root directly: nothing between
    const before = await handshake(leaf, { ca: pki.root.certPem, servername: 'cloud.example.test' });
    expect(before.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    const after = await handshake(leaf, {
      ca: pki.root.certPem + inspector.certPem,
      servername: 'cloud.example.test',
    });
    expect(after.ok).toBe(true);
  });

  it('mTLS: a client leaf from issueClient is verified by a server trusting the lab root', async () => {
    const server = await pki.issueServer(['broker.lab.test']);
    const client = await pki.issueClient('device-001');
    const r = await handshake(
      { ...server, clientCa: pki.root.certPem },
      { ca: pki.root.certPem, servername: 'broker.lab.test', cert: client.chainPem, key: client.keyPem },
    );
    expect(r.ok).toBe(true);
    expect(r.serverSaw).toEqual({ authorized: true, peerCn: 'device-001' });
  });

  it('mTLS: a server-only leaf used as a client certificate fails the purpose check', async () => {
    const server = await pki.issueServer(['broker.lab.test']);
    const notClient = await pki.issueServer(['device-002.lab.test']); // extendedKeyUsage serverAuth only
    const r = await handshake(
      { ...server, clientCa: pki.root.certPem },
      {
        ca: pki.root.certPem,
        servername: 'broker.lab.test',
        cert: notClient.chainPem,
        key: notClient.keyPem,
      },
    );
    expect(r.serverSaw?.authorized).toBe(false);
    expect(r.serverSaw?.authorizationError).toBe('INVALID_PURPOSE');
  });
});
