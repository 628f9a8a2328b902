import { timingSafeEqual } from 'node:crypto';

export interface ProxyUser {
  username: string;
  password: string;
}

/**
 * Checks a `Proxy-Authorization` header (RFC 9110 §11.7.2) holding Basic credentials (RFC 7617 §2):
 * `ok`, `missing` (no header or another scheme) or `wrong`.
 */
export function checkBasicAuth(
  header: string | undefined,
  users: readonly ProxyUser[],
): 'ok' | 'missing' | 'wrong' {
  if (!header) return 'missing';
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m?.[1]) return 'missing';
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return 'wrong';
  const user = decoded.slice(0, colon);
  const pass = decoded.slice(colon + 1);
  return users.some((u) => u.username === user && sameSecret(u.password, pass)) ? 'ok' : 'wrong';
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
