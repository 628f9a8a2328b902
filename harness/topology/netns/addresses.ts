import { FieldlabError } from '../../../simulators/common/errors.js';

/**
 * IPv4 address arithmetic and the lab address plan (DESIGN.md, "Address plan"): lab addresses come only
 * from two documentation ranges, carrier-grade NAT space and the benchmark range; anything else (other
 * documentation ranges, private and public addresses) is refused.
 */

export interface Cidr {
  /** Network address as an unsigned 32-bit number (host bits cleared). */
  network: number;
  prefix: number;
  /** The address as written (host bits kept), e.g. 198.51.100.10 of 198.51.100.10/24. */
  address: number;
}

/** The only ranges a lab may use. */
export const LAB_RANGES: readonly string[] = [
  '198.51.100.0/24',
  '203.0.113.0/24',
  '100.64.0.0/10',
  '198.18.0.0/15',
];

/** Parses a dotted quad; undefined when it is not one. */
export function parseIp(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses `a.b.c.d/len` (or a bare address, as /32); undefined when malformed. */
export function parseCidr(text: string): Cidr | undefined {
  const [ip, len, extra] = text.trim().split('/');
  if (extra !== undefined || ip === undefined) return undefined;
  const address = parseIp(ip);
  if (address === undefined) return undefined;
  const prefix = len === undefined ? 32 : /^\d{1,2}$/.test(len) ? Number(len) : Number.NaN;
  if (!(prefix >= 0 && prefix <= 32)) return undefined;
  return { network: (address & mask(prefix)) >>> 0, prefix, address };
}

export function formatCidr(c: Cidr, keepHost = false): string {
  return `${formatIp(keepHost ? c.address : c.network)}/${c.prefix}`;
}

/** True when `inner` (address or network) lies wholly inside `outer`. */
export function contains(outer: Cidr, inner: Cidr): boolean {
  if (inner.prefix < outer.prefix) return false;
  return (inner.network & mask(outer.prefix)) >>> 0 === outer.network;
}

export function containsIp(outer: Cidr, ip: number): boolean {
  return (ip & mask(outer.prefix)) >>> 0 === outer.network;
}

const labRanges = LAB_RANGES.map((r) => parseCidr(r) as Cidr);

/** The lab range holding `c`, or undefined. */
export function labRangeOf(c: Cidr): string | undefined {
  const i = labRanges.findIndex((r) => contains(r, c));
  return i < 0 ? undefined : LAB_RANGES[i];
}

/**
 * Parses a lab address or network and checks it lies in the address plan. Throws `E_BAD_ADDRESS` for a
 * malformed value and `E_ADDRESS_NOT_LAB`, naming the lab ranges, for an address outside the plan.
 */
export function labCidr(text: string, where: string): Cidr {
  const c = parseCidr(text);
  if (!c) {
    throw new FieldlabError('E_BAD_ADDRESS', `${where}: "${text}" is not an IPv4 address or a.b.c.d/len`, {
      where,
      hint: 'write an IPv4 address such as 198.51.100.10/24',
    });
  }
  if (!labRangeOf(c)) {
    const ranges = LAB_RANGES.join(', ');
    throw new FieldlabError(
      'E_ADDRESS_NOT_LAB',
      `${where}: ${text} is outside the lab address plan (${ranges})`,
      {
        where,
        hint: `use an address from ${ranges}; the seeds' public addresses become 203.0.113.x`,
      },
    );
  }
  return c;
}
