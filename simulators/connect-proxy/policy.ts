/**
 * The proxy's access policy, Squid-like: ordered rules as data, first match wins, then a default.
 * Each decision carries the rule that made it and a sentence explaining why (for 403 bodies and reports).
 */

import { hostMatcher } from '../common/targets.js';
import type { PolicyRule, ResolvedConnectProxyOptions } from './options.js';

export type RequestKind = 'CONNECT' | 'HTTP';

export interface PolicyDecision {
  action: 'allow' | 'deny';
  /** 1-based position; rules.length + 1 for the default. */
  index: number;
  name: string;
  /** `#2 'deny-port-not-ssl'` */
  label: string;
  /** Why the rule matched: `port 8883 is not in SSL_ports [443]`. */
  reason: string;
}

interface CompiledRule {
  rule: PolicyRule;
  name: string;
  hosts?: (h: string) => string | undefined;
  notHosts?: (h: string) => string | undefined;
}

/** Squid's stock SSL_ports. */
export const DEFAULT_ALLOW_PORTS = [443];

/** Turns the simple form (allowPorts/allowHosts/denyHosts) into rules, as a Squid config would read. */
export function rulesFromOptions(o: ResolvedConnectProxyOptions): {
  rules: PolicyRule[];
  defaultAction: 'allow' | 'deny';
} {
  if (o.rules) {
    const last = o.rules[o.rules.length - 1];
    // Squid: when no http_access line matches, the default is the opposite of the last line's action.
    const fallback = last ? (last.action === 'allow' ? 'deny' : 'allow') : 'allow';
    return { rules: o.rules, defaultAction: o.defaultAction ?? fallback };
  }
  const rules: PolicyRule[] = [];
  if (o.denyHosts) rules.push({ action: 'deny', name: 'deny-hosts', hosts: o.denyHosts });
  rules.push({
    action: 'deny',
    name: 'deny-port-not-ssl',
    method: 'CONNECT',
    notPorts: o.allowPorts ?? DEFAULT_ALLOW_PORTS,
    portsName: 'SSL_ports',
  });
  if (o.allowHosts) rules.push({ action: 'allow', name: 'allow-hosts', hosts: o.allowHosts });
  return { rules, defaultAction: o.defaultAction ?? (o.allowHosts ? 'deny' : 'allow') };
}

export class Policy {
  private readonly compiled: CompiledRule[];

  constructor(
    readonly rules: readonly PolicyRule[],
    readonly defaultAction: 'allow' | 'deny',
  ) {
    this.compiled = rules.map((rule, i) => ({
      rule,
      name: rule.name ?? `rule-${i + 1}`,
      ...(rule.hosts ? { hosts: hostMatcher(rule.hosts) } : {}),
      ...(rule.notHosts ? { notHosts: hostMatcher(rule.notHosts) } : {}),
    }));
  }

  /** The first rule matching `kind host:port`, or the default. */
  evaluate(kind: RequestKind, host: string, port: number): PolicyDecision {
    for (let i = 0; i < this.compiled.length; i++) {
      const c = this.compiled[i]!;
      const why = matches(c, kind, host, port);
      if (why !== undefined) {
        return {
          action: c.rule.action,
          index: i + 1,
          name: c.name,
          label: `#${i + 1} '${c.name}'`,
          reason: why,
        };
      }
    }
    const index = this.compiled.length + 1;
    return {
      action: this.defaultAction,
      index,
      name: 'default',
      label: `#${index} 'default'`,
      reason: `no rule matched; default action is ${this.defaultAction}`,
    };
  }

  /** One line per rule, for reports and the README: `#1 deny CONNECT when port not in SSL_ports [443]`. */
  explain(): string[] {
    const lines = this.compiled.map((c, i) => `#${i + 1} '${c.name}': ${explainRule(c.rule)}`);
    lines.push(`#${lines.length + 1} 'default': ${this.defaultAction}`);
    return lines;
  }
}

/** The sentence for one rule, e.g. `deny CONNECT when port is not in SSL_ports [443]`. */
export function explainRule(r: PolicyRule): string {
  const conds: string[] = [];
  const list = r.portsName ? `${r.portsName} ` : '';
  if (r.ports) conds.push(`port is in ${list}[${r.ports.join(', ')}]`);
  if (r.notPorts) conds.push(`port is not in ${list}[${r.notPorts.join(', ')}]`);
  if (r.hosts) conds.push(`host matches ${r.hosts.join(', ')}`);
  if (r.notHosts) conds.push(`host matches none of ${r.notHosts.join(', ')}`);
  const what = r.method ?? 'any request';
  return `${r.action} ${what}${conds.length ? ` when ${conds.join(' and ')}` : ''}`;
}

/** Undefined when the rule does not match; else why it matched. */
function matches(c: CompiledRule, kind: RequestKind, host: string, port: number): string | undefined {
  const r = c.rule;
  const why: string[] = [];
  if (r.method && r.method !== kind) return undefined;
  const list = r.portsName ? `${r.portsName} ` : '';
  if (r.ports) {
    if (!r.ports.includes(port)) return undefined;
    why.push(`port ${port} is in ${list}[${r.ports.join(', ')}]`);
  }
  if (r.notPorts) {
    if (r.notPorts.includes(port)) return undefined;
    why.push(`port ${port} is not in ${list}[${r.notPorts.join(', ')}]`);
  }
  if (c.hosts) {
    const p = c.hosts(host);
    if (p === undefined) return undefined;
    why.push(`host ${host} matches ${p}`);
  }
  if (c.notHosts) {
    if (c.notHosts(host) !== undefined) return undefined;
    why.push(`host ${host} matches none of ${r.notHosts?.join(', ')}`);
  }
  if (why.length === 0) why.push(r.method ? `every ${r.method} matches` : 'every request matches');
  return why.join(' and ');
}
