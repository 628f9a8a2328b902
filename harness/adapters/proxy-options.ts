import { z } from 'zod';
import type { Destinations } from '../../simulators/common/destinations.js';
import { destinationsSchema } from '../../simulators/common/destinations.js';
import type { AdapterContext, StartedSimulator } from './adapter.js';
import { labDestinations } from './proxy-destinations.js';

/** What the lab proxies (connect-proxy, tls-inspector) share in their scenario options and start. */

export const credentials = z.object({ username: z.string(), password: z.string() }).strict();
export const hostPortMap = z.record(z.string(), z.string());
/**
 * A lab proxy reaches the lab's hosts (names and addresses) and nothing else; these add more: names
 * (`*` wildcards), addresses, CIDRs, or `any` for an open proxy.
 */
export const proxyDestinations = destinationsSchema.optional();

/** A lab proxy starts with the scenario's extra destinations; the lab's hosts join once all run. */
export function proxyReady(
  ctx: AdapterContext,
  extra: z.output<typeof proxyDestinations>,
  handle: { setDestinations(d: Destinations): void },
): Pick<StartedSimulator, 'labReady'> {
  if (extra === 'any') return {};
  return {
    labReady: async (hosts) =>
      handle.setDestinations(await labDestinations(hosts, ctx.lookup, ctx.address, extra)),
  };
}
