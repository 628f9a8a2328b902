import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type PkiHandle, start } from '../../simulators/pki/index.js';
import { missing } from '../helpers/capability.js';
import { handshake, run } from './tls-helpers.js';

// The same certificates checked by the OpenSSL CLI, as curl, mosquitto and the SDKs' C libraries would.
describe.skipIf(missing('cmd:openssl'))('pki under openssl', () => {
  let pki: PkiHandle;
  let intermediatePath: string;
  beforeEach(async () => {
    pki = await start();
    intermediatePath = join(pki.dir, 'lab-intermediate.pem');
  });
  afterEach(async () => {
    await pki.stop();
  });

  const verify = (trust: string[], leafPath: string, extra: string[] = []) =>
    run('openssl', ['verify', ...trust, '-untrusted', intermediatePath, ...extra, leafPath]);

  it('verifies a leaf against the bundle (-CAfile) and the hashed dir (-CApath)', async () => {
    const leaf = await pki.issueServer(['device.lab.test', '127.0.0.1']);
    const byFile = await verify(['-CAfile', pki.trust.bundlePath], leaf.certPath, [
      '-verify_hostname',
      'device.lab.test',
    ]);
    expect(byFile.code, byFile.stderr).toBe(0);
    expect(byFile.stdout).toContain(': OK');
    // -no-CAfile/-no-CApath: only our hashed directory counts, not the system store.
    const byDir = await verify(['-no-CAfile', '-CApath', pki.trust.hashDir], leaf.certPath, [
      '-verify_ip',
      '127.0.0.1',
    ]);
    expect(byDir.code, byDir.stderr).toBe(0);
  });

  it('the hashed dir holds one <subject hash>.0 link per trusted root', async () => {
    const hash = (
      await run('openssl', ['x509', '-noout', '-subject_hash', '-in', join(pki.dir, 'lab-root.pem')])
    ).stdout.trim();
    const linked = await readFile(join(pki.trust.hashDir, `${hash}.0`), 'utf8');
    expect(linked).toBe(pki.root.certPem);
  });

  it('fails without the intermediate (the server would have to send it)', async () => {
    const leaf = await pki.issueServer(['device.lab.test']);
    const r = await run('openssl', ['verify', '-no-CApath', '-CAfile', pki.trust.bundlePath, leaf.certPath]);
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('unable to get local issuer certificate');
  });

  it('reports expired and wrong-host leaves as OpenSSL errors', async () => {
    const expired = await pki.bad('expired', ['device.lab.test']);
    const e = await verify(['-no-CApath', '-CAfile', pki.trust.bundlePath], expired.certPath);
    expect(e.stdout + e.stderr).toContain('certificate has expired');
    const wrong = await pki.bad('wrong-host', ['device.lab.test']);
    const w = await verify(['-no-CApath', '-CAfile', pki.trust.bundlePath], wrong.certPath, [
      '-verify_hostname',
      'device.lab.test',
    ]);
    expect(w.stdout + w.stderr).toContain('hostname mismatch');
  });

  it('addToTrust rewrites the bundle and the hashed dir', async () => {
    const inspector = await pki.createAuthority('Inspector Root CA', { intermediate: true });
    expect(inspector.parent?.commonName).toBe('Inspector Root CA');
    const leaf = await pki.writeFiles(
      'inspected',
      await inspector.issueLeaf({ names: ['cloud.example.test'] }),
    );
    const chainArgs = ['-untrusted', leaf.chainPath, leaf.certPath];
    const before = await run('openssl', [
      'verify',
      '-no-CApath',
      '-CAfile',
      pki.trust.bundlePath,
      ...chainArgs,
    ]);
    expect(before.code).not.toBe(0);
    await pki.addToTrust(inspector);
    const byFile = await run('openssl', [
      'verify',
      '-no-CApath',
      '-CAfile',
      pki.trust.bundlePath,
      ...chainArgs,
    ]);
    expect(byFile.code, byFile.stderr).toBe(0);
    const byDir = await run('openssl', ['verify', '-no-CAfile', '-CApath', pki.trust.hashDir, ...chainArgs]);
    expect(byDir.code, byDir.stderr).toBe(0);
    // The lab's own leaves still verify from the rewritten trust.
    const own = await pki.issueServer(['device.lab.test']);
    expect((await verify(['-no-CAfile', '-CApath', pki.trust.hashDir], own.certPath)).code).toBe(0);
    const bundle = await readFile(pki.trust.bundlePath, 'utf8');
    expect(bundle.match(/BEGIN CERTIFICATE/g)?.length).toBe(2);
    const copy = join(pki.dir, 'out', 'ca.pem');
    await pki.writeBundle(copy);
    expect(await readFile(copy, 'utf8')).toBe(bundle);
  });

  it('CA extensions: basicConstraints with pathlen, keyUsage, SKI/AKI', async () => {
    const text = async (path: string) =>
      (await run('openssl', ['x509', '-noout', '-text', '-in', path])).stdout;
    const root = await text(join(pki.dir, 'lab-root.pem'));
    expect(root).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
    expect(root).toMatch(/Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
    const inter = await text(intermediatePath);
    expect(inter).toMatch(/CA:TRUE, pathlen:0/);
    const ski = (t: string) => /Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/.exec(t)?.[1];
    const aki = (t: string) => /Authority Key Identifier:\s*\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(t)?.[1];
    expect(ski(root)).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
    expect(aki(inter)).toBe(ski(root));
    const leaf = await text((await pki.issueServer(['device.lab.test'])).certPath);
    expect(leaf).toMatch(/CA:FALSE/);
    expect(leaf).toMatch(/Extended Key Usage:\s*\n\s*TLS Web Server Authentication/);
    expect(aki(leaf)).toBe(ski(inter));
    expect(leaf).toContain('ecdsa-with-SHA256');
    expect(leaf).toContain('NIST CURVE: P-256');
  });

  it('RSA on request: an RSA 2048 leaf (and an RSA CA) that OpenSSL and Node accept', async () => {
    // The only RSA key generation in the suite: an RSA root signing an RSA leaf.
    const rsaRoot = await pki.createAuthority('RSA Root CA', { keyType: 'rsa' });
    const leaf = await pki.writeFiles(
      'rsa',
      await rsaRoot.issueLeaf({ names: ['rsa.lab.test'], keyType: 'rsa' }),
    );
    const x = new X509Certificate(leaf.certPem);
    expect(x.publicKey.asymmetricKeyType).toBe('rsa');
    expect(x.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const text = (await run('openssl', ['x509', '-noout', '-text', '-in', leaf.certPath])).stdout;
    expect(text).toContain('Public Key Algorithm: rsaEncryption');
    expect(text).toContain('sha256WithRSAEncryption');
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment/);
    await pki.addToTrust(rsaRoot);
    const v = await run('openssl', ['verify', '-no-CApath', '-CAfile', pki.trust.bundlePath, leaf.certPath]);
    expect(v.code, v.stderr).toBe(0);
    const r = await handshake(leaf, { ca: rsaRoot.certPem, servername: 'rsa.lab.test' });
    expect(r.ok).toBe(true);
  });
});
