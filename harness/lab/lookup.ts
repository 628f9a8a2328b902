import { Resolver } from 'node:dns/promises';
import type { LookupFunction } from 'node:net';

/**
 * A `net.LookupFunction` for in-process Node clients: lab host names from the lab's table first; other
 * names through the lab's DNS server when the lab runs one (so geolocation and DNS faults apply to Node
 * clients too); anything else fails with ENOTFOUND, so no lookup ever reaches real DNS.
 */
export function createLabLookup(
  hosts: ReadonlyMap<string, string>,
  dnsServer: () => string | undefined = () => undefined,
  /** Where names go when the lab has no DNS server: inside a lab container, its resolver (Docker's). */
  fallback?: LookupFunction,
): LookupFunction {
  let resolver: { server: string; r: Resolver } | undefined;
  return (hostname, options, callback) => {
    const all = options.all === true;
    const answer = (address: string) => {
      // `all: true` wants every address as a list (Node's own lookup answers the same way).
      if (all) callback(null, [{ address, family: 4 }]);
      else callback(null, address, 4);
    };
    const fail = (code: string, message: string) =>
      callback(Object.assign(new Error(message), { code, syscall: 'getaddrinfo', hostname }), '', 4);
    const name = hostname.toLowerCase().replace(/\.$/, '');
    const literal = /^\d+\.\d+\.\d+\.\d+$/.test(name) ? name : undefined;
    const known = literal ?? hosts.get(name);
    if (known) {
      process.nextTick(answer, known);
      return;
    }
    const server = dnsServer();
    const system = server ? undefined : fallback;
    if (system) {
      system(hostname, options, callback);
      return;
    }
    if (!server) {
      process.nextTick(fail, 'ENOTFOUND', `getaddrinfo ENOTFOUND ${hostname}`);
      return;
    }
    if (resolver?.server !== server) {
      const r = new Resolver({ timeout: 2000, tries: 1 });
      r.setServers([server]);
      resolver = { server, r };
    }
    resolver.r.resolve4(name).then(
      (addrs) => (addrs[0] ? answer(addrs[0]) : fail('ENODATA', `queryA ENODATA ${hostname}`)),
      (err: NodeJS.ErrnoException) => fail(err.code ?? 'ENOTFOUND', err.message),
    );
  };
}
