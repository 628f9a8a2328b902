import { X509Certificate } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { CertificateAuthority, type PkiHandle, start } from '../../simulators/pki/index.js';

/** A lab CA handed over as PEM (to a simulator in a container) issues leaves the same lab trusts. */
const started: PkiHandle[] = [];
afterAll(async () => {
  for (const p of started) await p.stop();
});

describe('pki authority from PEM', () => {
  it('a second PKI with the first one’s CA issues leaves that chain to the first root', async () => {
    const a = await start({ name: 'a' });
    started.push(a);
    const b = await start({
      name: 'b',
      authority: {
        root: { certPem: a.root.certPem, keyPem: a.root.keyPem },
        intermediate: { certPem: a.intermediate.certPem, keyPem: a.intermediate.keyPem },
      },
    });
    started.push(b);
    expect(b.root.certPem).toBe(a.root.certPem);
    const leaf = await b.issueServer(['hub.iot.example.com']);
    const cert = new X509Certificate(leaf.certPem);
    const intermediate = new X509Certificate(a.intermediate.certPem);
    expect(cert.verify(intermediate.publicKey)).toBe(true);
    expect(cert.checkIssued(intermediate)).toBe(true);
    expect(intermediate.checkIssued(new X509Certificate(a.root.certPem))).toBe(true);
    // The chain the leaf is served with carries the same intermediate.
    expect(leaf.chainPem).toContain(a.intermediate.certPem.trim());
  });

  it('names what is wrong: a key of another CA, a certificate that is no CA, not PEM at all', async () => {
    const a = await start({ name: 'c' });
    started.push(a);
    const leaf = await a.issueServer(['x.example.com']);
    await expect(
      CertificateAuthority.fromPem({ certPem: a.root.certPem, keyPem: a.intermediate.keyPem }),
    ).rejects.toMatchObject({ code: 'E_PKI_BAD_CA', message: expect.stringContaining('does not belong') });
    await expect(
      CertificateAuthority.fromPem({ certPem: leaf.certPem, keyPem: leaf.keyPem }),
    ).rejects.toMatchObject({ code: 'E_PKI_BAD_CA', message: expect.stringContaining('is not a CA') });
    await expect(CertificateAuthority.fromPem({ certPem: 'junk', keyPem: 'junk' })).rejects.toMatchObject({
      code: 'E_PKI_BAD_CA',
    });
  });
});
