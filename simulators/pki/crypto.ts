import { webcrypto } from 'node:crypto';
// Must load before @peculiar/x509: its tsyringe dependency checks for Reflect.getMetadata.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { KeyType } from './types.js';

/** Node's WebCrypto: async (runs off the event loop), so key generation never blocks it for long. */
export const crypto = webcrypto;
// The library types it as the DOM's `Crypto`, which this project's lib (no DOM) does not declare.
x509.cryptoProvider.set(crypto as never);

export { x509 };

/** A key pair and its private key as PKCS#8 PEM. */
export interface KeyMaterial {
  type: KeyType;
  keys: webcrypto.CryptoKeyPair;
  keyPem: string;
  /** subjectKeyIdentifier (hex), cached after the first certificate for this key. */
  keyId?: string;
}

const GENERATE: Record<KeyType, webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams> = {
  ec: { name: 'ECDSA', namedCurve: 'P-256' },
  rsa: {
    name: 'RSASSA-PKCS1-v1_5',
    modulusLength: 2048,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash: 'SHA-256',
  },
};

/** The algorithm to import a key of this type (WebCrypto ignores the generation-only members). */
export function importAlgorithm(
  type: KeyType,
): webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams {
  return GENERATE[type] as webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams;
}

/** Generates an extractable key pair of the given type and exports its private key. */
export async function generateKey(type: KeyType): Promise<KeyMaterial> {
  const keys = (await crypto.subtle.generateKey(GENERATE[type], true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { type, keys, keyPem: toPem(pkcs8, 'PRIVATE KEY') };
}

/** The signature algorithm a key of this type signs with: ecdsa-with-SHA256 or sha256WithRSAEncryption. */
export function signingAlgorithm(type: KeyType): webcrypto.Algorithm | webcrypto.EcdsaParams {
  return type === 'ec' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' };
}

/** PEM with `\n` line ends and a final newline, as OpenSSL writes it. */
export function toPem(der: ArrayBuffer, tag: string): string {
  return normalizePem(x509.PemConverter.encode(der, tag));
}

export function normalizePem(pem: string): string {
  const text = pem.replace(/\r\n/g, '\n').trim();
  return `${text}\n`;
}

/**
 * A random positive serial number of 16 bytes, hex (RFC 5280 §4.1.2.2: positive, at most 20 octets;
 * CA/B Forum: at least 64 bits of randomness). The top bit is cleared so the DER INTEGER stays positive
 * without a leading zero, and bit 6 set so it never starts with a zero octet.
 */
export function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return Buffer.from(bytes).toString('hex');
}
