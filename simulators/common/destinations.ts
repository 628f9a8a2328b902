/**
 * Where a lab proxy may connect onwards. A lab proxy must reach the lab and nothing else, unless told more:
 * an open proxy on a shared machine lets anyone reach its loopback services and the internet through it.
 *
 * A destination is allowed when its host
 *   - matches one of the allowed names (`hub.iot.example.com`, `*.lab.example`), or
 *   - is an address inside one of the allowed addresses or CIDRs (`127.20.1.3`, `198.18.7.0/24`), or
 *   - is a name that resolves only to such addresses.
 * `any` lifts the check. Both the check before the proxy answers (403) and the lookup the proxy connects
 * with apply the same list, so a name that resolves differently the second time reaches nothing else.
 */
import { type LookupAddress, lookup as systemLookup } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { z } from 'zod';
import { hostMatcher } from './targets.js';

/** Loopback: what a proxy listening on loopback reaches by default. */
export const LOOPBACK_DESTINATIONS: readonly string[] = ['localhost', '127.0.0.0/8', '::1'];

/**
 * The default for a proxy given no list: it adds no reach its clients lack. Listening on loopback, its
 * clients are local and reach loopback anyway: loopback. Listening anywhere else (0.0.0.0, a LAN
 * address), it would hand the machine's loopback services to the network: nothing, until told.
 */
export function defaultDestinations(listenHost: string): Destinations {
  const h = listenHost.replace(/^\[|\]$/g, '').toLowerCase();
  const loopback = h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
  return loopback ? [...LOOPBACK_DESTINATIONS] : [];
}

type Entry =
  | { kind: 'name'; pattern: string }
  | { kind: 'address'; address: string; family: 'ipv4' | 'ipv6' }
  | { kind: 'subnet'; network: string; prefix: number; family: 'ipv4' | 'ipv6' };

/** A host name or a pattern with `*` wildcards (RFC 1123 letters, digits, `-`, `.`; `_` as DNS allows). */
const NAME = /^[a-z0-9_*](?:[a-z0-9_*.-]*[a-z0-9_*])?$/i;

