/**
 * An HTTP CONNECT + forward proxy, as IoT devices meet in the field (Squid-like), built on proxy-chain:
 *
 *   client ──CONNECT host:port──► proxy ─ auth (407) ─ policy on host:port (403) ─ map ─┬─► destination
 *                                                                                      └─► upstream proxy
 *
 * Basic auth, ordered allow/deny rules on port and host (default: CONNECT only to 443, as Squid's
 * SSL_ports), a target map so SDKs with hard-coded ports reach lab fakes on high ports, upstream chaining,
 * an optional TLS listener, and events for every decision. Whatever the rules say, the proxy connects
 * only to its `destinations` (default loopback; a lab gives its own hosts): it is never an open proxy.
 */
import { z } from 'zod';
import {
  DestinationPolicy,
  type Destinations,
  defaultDestinations,
  destinationsSchema,
} from '../common/destinations.js';
import type { Endpoint, SimulatorEvents, SimulatorHandle } from '../common/index.js';
import { SimulatorEvents as Events, hostPort, parseOptions } from '../common/index.js';
import { buildTargetMap } from '../common/targets.js';
import { buildProxyUrl, type Credentials, usersFromOptions } from './auth.js';
import type { ConnectProxyEvents, ConnectProxyStats } from './events.js';
import { type ConnectProxyOptions, connectProxyOptionsSchema } from './options.js';
import { Policy, rulesFromOptions } from './policy.js';
import { LabProxyServer } from './server.js';

export type { Credentials } from './auth.js';
export type { ConnectionTimings, ConnectProxyEvents, ConnectProxyStats } from './events.js';
export {
  type ConnectProxyOptions,
  connectProxyOptionsSchema,
  type PolicyRule,
  policyRuleSchema,
  type ResolvedConnectProxyOptions,
} from './options.js';
export { DEFAULT_ALLOW_PORTS, explainRule, Policy, type PolicyDecision, rulesFromOptions } from './policy.js';

/** A running connect proxy. */
export interface ConnectProxyHandle extends SimulatorHandle<ConnectProxyEvents, ConnectProxyStats> {
  /** `[{ name: 'proxy', protocol: 'http' | 'https', url }]`. */
  readonly endpoints: readonly Endpoint[];
  readonly events: SimulatorEvents<ConnectProxyEvents>;
  /** The compiled policy; `policy.explain()` lists its rules. */
  readonly policy: Policy;
  /** Where the proxy may connect (`destinations.describe()`). */
  readonly destinations: DestinationPolicy;
  /** Replaces the destination list, for requests from now on (a lab hands over its hosts once up). */
  setDestinations(destinations: Destinations): void;
  /** `http://host:port`, or `http://user:pass@host:port` (percent-encoded) with credentials. */
  proxyUrl(credentials?: Credentials): string;
}

/** Starts the proxy on `host:port` (default 127.0.0.1, a free port). */
export async function start(options?: ConnectProxyOptions): Promise<ConnectProxyHandle> {
  const opts = parseOptions(connectProxyOptionsSchema, options, 'connect-proxy');
  const users = usersFromOptions(opts.auth);
  const { rules, defaultAction } = rulesFromOptions(opts);
  const policy = new Policy(rules, defaultAction);
  const events = new Events<ConnectProxyEvents>(opts.name);
  const destinations = new DestinationPolicy(
    opts.destinations ?? defaultDestinations(opts.host),
    opts.lookup,
  );
  const server = new LabProxyServer({
    host: opts.host,
    port: opts.port,
    realm: typeof opts.auth === 'object' ? opts.auth.realm : 'fieldlab',
    users,
    policy,
    map: buildTargetMap(opts.map),
    upstream: opts.upstream,
    upstreamRules: opts.upstreamRules,
    tls: opts.tls,
    connectTimeoutMs: opts.connectTimeoutMs,
    destinations,
    events,
  });
  await server.listen();
  const scheme = opts.tls ? 'https' : 'http';
  const authority = hostPort(opts.host, server.port);
  let stopping: Promise<void> | undefined;
  return {
    name: opts.name,
    endpoints: [
      {
        name: 'proxy',
        host: opts.host,
        port: server.port,
        protocol: scheme,
        url: `${scheme}://${authority}`,
      },
    ],
    events,
    policy,
    destinations,
    setDestinations(list) {
      destinations.set(
        parseOptions(z.object({ destinations: destinationsSchema }), { destinations: list }, opts.name)
          .destinations,
      );
    },
    proxyUrl: (credentials) => buildProxyUrl(scheme, authority, credentials),
    stats() {
      const live = server.liveBytes();
      return {
        ...server.counts,
        active: server.active,
        activeTargets: server.activeTargets,
        bytesUp: server.counts.bytesUp + live.up,
        bytesDown: server.counts.bytesDown + live.down,
      };
    },
    stop() {
      stopping ??= server.shutdown();
      return stopping;
    },
  };
}
