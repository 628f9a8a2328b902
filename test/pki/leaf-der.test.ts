import { KeyObject, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildCertificate } from '../../simulators/pki/certs.js';
import { generateKey, x509 } from '../../simulators/pki/crypto.js';
import { children, readElement } from '../../simulators/pki/der.js';
import { LeafTemplate } from '../../simulators/pki/leaf-der.js';
import type { KeyType } from '../../simulators/pki/types.js';

/** The tbsCertificate's elements as hex, serial left out (buildCertificate picks its own). */
function tbsWithoutSerial(der: Buffer): string[] {
  const tbs = children(der, readElement(der, 0))[0]!;
  return children(der, tbs)
    .filter((_, i) => i !== 1)
    .map((e) => der.subarray(e.start, e.end).toString('hex'));
}

async function issuerOf(type: KeyType) {
  const key = await generateKey(type);
  const built = await buildCertificate({
    commonName: 'fieldlab Test Intermediate',
    key,
    notBefore: new Date('2026-01-01T00:00:00Z'),
    notAfter: new Date('2031-01-01T00:00:00Z'),
    ca: { pathLength: 0 },
  });
  return { key, built };
}

describe('leaf certificates encoded directly (leaf-der)', () => {
  const cases: Array<{
    caType: KeyType;
    leafType: KeyType;
    cn: string;
    dns: string[];
    ips: string[];
    usage: 'server' | 'client' | 'both';
    notAfter: string;
  }> = [
    {
      caType: 'ec',
      leafType: 'ec',
      cn: 'device.lab.test',
      dns: ['device.lab.test', '*.lab.test'],
      ips: ['127.0.0.1', '::1', '2001:db8::8'],
      usage: 'server',
      notAfter: '2027-01-01T00:00:00Z',
    },
    {
      caType: 'rsa',
      leafType: 'rsa',
      cn: 'under_score*name',
      dns: [],
      ips: [],
      usage: 'both',
      notAfter: '2051-06-30T12:34:56Z',
    },
    {
      caType: 'ec',
      leafType: 'rsa',
      cn: 'sensor-1',
      dns: [],
      ips: ['fe80::1'],
      usage: 'client',
      notAfter: '2027-01-01T00:00:00Z',
    },
  ];
  for (const c of cases) {
    it(`matches buildCertificate byte for byte but the serial: ${c.caType} CA, ${c.leafType} leaf, ${c.usage}`, async () => {
      const ca = await issuerOf(c.caType);
      const leafKey = await generateKey(c.leafType);
      const fields = {
        commonName: c.cn,
        notBefore: new Date('2026-06-01T10:00:00Z'),
        notAfter: new Date(c.notAfter),
        usage: c.usage,
        dns: c.dns,
        ips: c.ips,
      };
      const reference = await buildCertificate({
        ...fields,
        key: leafKey,
        issuer: { cert: ca.built.cert, key: ca.key, keyId: ca.built.keyId },
      });
      const template = new LeafTemplate({
        issuerCertDer: new X509Certificate(ca.built.certPem).raw,
        issuerKeyId: ca.built.keyId,
        issuerKey: KeyObject.from(ca.key.keys.privateKey),
        issuerKeyType: c.caType,
        leafSpkiDer: KeyObject.from(leafKey.keys.publicKey).export({ type: 'spki', format: 'der' }),
        leafKeyType: c.leafType,
      });
      const der = template.build({ ...fields, serial: '4a0102030405060708090a0b0c0d0e0f' });
      expect(tbsWithoutSerial(der)).toEqual(tbsWithoutSerial(Buffer.from(reference.cert.rawData)));

      // Signed by the CA: both Node and the ASN.1 library verify it and read the serial back.
      const node = new X509Certificate(der);
      expect(node.verify(new X509Certificate(ca.built.certPem).publicKey)).toBe(true);
      expect(node.serialNumber.toLowerCase()).toBe('4a0102030405060708090a0b0c0d0e0f');
      const parsed = new x509.X509Certificate(der);
      expect(await parsed.verify({ publicKey: ca.built.cert.publicKey, signatureOnly: true })).toBe(true);
    });
  }

  it('encodes an IPv6 SAN with an embedded IPv4 tail as its 16 octets (RFC 4291 §2.2)', async () => {
    const ca = await issuerOf('ec');
    const template = new LeafTemplate({
      issuerCertDer: new X509Certificate(ca.built.certPem).raw,
      issuerKeyId: ca.built.keyId,
      issuerKey: KeyObject.from(ca.key.keys.privateKey),
      issuerKeyType: 'ec',
      leafSpkiDer: KeyObject.from(ca.key.keys.publicKey).export({ type: 'spki', format: 'der' }),
      leafKeyType: 'ec',
    });
    const der = template.build({
      serial: '41',
      commonName: 'v6',
      dns: [],
      ips: ['2001:db8::ffff:1.2.3.4'],
      notBefore: new Date('2026-01-01T00:00:00Z'),
      notAfter: new Date('2027-01-01T00:00:00Z'),
      usage: 'server',
    });
    expect(new X509Certificate(der).checkIP('2001:db8::ffff:102:304')).toBe('2001:db8::ffff:102:304');
  });
});