/** One list entry: a name pattern, an IP address or a CIDR; undefined when it is none of these. */
export function parseDestination(raw: string): Entry | undefined {
  const e = raw.trim().replace(/^\[|\]$/g, '');
  const slash = e.indexOf('/');
  if (slash >= 0) {
    const network = e.slice(0, slash);
    const bits = e.slice(slash + 1);
    const v = isIP(network);
    if (v === 0 || !/^\d{1,3}$/.test(bits)) return undefined;
    const prefix = Number(bits);
    if (prefix > (v === 4 ? 32 : 128)) return undefined;
    return { kind: 'subnet', network, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
  }
  const v = isIP(e);
  if (v !== 0) return { kind: 'address', address: e, family: v === 4 ? 'ipv4' : 'ipv6' };
  return NAME.test(e) ? { kind: 'name', pattern: e.toLowerCase() } : undefined;
}

const entrySchema = z.string().refine((s) => parseDestination(s) !== undefined, {
  message: 'expected a host name (wildcards: *.lab.example), an IP address or a CIDR (198.18.7.0/24)',
});

/** `any`, or the names, addresses and CIDRs a proxy may connect to. */
export const destinationsSchema = z.union([z.literal('any'), z.array(entrySchema)]);
export type Destinations = z.output<typeof destinationsSchema>;

export type DestinationDecision =
  /** `by`: what allowed it (`any`, `name *.lab.example`, `address 127.20.1.3`). */
  | { action: 'allow'; by: string; address?: string }
  /** `reason`: why it is not a destination, as a sentence. */
  | { action: 'deny'; reason: string }
  /** The name did not resolve: the connection will fail on its own (and its lookup is guarded). */
  | { action: 'unresolved'; code: string; message: string };

/** The error a guarded lookup fails with for an address outside the list. */
export const E_DESTINATION_DENIED = 'E_DESTINATION_DENIED';

/** IPv4-mapped IPv6 (`::ffff:127.0.0.1`) is checked as the IPv4 address it carries. */
function plainAddress(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (m?.[1]) return { address: m[1], family: 'ipv4' };
  return { address, family: isIP(address) === 6 ? 'ipv6' : 'ipv4' };
}

export class DestinationPolicy {
  private entries: readonly string[] = [];
  private any = false;
  private names: (host: string) => string | undefined = () => undefined;
  private blocks = new BlockList();

  /**
   * @param resolve how the proxy resolves names (a lab's lookup, or the system's); the check resolves
   *   with it too, so both see the same answer.
   */
  constructor(
    destinations: Destinations,
    private readonly resolve: LookupFunction = systemLookup,
  ) {
    this.set(destinations);
  }

  /** Replaces the list (a lab hands its proxies the lab's hosts once every simulator runs). */
  set(destinations: Destinations): void {
    this.any = destinations === 'any';
    this.entries = destinations === 'any' ? [] : [...destinations];
    const names: string[] = [];
    const blocks = new BlockList();
    for (const raw of this.entries) {
      const e = parseDestination(raw);
      if (e?.kind === 'name') names.push(e.pattern);
      else if (e?.kind === 'address') blocks.addAddress(e.address, e.family);
      else if (e?.kind === 'subnet') blocks.addSubnet(e.network, e.prefix, e.family);
    }
    this.names = hostMatcher(names);
    this.blocks = blocks;
  }

  /** The list as given, or `any`. */
  get list(): Destinations {
    return this.any ? 'any' : [...this.entries];
  }

  /** For 403 bodies and reports: `localhost, 127.0.0.0/8, ::1` (the first few, then how many more). */
  describe(max = 8): string {
    if (this.any) return 'any destination';
    if (this.entries.length === 0) return 'nothing (an empty list)';
    const shown = this.entries.slice(0, max).join(', ');
    return this.entries.length > max ? `${shown} and ${this.entries.length - max} more` : shown;
  }

  allowsAddress(address: string): boolean {
    if (this.any) return true;
    const a = plainAddress(address);
    return this.blocks.check(a.address, a.family);
  }

  /** Whether the proxy may connect to `host` (a name or an address, IPv6 with or without brackets). */
  async check(host: string): Promise<DestinationDecision> {
    if (this.any) return { action: 'allow', by: 'any' };
    const h = host.replace(/^\[|\]$/g, '').toLowerCase();
    if (isIP(h) !== 0) {
      return this.allowsAddress(h)
        ? { action: 'allow', by: `address ${h}`, address: h }
        : { action: 'deny', reason: `${h} is not among the allowed addresses` };
    }
    const pattern = this.names(h);
    if (pattern !== undefined) return { action: 'allow', by: `name ${pattern}` };
    let found: LookupAddress[];
    try {
      found = await this.resolveAll(h);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { action: 'unresolved', code: e.code ?? 'ENOTFOUND', message: e.message };
    }
    const outside = found.find((a) => !this.allowsAddress(a.address));
    if (outside || found.length === 0) {
      return {
        action: 'deny',
        reason: `${h} is not an allowed name and resolves to ${outside?.address ?? 'nothing'}, not an allowed address`,
      };
    }
    return { action: 'allow', by: `address ${found[0]?.address} (${h})`, address: found[0]?.address ?? '' };
  }

  /**
   * The lookup to connect with: the proxy's own resolution, failing with `E_DESTINATION_DENIED` when a
   * name (other than an allowed one) resolves outside the list. IP literals never reach a lookup: `check()`
   * covers them before the connection.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    if (this.any || this.names(hostname.toLowerCase().replace(/\.$/, '')) !== undefined) {
      this.resolve(hostname, options, callback);
      return;
    }
    this.resolve(hostname, options, (err, a, f) => {
      if (err) {
        callback(err, a, f);
        return;
      }
      const list = typeof a === 'string' ? [{ address: a, family: f ?? 4 }] : a;
      const outside = list.find((x) => !this.allowsAddress(x.address));
      if (outside) {
        const denied = new Error(`${hostname} resolves to ${outside.address}, not an allowed destination`);
        callback(Object.assign(denied, { code: E_DESTINATION_DENIED, hostname }), '', 4);
        return;
      }
      callback(null, a, f);
    });
  };

  private resolveAll(host: string): Promise<LookupAddress[]> {
    return new Promise((resolve, reject) => {
      this.resolve(host, { all: true }, (err, a, f) => {
        if (err) reject(err);
        else resolve(typeof a === 'string' ? [{ address: a, family: f ?? 4 }] : a);
      });
    });
  }
}
