import { isIPv4, isIPv6 } from 'node:net';
import type { Continent, LocationEntry } from './options.js';

/** A client's location as the lab's table maps it; `undefined` fields are unknown. */
export interface ClientLocation {
  continent?: Continent;
  country?: string;
  subdivision?: string;
  /** The table row's prefix length (ECS scope), or undefined when no row matched. */
  prefix?: number;
  /** Stable cache key of the location bucket. */
  key: string;
}

export const UNKNOWN_LOCATION: ClientLocation = { key: '?' };

/** IPv4 → 4 bytes, IPv6 → 16 bytes (IPv4-mapped IPv6 → 4 bytes); undefined when not an address. */
export function ipBytes(ip: string): Uint8Array | undefined {
  if (isIPv4(ip)) return Uint8Array.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped?.[1]) return ipBytes(mapped[1]);
  let s = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  const tail: number[] = [];
  if (v4?.[1]) {
    const b = v4[1].split('.').map(Number);
    tail.push(((b[0] ?? 0) << 8) | (b[1] ?? 0), ((b[2] ?? 0) << 8) | (b[3] ?? 0));
    s = s.slice(0, -v4[1].length) + (s.endsWith(`::${v4[1]}`) ? '' : '0');
  }
  const [head = '', rest] = s.split('::');
  const h = head === '' ? [] : head.split(':').map((x) => Number.parseInt(x, 16));
  const r = rest === undefined || rest === '' ? [] : rest.split(':').map((x) => Number.parseInt(x, 16));
  const words =
    rest === undefined
      ? [...h, ...tail]
      : [...h, ...new Array(8 - h.length - r.length - tail.length).fill(0), ...r, ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = ((words[i] ?? 0) >> 8) & 0xff;
    out[i * 2 + 1] = (words[i] ?? 0) & 0xff;
  }
  return out;
}

/** A parsed CIDR: the address bytes and the prefix length. */
export interface Cidr {
  bytes: Uint8Array;
  prefix: number;
}

export function parseCidr(s: string): Cidr | undefined {
  const [ip = '', len] = s.split('/');
  const bytes = ipBytes(ip);
  if (!bytes) return undefined;
  const prefix = len === undefined ? bytes.length * 8 : Number(len);
  return { bytes, prefix };
}

/** Whether the first `prefix` bits of `addr` equal those of `cidr` (same family). */
export function inCidr(addr: Uint8Array, cidr: Cidr): boolean {
  if (addr.length !== cidr.bytes.length) return false;
  let bits = cidr.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((addr[i] ?? 0) & mask) !== ((cidr.bytes[i] ?? 0) & mask)) return false;
  }
  return true;
}

/** The lab's address → location table: longest prefix wins; lookups by source address are memoised. */
export class LocationTable {
  private readonly rows: Array<{ cidr: Cidr; loc: ClientLocation }>;
  private readonly memo = new Map<string, ClientLocation>();

  constructor(entries: readonly LocationEntry[]) {
    this.rows = entries
      .map((e, i) => {
        const cidr = parseCidr(e.cidr);
        if (!cidr) throw new Error(`bad cidr ${e.cidr}`);
        const loc: ClientLocation = {
          continent: e.continent,
          ...(e.country ? { country: e.country } : {}),
          ...(e.subdivision ? { subdivision: e.subdivision } : {}),
          prefix: cidr.prefix,
          key: `L${i}`,
        };
        return { cidr, loc };
      })
      .sort((a, b) => b.cidr.prefix - a.cidr.prefix);
  }

  /** Location of an address given as bytes. */
  lookupBytes(addr: Uint8Array): ClientLocation {
    for (const r of this.rows) if (inCidr(addr, r.cidr)) return r.loc;
    return UNKNOWN_LOCATION;
  }

  /**
   * The longest prefix among the rows inside the client's subnet `addr/source` (more specific than
   * it), or undefined: such a row may answer part of the subnet differently, so the ECS scope must be
   * at least that long (RFC 7871 §7.2.1) or a resolver caches one answer for the whole subnet.
   */
  innerPrefix(addr: Uint8Array, source: number): number | undefined {
    const subnet = { bytes: addr, prefix: source };
    for (const r of this.rows) {
      if (r.cidr.prefix <= source) return undefined; // rows are sorted longest first
      if (inCidr(r.cidr.bytes, subnet)) return r.cidr.prefix;
    }
    return undefined;
  }

  /** Location of an address given as text (memoised: the hot path sees few source addresses). */
  lookup(ip: string): ClientLocation {
    let loc = this.memo.get(ip);
    if (loc === undefined) {
      const b = ipBytes(ip);
      loc = b ? this.lookupBytes(b) : UNKNOWN_LOCATION;
      if (this.memo.size > 10_000) this.memo.clear();
      this.memo.set(ip, loc);
    }
    return loc;
  }
}

/** Formats address bytes as text (4 → dotted quad, 16 → RFC 5952-ish IPv6). */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  const words: string[] = [];
  for (let i = 0; i < 16; i += 2) words.push((((b[i] ?? 0) << 8) | (b[i + 1] ?? 0)).toString(16));
  // Compress the longest run of zeros.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return words.join(':');
  return `${words.slice(0, best).join(':')}::${words.slice(best + bestLen).join(':')}`;
}
