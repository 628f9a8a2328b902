import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { errorCode } from '../../simulators/common/errors.js';
import {
  type BadCertKind,
  CertificateAuthority,
  type IssuedEvent,
  isIp,
  type PkiHandle,
  start,
} from '../../simulators/pki/index.js';

const started: PkiHandle[] = [];
async function lab(options?: Parameters<typeof start>[0]): Promise<PkiHandle> {
  const pki = await start(options);
  started.push(pki);
  return pki;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
});

async function codeOf(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return errorCode(err);
  }
  return undefined;
}

describe('pki handle', () => {
  it('starts with a root, an intermediate, no endpoints, and a 0700 temp dir', async () => {
    const pki = await lab();
    expect(pki.name).toBe('pki');
    expect(pki.endpoints).toEqual([]);
    expect(pki.root.commonName).toBe('fieldlab Lab Root CA');
    expect(pki.root.parent).toBeUndefined();
    expect(pki.root.root()).toBe(pki.root);
    expect(pki.root.chainPem()).toBe('');
    expect(pki.intermediate.parent).toBe(pki.root);
    expect(pki.intermediate.root()).toBe(pki.root);
    expect(pki.intermediate.chainPem()).toBe(pki.intermediate.certPem);
    expect((await stat(pki.dir)).mode & 0o777).toBe(0o700);
    expect(await readFile(pki.trust.bundlePath, 'utf8')).toBe(pki.root.certPem);
    expect(pki.stats()).toEqual({ roots: 1, intermediates: 1, leaves: 0, bad: 0, total: 2 });
  });

  it('writes keys mode 0600, certificates and chains beside them', async () => {
    const pki = await lab();
    const leaf = await pki.issueServer(['device.lab.test'], { file: 'sub/device' });
    expect(leaf.keyPath).toBe(join(pki.dir, 'sub', 'device-key.pem'));
    expect((await stat(leaf.keyPath)).mode & 0o777).toBe(0o600);
    expect(await readFile(leaf.keyPath, 'utf8')).toBe(leaf.keyPem);
    expect(leaf.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(await readFile(leaf.certPath, 'utf8')).toBe(leaf.certPem);
    expect(await readFile(leaf.chainPath, 'utf8')).toBe(leaf.certPem + pki.intermediate.certPem);
    // Rewriting over an existing, looser file still leaves the key 0600.
    const again = await pki.writeFiles('sub/device', leaf);
    expect((await stat(again.keyPath)).mode & 0o777).toBe(0o600);
  });

  it('leaf fields: SANs, CN, validity window, positive random serials', async () => {
    const pki = await lab();
    const before = Date.now();
    const a = await pki.issueServer(['Device.Lab.Test', '127.0.0.1', '[::1]']);
    const b = await pki.issueServer(['device.lab.test']);
    expect(a.names).toEqual(['device.lab.test']);
    expect(a.ips).toEqual(['127.0.0.1', '::1']);
    const x = new X509Certificate(a.certPem);
    expect(x.subject).toContain('CN=device.lab.test');
    expect(x.subjectAltName).toBe('DNS:device.lab.test, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(x.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(x.ca).toBe(false);
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // Node reports extendedKeyUsage here: serverAuth
    expect(x.checkIssued(new X509Certificate(pki.intermediate.certPem))).toBe(true);
    expect(x.verify(new X509Certificate(pki.intermediate.certPem).publicKey)).toBe(true);
    // Default validity: an hour back (clock skew) to 30 days on; UTCTime has 1 s resolution.
    expect(a.notBefore.getTime()).toBeLessThanOrEqual(before - 3_599_000);
    expect(a.notAfter.getTime() - a.notBefore.getTime()).toBeGreaterThan(30 * 86_400_000);
    expect(a.serial).toMatch(/^[0-7][0-9a-f]{31}$/); // positive: top bit clear
    expect(a.serial).not.toBe(b.serial);
    expect(x.serialNumber.toLowerCase()).toBe(a.serial);
  });

  it('issueClient: clientAuth, CN only unless SANs are given', async () => {
    const pki = await lab();
    const c = await pki.issueClient('device-001');
    const x = new X509Certificate(c.certPem);
    expect(x.subject).toContain('CN=device-001');
    expect(x.subjectAltName).toBeUndefined();
    expect(x.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    const both = await pki.issueClient('gw', { usage: 'both', names: ['gw.lab.test'] });
    expect(new X509Certificate(both.certPem).keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  });

  it('reuseKey shares one leaf key per CA; without it every leaf has its own', async () => {
    const pki = await lab();
    const ca = pki.intermediate;
    const [a, b] = await Promise.all([
      ca.issueLeaf({ names: ['a.test'], reuseKey: true }),
      ca.issueLeaf({ names: ['b.test'], reuseKey: true }),
    ]);
    expect(a.keyPem).toBe(b.keyPem);
    expect(a.serial).not.toBe(b.serial);
    const fresh = await ca.issueLeaf({ names: ['c.test'] });
    expect(fresh.keyPem).not.toBe(a.keyPem);
    const other = await pki.createAuthority('Inspector Root CA');
    expect((await other.issueLeaf({ names: ['a.test'], reuseKey: true })).keyPem).not.toBe(a.keyPem);
  });

  it('emits an issued event per certificate and counts them', async () => {
    const pki = await lab();
    const seen: IssuedEvent[] = [];
    pki.events.onEvent('issued', (e) => seen.push(e));
    await pki.issueServer(['device.lab.test', '127.0.0.1']);
    await pki.bad('expired', ['device.lab.test']);
    const inspector = await pki.createAuthority('Inspector Root CA', { intermediate: true });
    await inspector.issueLeaf({ names: ['cloud.example.test'] });
    expect(seen).toEqual([
      { kind: 'leaf', subject: 'device.lab.test', names: ['device.lab.test', '127.0.0.1'] },
      { kind: 'bad', subject: 'device.lab.test', names: ['device.lab.test'], bad: 'expired' },
      { kind: 'root', subject: 'Inspector Root CA', names: [] },
      { kind: 'intermediate', subject: 'Inspector Root CA Intermediate', names: [] },
      { kind: 'leaf', subject: 'cloud.example.test', names: ['cloud.example.test'] },
    ]);
    expect(pki.stats()).toEqual({ roots: 2, intermediates: 2, leaves: 2, bad: 1, total: 7 });
  });

  it('bad certificates carry what makes them bad', async () => {
    const pki = await lab();
    const now = Date.now();
    const get = (k: BadCertKind) => pki.bad(k, ['device.lab.test']);
    expect((await get('expired')).notAfter.getTime()).toBeLessThan(now);
    expect((await get('not-yet-valid')).notBefore.getTime()).toBeGreaterThan(now);
    const wrong = await get('wrong-host');
    expect(wrong.names).not.toContain('device.lab.test');
    const self = new X509Certificate((await get('self-signed')).certPem);
    expect(self.issuer).toBe(self.subject);
    expect(self.verify(self.publicKey)).toBe(true); // signed by its own key
    const missing = await get('missing-intermediate');
    expect(missing.chainPem).toBe(missing.certPem);
    const unknown = await get('unknown-root');
    expect(new X509Certificate(unknown.certPem).issuer).toContain('fieldlab Unknown Intermediate CA');
  });

  it('an intermediate with pathLen 0 may not sign another CA', async () => {
    const pki = await lab();
    expect(await codeOf(pki.intermediate.createIntermediate({ commonName: 'Too Deep' }))).toBe(
      'E_PKI_PATHLEN',
    );
    const deep = await CertificateAuthority.createRoot({ commonName: 'Deep Root', pathLength: 2 });
    const i1 = await deep.createIntermediate({ commonName: 'I1' });
    const i2 = await i1.createIntermediate({ commonName: 'I2' });
    expect(i2.chainPem()).toBe(i2.certPem + i1.certPem);
    expect(new X509Certificate(i2.certPem).ca).toBe(true);
  });

  it('stop() removes the directory, is idempotent, and refuses further work', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'fieldlab-pki-test-'));
    try {
      const pki = await start({ dir: parent, name: 'lab-pki' });
      expect(dirname(pki.dir)).toBe(parent);
      const leaf = await pki.issueServer(['device.lab.test']);
      expect(existsSync(leaf.keyPath)).toBe(true);
      await pki.stop();
      expect(existsSync(pki.dir)).toBe(false);
      await pki.stop();
      expect(await codeOf(pki.issueServer(['device.lab.test']))).toBe('E_STOPPED');
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it('rejects bad options and bad input with E_BAD_OPTION', async () => {
    expect(await codeOf(start({ keyType: 'dsa' as 'ec' }))).toBe('E_BAD_OPTION');
    expect(await codeOf(start({ dir: 42 as unknown as string }))).toBe('E_BAD_OPTION');
    expect(await codeOf(start({ bogus: true } as never))).toBe('E_BAD_OPTION');
    const pki = await lab();
    expect(await codeOf(pki.issueServer([]))).toBe('E_BAD_OPTION');
    expect(await codeOf(pki.issueServer(['not a host']))).toBe('E_BAD_OPTION');
    expect(await codeOf(pki.issueServer(['x.test'], { ips: ['300.1.1.1'] }))).toBe('E_BAD_OPTION');
    expect(await codeOf(pki.bad('revoked' as BadCertKind, ['x.test']))).toBe('E_BAD_OPTION');
    expect(await codeOf(pki.intermediate.issueLeaf({}))).toBe('E_BAD_OPTION');
    expect(await codeOf(pki.intermediate.issueLeaf({ names: ['x.test'], keyType: 'dsa' as 'ec' }))).toBe(
      'E_BAD_OPTION',
    );
    const now = Date.now();
    const backwards = { names: ['x.test'], notBefore: new Date(now), notAfter: new Date(now - 1000) };
    expect(await codeOf(pki.intermediate.issueLeaf(backwards))).toBe('E_BAD_OPTION');
    expect(await codeOf(pki.createAuthority(''))).toBe('E_BAD_OPTION');
  });

  it('without the openssl binary the bundle works and hashDir names the problem', async () => {
    const pki = await lab({ openssl: '/nonexistent/fieldlab/openssl' });
    expect(await readFile(pki.trust.bundlePath, 'utf8')).toBe(pki.root.certPem);
    expect(await codeOf(() => pki.trust.hashDir)).toBe('E_PKI_NO_OPENSSL');
  });

  it('isIp tells addresses from names', () => {
    expect(['127.0.0.1', '::1', '[::1]', '100.127.0.1'].map(isIp)).toEqual([true, true, true, true]);
    expect(['device.lab.test', '127.0.0', '', '1.2.3.4.example'].map(isIp)).toEqual([
      false,
      false,
      false,
      false,
    ]);
  });
});
