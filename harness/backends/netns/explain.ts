import type { LabEvent } from '../../../simulators/common/events.js';
import { endpointTarget, type Lab } from '../../lab/lab.js';
import { explainPath, type FirewallRule, parseCidr } from '../../topology/netns/index.js';
import type { NetnsPlacement } from './network.js';

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
    for (const ep of sim?.endpoints ?? []) {
      const key = `${ep.host}:${ep.port}`;
      if (done.has(key) || reached(events, name, ep.name, sim?.endpoints[0]?.name)) continue;
      done.add(key);
      lines.push((await explainPath(ns, ep.host, { port: ep.port, wgIfname })).sentence);
    }
  }
  return lines;
}

/**
 * Which firewall stopped a simulator's own hop (a proxy's to its target): for each target a simulator
 * could not reach (`upstream-error`), the drop or reject rules whose counters moved and that match that
 * simulator's address and the target's (the lab name's address on netns). "proxy (198.51.100.3, on host
 * proxy) could not reach hub.iot.example.com:443 (203.0.113.20): corp's firewall dropped the proxy's
 * packets on its way out (drop all from 198.51.100.0/24 (forward), 3 packets)".
 */
export function explainBlockedHops(
  lab: Lab,
  placement: NetnsPlacement,
  events: readonly LabEvent[],
): string[] {
  const drops = events.filter(
    (e) => e.source.endsWith(' firewall') && e.type === 'firewall-match' && dropped(e.data),
  );
  if (drops.length === 0) return [];
  const lines = new Set<string>();
  for (const e of events) {
    if (e.type !== 'upstream-error' || !lab.simulators.has(e.source)) continue;
    const target = (e.data as { target?: unknown } | undefined)?.target;
    if (typeof target !== 'string') continue;
    const from = placement.hostOf(lab.sim(e.source).decl.host);
    if (!from) continue;
    const targetHost = target.replace(/:\d+$/, '');
    const to = placement.names.get(targetHost) ?? targetHost;
    for (const d of drops) {
      const rule = ruleOf(placement, d);
      if (!rule || !covers(rule.from, from.address) || !covers(rule.to, to)) continue;
      const router = d.source.replace(/ firewall$/, '');
      const data = d.data as { action: string; packets: number };
      lines.add(
        `${e.source} (${from.address}, on host ${from.host}) could not reach ${target} (${to}): ${router}'s firewall ${data.action === 'drop' ? 'dropped' : 'rejected'} ${e.source}'s packets on their way out (${describeRule(rule)}, ${data.packets} packet(s))`,
      );
    }
  }
  return [...lines];
}

function dropped(data: unknown): boolean {
  const action = (data as { action?: unknown } | undefined)?.action;
  return action === 'drop' || action === 'reject';
}

/** The rule a `firewall-match` event counted (by its host and index). */
function ruleOf(placement: NetnsPlacement, e: LabEvent): FirewallRule | undefined {
  const host = e.source.replace(/ firewall$/, '');
  const index = (e.data as { index?: unknown } | undefined)?.index;
  const h = placement.network.plan.topology.hosts.find((x) => x.name === host);
  return typeof index === 'number' ? h?.firewall?.[index] : undefined;
}

/** Whether a rule's `from`/`to` (absent: any) holds an address. */
function covers(cidr: string | undefined, address: string): boolean {
  if (cidr === undefined) return true;
  const outer = parseCidr(cidr);
  const inner = parseCidr(address);
  if (!outer || !inner) return false;
  const mask = outer.prefix === 0 ? 0 : (0xffffffff << (32 - outer.prefix)) >>> 0;
  return (inner.address & mask) >>> 0 === outer.network;
}

/** Whether the simulator (or the relay in front of it, in its namespace) saw a connection on that endpoint. */
function reached(events: readonly LabEvent[], sim: string, endpoint: string, main?: string): boolean {
  const relay = `${endpointTarget(sim, endpoint, endpoint === main)}-relay`;
  return events.some((e) => e.type === 'connection' && (e.source === relay || e.source === sim));
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
