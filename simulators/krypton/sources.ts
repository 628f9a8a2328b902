import { isIPv4 } from 'node:net';
import { FieldlabError } from '../common/errors.js';

function toNumber(ip: string): number {
  return ip.split('.').reduce((n, p) => n * 256 + Number(p), 0);
}

/**
 * A predicate for "does this source address lie in one of these IPv4 networks" (`a.b.c.d/len` or a bare
 * address). Throws `E_BAD_OPTION` for a malformed network.
 */
export function sourceMatcher(networks: readonly string[], where: string): (ip: string) => boolean {
  const nets = networks.map((n) => {
    const [ip, len] = n.split('/');
    const prefix = len === undefined ? 32 : Number(len);
    if (!ip || !isIPv4(ip) || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
      throw new FieldlabError('E_BAD_OPTION', `${where}: "${n}" is not an IPv4 network`, {
        where,
        hint: 'write a.b.c.d/len, e.g. 100.64.0.0/10',
      });
    }
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    return { net: (toNumber(ip) & mask) >>> 0, mask };
  });
  return (ip) => isIPv4(ip) && nets.some((n) => (toNumber(ip) & n.mask) >>> 0 === n.net);
}
