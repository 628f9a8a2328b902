import type { LookupFunction } from 'node:net';

/**
 * A `net.LookupFunction` that resolves lab host names from the lab's table and nothing else: a name
 * the lab does not know fails with ENOTFOUND, so an in-process Node client never queries real DNS.
 */
export function createLabLookup(hosts: ReadonlyMap<string, string>): LookupFunction {
  return (hostname, options, callback) => {
    const literal = /^\d+\.\d+\.\d+\.\d+$/.test(hostname) ? hostname : undefined;
    const address = literal ?? hosts.get(hostname.toLowerCase().replace(/\.$/, ''));
    if (!address) {
      const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
        code: 'ENOTFOUND',
        errno: -3008,
        syscall: 'getaddrinfo',
        hostname,
      });
      process.nextTick(callback, err, '', 4);
      return;
    }
    if ((options as { all?: boolean }).all) {
      process.nextTick(
        callback as unknown as (e: null, a: Array<{ address: string; family: number }>) => void,
        null,
        [{ address, family: 4 }],
      );
    } else process.nextTick(callback, null, address, 4);
  };
}
