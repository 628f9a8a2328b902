import { timingSafeEqual } from 'node:crypto';
import { FieldlabError } from '../common/index.js';
import type { ResolvedConnectProxyOptions } from './options.js';

export interface Credentials {
  username: string;
  password: string;
}

/**
 * The users the proxy accepts. A string is a proxy URL (`http://user:p%40ss@host:port`) or `user:pass`,
 * percent-decoded as URL userinfo is (RFC 3986 §3.2.1): clients put the decoded value in the Basic header.
 */
export function usersFromOptions(auth: ResolvedConnectProxyOptions['auth']): Credentials[] | undefined {
  if (auth === undefined) return undefined;
  if (typeof auth !== 'string') return auth.users;
  let user: string;
  let pass: string;
  if (auth.includes('://')) {
    let url: URL;
    try {
      url = new URL(auth);
    } catch {
      throw badAuth(auth);
    }
    user = url.username;
    pass = url.password;
  } else {
    const i = auth.indexOf(':');
    if (i < 0) throw badAuth(auth);
    user = auth.slice(0, i);
    pass = auth.slice(i + 1);
  }
  try {
    user = decodeURIComponent(user);
    pass = decodeURIComponent(pass);
  } catch {
    throw badAuth(auth);
  }
  if (!user) throw badAuth(auth);
  return [{ username: user, password: pass }];
}

function badAuth(auth: string): FieldlabError {
  const shown = auth.replace(/:[^:@/]*@/, ':***@');
  return new FieldlabError('E_BAD_OPTION', `connect-proxy: options.auth: no credentials in ${shown}`, {
    where: 'connect-proxy options.auth',
    hint: 'use http://user:pass@host:port (percent-encode @ : / in the password) or { users: [...] }',
  });
}

/** Constant-time check of Basic credentials against the user list. */
export function checkCredentials(users: readonly Credentials[], username: string, password: string): boolean {
  let ok = false;
  for (const u of users) {
    if (same(u.username, username) && same(u.password, password)) ok = true;
  }
  return ok;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** `http://user:pass@host:port` with each part percent-encoded. */
export function buildProxyUrl(scheme: 'http' | 'https', hostPort: string, creds?: Credentials): string {
  if (!creds) return `${scheme}://${hostPort}`;
  return `${scheme}://${encodeURIComponent(creds.username)}:${encodeURIComponent(creds.password)}@${hostPort}`;
}
