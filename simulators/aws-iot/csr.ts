import { randomBytes } from 'node:crypto';
import { crypto, x509 } from '../pki/crypto.js';
import type { CertificateAuthority } from '../pki/index.js';

/**
 * CreateCertificateFromCsr: signs the device's PKCS#10 request with the region's CA. The subject is
 * AWS IoT's fixed `CN=AWS IoT Certificate`; the key is the device's own (it never leaves the device).
 * Throws when the request is malformed or its self-signature does not verify.
 */
export async function signCsr(csrPem: string, ca: CertificateAuthority): Promise<string> {
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  if (!(await csr.verify())) throw new Error('the CSR signature does not verify');
  const caCert = new x509.X509Certificate(ca.certPem);
  const der = Buffer.from(ca.keyPem.replace(/-----[^-]+-----|\s+/g, ''), 'base64');
  const importAlg =
    ca.keyType === 'ec'
      ? { name: 'ECDSA', namedCurve: 'P-256' }
      : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const signingKey = await crypto.subtle.importKey('pkcs8', der, importAlg, false, ['sign']);
  const now = Date.now();
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f; // a positive INTEGER (RFC 5280 §4.1.2.2)
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial.toString('hex'),
    subject: 'CN=AWS IoT Certificate',
    issuer: caCert.subject,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 30 * 86_400_000),
    publicKey: csr.publicKey,
    signingKey,
    signingAlgorithm:
      ca.keyType === 'ec' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' },
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ],
  });
  return cert.toString('pem');
}
