import type { LabEvent } from '../../../simulators/common/events.js';
import type { Lab } from '../../lab/lab.js';
import { explainPath, type FirewallRule } from '../../topology/netns/index.js';
import type { NetnsPlacement } from './network.js';
import { frontName } from './simulator.js';

/**
 * What the kernel counted during a run on the netns backend, as lab events the evidence rules read:
 * one `firewall-match` per nftables rule that matched packets (`<host> firewall` as the source).
 */
export async function firewallEvents(placement: NetnsPlacement, time: number): Promise<LabEvent[]> {
  const out: LabEvent[] = [];
  // The rules as built (the scenario's, with the variant's patch): counters are indexed by them.
  for (const host of placement.network.plan.topology.hosts) {
    const rules = host.firewall ?? [];
    if (rules.length === 0) continue;
    const counters = await placement.network.firewallCounters(host.name).catch(() => []);
    const seen = new Set<number>();
    for (const c of counters) {
      const rule = rules[c.index];
      if (!rule || c.packets === 0 || seen.has(c.index)) continue;
      seen.add(c.index);
      out.push({
        time,
        source: `${host.name} firewall`,
        type: 'firewall-match',
        data: { action: rule.action, rule: describeRule(rule), index: c.index, packets: c.packets },
      });
    }
  }
  return out;
}

/**
 * Where the route from the client's host to each simulator it was given but never reached goes, when
 * that host has a WireGuard interface (DESIGN.md: "SYN to 203.0.113.67:8036 left via eth0, not wg-arc:
 * AllowedIPs lacks it").
 */
export async function explainRoutes(
  lab: Lab,
  placement: NetnsPlacement,
  clientHost: string,
  referenced: readonly string[],
  events: readonly LabEvent[],
): Promise<string[]> {
  const wgIfname = placement.network.host(clientHost).wgIfname;
  if (!wgIfname) return [];
  const ns = placement.network.ns(clientHost);
  const lines: string[] = [];
  const done = new Set<string>();
  for (const name of referenced) {
    const sim = lab.simulators.get(name);
    for (const ep of sim?.clientEndpoints ?? []) {
      const key = `${ep.host}:${ep.port}`;
      if (done.has(key) || reached(events, name, ep.name, sim?.endpoints[0]?.name)) continue;
      done.add(key);
      lines.push((await explainPath(ns, ep.host, { port: ep.port, wgIfname })).sentence);
    }
  }
  return lines;
}

/** Whether the simulator (or its namespace front) saw a connection on that endpoint. */
function reached(events: readonly LabEvent[], sim: string, endpoint: string, main?: string): boolean {
  const front = frontName(sim, endpoint, endpoint === main);
  return events.some((e) => e.type === 'connection' && (e.source === front || e.source === sim));
}

/** "drop tcp to 203.0.113.67 port 8036 (forward)" */
export function describeRule(r: FirewallRule): string {
  const port = r.port === undefined ? '' : ` port ${Array.isArray(r.port) ? r.port.join('-') : r.port}`;
  return [
    r.action,
    r.proto ?? 'all',
    r.from ? `from ${r.from}` : '',
    r.to ? `to ${r.to}${port}` : port.trim(),
    `(${r.chain ?? 'input+forward'})`,
  ]
    .filter(Boolean)
    .join(' ');
}
