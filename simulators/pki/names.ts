import { isIP } from 'node:net';
import { FieldlabError } from '../common/errors.js';

/** True when `s` is an IPv4 or IPv6 address (brackets allowed around IPv6: `[::1]`). */
export function isIp(s: string): boolean {
  return isIP(unbracket(s)) !== 0;
}

function unbracket(s: string): string {
  return s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
}

// RFC 5280 §4.2.1.6: dNSName is an IA5String in preferred name syntax; a leading `*.` label is the
// wildcard form TLS clients accept (RFC 6125 §6.4.3).
const LABEL = '[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const DNS_NAME = new RegExp(`^(\\*\\.)?${LABEL}(\\.${LABEL})*\\.?$`);

/** Splits SAN entries into DNS names and IPs, checking each; throws E_BAD_OPTION on a bad entry. */
export function splitNames(
  names: readonly string[] = [],
  ips: readonly string[] = [],
): { dns: string[]; ips: string[] } {
  const dns: string[] = [];
  const addrs: string[] = [];
  for (const raw of names) {
    if (typeof raw !== 'string' || raw === '') throw badName(raw, 'names');
    if (isIp(raw)) addrs.push(unbracket(raw));
    else if (DNS_NAME.test(raw) && raw.length <= 253) dns.push(raw.toLowerCase());
    else throw badName(raw, 'names');
  }
  for (const raw of ips) {
    if (typeof raw !== 'string' || !isIp(raw)) throw badName(raw, 'ips');
    addrs.push(unbracket(raw));
  }
  return { dns: [...new Set(dns)], ips: [...new Set(addrs)] };
}

function badName(value: unknown, field: string): FieldlabError {
  return new FieldlabError(
    'E_BAD_OPTION',
    `pki: ${field}: ${JSON.stringify(value)} is not a DNS name or IP address`,
    {
      where: `pki ${field}`,
      hint: 'use host names like device.lab.test (a leading *. for a wildcard) or IPs like 127.0.0.1',
    },
  );
}

/** A file basename from a host name: `*.lab.test` → `_.lab.test`. */
export function fileSafe(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 80) || 'cert';
}
