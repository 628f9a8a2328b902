import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Shared access signatures as IoT Hub and DPS use them:
 * `SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded base64>&se=<expiry s>[&skn=<policy>]`,
 * signed as base64(HMAC-SHA256(base64-decoded key, `<url-encoded resource>\n<expiry>`)).
 */
export interface SasToken {
  /** The resource URI, decoded (`hub.example.com/devices/dev-1`). */
  resource: string;
  /** The resource exactly as it appears in the token (URL-encoded): the string that is signed. */
  rawResource: string;
  signature: string;
  expiry: number;
  keyName?: string;
}

/** Parses a SAS token (with or without the `SharedAccessSignature ` prefix); undefined when malformed. */
export function parseSas(token: string): SasToken | undefined {
  const body = token.trim().replace(/^SharedAccessSignature\s+/, '');
  const fields = new Map<string, string>();
  for (const part of body.split('&')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const sr = fields.get('sr');
  const sig = fields.get('sig');
  const se = Number(fields.get('se'));
  if (!sr || !sig || !Number.isFinite(se)) return undefined;
  try {
    const skn = fields.get('skn');
    return {
      resource: decodeURIComponent(sr),
      rawResource: sr,
      signature: decodeURIComponent(sig),
      expiry: se,
      ...(skn ? { keyName: decodeURIComponent(skn) } : {}),
    };
  } catch {
    return undefined;
  }
}

/** base64(HMAC-SHA256(base64-decoded key, data)). */
export function hmacBase64(keyBase64: string, data: string): string {
  return createHmac('sha256', Buffer.from(keyBase64, 'base64')).update(data).digest('base64');
}

/** A fresh 32-byte symmetric key, base64 (what the portal generates). */
export function generateKey(): string {
  return randomBytes(32).toString('base64');
}

/** DPS group enrollments: a device's key is HMAC-SHA256(group key, registration id). */
export function deriveDeviceKey(groupKeyBase64: string, registrationId: string): string {
  return hmacBase64(groupKeyBase64, registrationId);
}

/** Builds a SAS token (what the SDKs do), for tests and tools. */
export function buildSas(resource: string, keyBase64: string, expiry: number, keyName?: string): string {
  const sr = encodeURIComponent(resource);
  const sig = encodeURIComponent(hmacBase64(keyBase64, `${sr}\n${expiry}`));
  return `SharedAccessSignature sr=${sr}&sig=${sig}&se=${expiry}${keyName ? `&skn=${keyName}` : ''}`;
}

/** Why a token was refused, or `ok`. */
export type SasVerdict =
  | { ok: true; token: SasToken }
  | { ok: false; reason: 'malformed' | 'wrong-resource' | 'expired' | 'bad-signature' | 'unknown-identity' };

/**
 * Verifies a token for `expectedResource` (compared case-insensitively, as the hub does for host names)
 * signed with one of `keys`, not expired at `now` (ms). With `ignorePort`, a `:port` after the host in the
 * token's resource is ignored: a lab client reaching the hub on a mapped port (`HostName=host:8883`)
 * signs `host:8883/devices/<id>`, and the port is the lab's plumbing, not the device's identity.
 */
export function verifySas(
  token: string | undefined,
  expectedResource: string,
  keys: readonly string[],
  opts: { now?: number; ignorePort?: boolean } = {},
): SasVerdict {
  const now = opts.now ?? Date.now();
  const t = token === undefined ? undefined : parseSas(token);
  if (!t) return { ok: false, reason: 'malformed' };
  const resource = opts.ignorePort ? t.resource.replace(/^([^/:]+):\d+\//, '$1/') : t.resource;
  if (resource.toLowerCase() !== expectedResource.toLowerCase())
    return { ok: false, reason: 'wrong-resource' };
  if (t.expiry * 1000 < now) return { ok: false, reason: 'expired' };
  const given = Buffer.from(t.signature, 'base64');
  for (const key of keys) {
    const want = Buffer.from(hmacBase64(key, `${t.rawResource}\n${t.expiry}`), 'base64');
    if (want.length === given.length && timingSafeEqual(want, given)) return { ok: true, token: t };
  }
  return { ok: false, reason: 'bad-signature' };
}
