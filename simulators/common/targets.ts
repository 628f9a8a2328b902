import { isIP } from 'node:net';

/** A destination `host:port` (a CONNECT request-target, RFC 9110 §9.3.6), split. */
export interface Target {
  /** Lower-cased host name, or an IP address without brackets. */
  host: string;
  port: number;
}

/**
 * Parses `host:port` / `[v6]:port` (RFC 9110 §9.3.6, RFC 9112 §3.2.3 authority-form); undefined when
 * malformed, including userinfo (`u:p@h:443`), a path, a query or a fragment.
 */
export function parseTarget(raw: string | undefined): Target | undefined {
  if (!raw) return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:/@[\]?#\\]+)):(\d{1,5})$/.exec(raw);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  const host = (m[1] ?? m[2] ?? '').toLowerCase();
  if (m[1] !== undefined && isIP(host) !== 6) return undefined;
  return { host, port };
}

/** `host:port`, with brackets for IPv6. */
export function formatTarget(t: Target): string {
  return t.host.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`;
}

/**
 * A host pattern list: `*` matches any run of characters, so `*.example.com` matches `a.b.example.com`
 * but not `example.com`; case-insensitive. Returns the first matching pattern.
 */
export function hostMatcher(patterns: readonly string[]): (host: string) => string | undefined {
  const exact = new Map<string, string>();
  const wild: Array<{ pattern: string; re: RegExp }> = [];
  for (const p of patterns) {
    if (!p.includes('*')) {
      if (!exact.has(p.toLowerCase())) exact.set(p.toLowerCase(), p);
      continue;
    }
    const body = p
      .toLowerCase()
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    wild.push({ pattern: p, re: new RegExp(`^${body}$`) });
  }
  return (host) => {
    const h = host.toLowerCase();
    return exact.get(h) ?? wild.find((c) => c.re.test(h))?.pattern;
  };
}

/** A normalised `map` option: `host:port` (lower-case) → destination. */
export type TargetMap = ReadonlyMap<string, Target>;

export function buildTargetMap(map: Readonly<Record<string, string>>): TargetMap {
  const out = new Map<string, Target>();
  for (const [from, to] of Object.entries(map)) {
    const f = parseTarget(from);
    const t = parseTarget(to);
    if (f && t) out.set(formatTarget(f), t);
  }
  return out;
}

/** Where a connection really goes: `map['host:port']` when present, else the target itself. */
export function mapTarget(map: Readonly<Record<string, string>>, target: Target): Target {
  const key = formatTarget(target);
  const to = map[key] ?? map[key.toLowerCase()];
  return (to === undefined ? undefined : parseTarget(to)) ?? target;
}
