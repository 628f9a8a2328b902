import { isIP } from 'node:net';

/** A CONNECT request-target (RFC 9110 §9.3.6: authority-form, `host:port`), split. */
export interface ConnectTarget {
  /** Lower-cased host name, or an IP address without brackets. */
  host: string;
  port: number;
}

/** Parses `host:port` / `[v6]:port`; undefined when it is not an authority with a valid port. */
export function parseConnectTarget(raw: string | undefined): ConnectTarget | undefined {
  if (!raw) return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:/@[\]]+)):(\d{1,5})$/.exec(raw);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  const host = (m[1] ?? m[2] ?? '').toLowerCase();
  if (m[1] !== undefined && isIP(host) !== 6) return undefined;
  return { host, port };
}

/**
 * A host pattern: `*` matches any run of characters (`*.example.com` matches `a.b.example.com` but not
 * `example.com`); matching is case-insensitive.
 */
export function hostMatcher(patterns: readonly string[]): (host: string) => string | undefined {
  const compiled = patterns.map((p) => {
    const body = p
      .toLowerCase()
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    return { pattern: p, re: new RegExp(`^${body}$`) };
  });
  return (host) => compiled.find((c) => c.re.test(host.toLowerCase()))?.pattern;
}

/** Where the upstream connection goes: `map['host:port']` when present, else the target itself. */
export function mapTarget(map: Readonly<Record<string, string>>, target: ConnectTarget): ConnectTarget {
  const key = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
  const to = map[key] ?? map[key.toLowerCase()];
  if (to === undefined) return target;
  return parseConnectTarget(to) ?? target;
}
