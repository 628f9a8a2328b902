import { containsIp, parseCidr, parseIp } from './addresses.js';
import { run } from './exec.js';

/** What the kernel of one namespace says about a destination. */
export interface RouteFacts {
  destination: string;
  port?: number;
  /** `ip route get`'s output device. */
  dev: string;
  gateway?: string;
  /** The WireGuard interface the traffic was meant for, and its peers' AllowedIPs. */
  wgIfname?: string;
  allowedIps: string[];
}

export interface RouteExplanation {
  /** True when the packet takes the tunnel. */
  viaTunnel: boolean;
  /** True when AllowedIPs cover the destination. */
  allowed: boolean;
  sentence: string;
}

/**
 * The report's sentence (DESIGN.md, "Scenarios"), from facts alone:
 * "SYN to 203.0.113.67:8036 left via eth0, not wg-arc: AllowedIPs lacks it (has 100.127.0.0/16);
 * fix: add 203.0.113.67/32 to AllowedIPs".
 */
export function explainRoute(f: RouteFacts): RouteExplanation {
  const target = f.port === undefined ? f.destination : `${f.destination}:${f.port}`;
  const ip = parseIp(f.destination);
  const allowed =
    ip !== undefined &&
    f.allowedIps.some((a) => {
      const c = parseCidr(a);
      return c !== undefined && containsIp(c, ip);
    });
  const has = f.allowedIps.length > 0 ? f.allowedIps.join(', ') : 'nothing';
  if (!f.wgIfname) {
    return {
      viaTunnel: false,
      allowed,
      sentence: `SYN to ${target} left via ${f.dev}${f.gateway ? ` (gateway ${f.gateway})` : ''}`,
    };
  }
  if (f.dev === f.wgIfname) {
    return {
      viaTunnel: true,
      allowed,
      sentence: allowed
        ? `SYN to ${target} left via ${f.wgIfname}: AllowedIPs covers it (${has})`
        : `SYN to ${target} is routed to ${f.wgIfname} but AllowedIPs lacks it (has ${has}): ` +
          `WireGuard drops it; fix: add ${f.destination}/32 to AllowedIPs`,
    };
  }
  const left = `SYN to ${target} left via ${f.dev}, not ${f.wgIfname}`;
  return {
    viaTunnel: false,
    allowed,
    sentence: allowed
      ? `${left}: AllowedIPs has it but no route sends it to the tunnel; ` +
        `fix: ip route add ${f.destination}/32 dev ${f.wgIfname}`
      : `${left}: AllowedIPs lacks it (has ${has}); fix: add ${f.destination}/32 to AllowedIPs`,
  };
}

/**
 * Reads the kernel state of namespace `ns` (`ip -j route get`, `wg show <if> allowed-ips`) and explains
 * where traffic to `destination` goes. Needs root.
 */
export async function explainPath(
  ns: string,
  destination: string,
  opts: { port?: number; wgIfname?: string } = {},
): Promise<RouteExplanation & { facts: RouteFacts }> {
  const route = await run(['ip', '-n', ns, '-j', 'route', 'get', destination]);
  let dev = '(no route)';
  let gateway: string | undefined;
  if (route.exitCode === 0) {
    const first = (JSON.parse(route.stdout) as Array<{ dev?: string; gateway?: string }>)[0];
    dev = first?.dev ?? dev;
    gateway = first?.gateway;
  }
  const allowedIps: string[] = [];
  if (opts.wgIfname) {
    const wg = await run(['ip', 'netns', 'exec', ns, 'wg', 'show', opts.wgIfname, 'allowed-ips']);
    for (const line of wg.stdout.split('\n')) {
      const [, nets] = line.split('\t');
      for (const n of (nets ?? '').split(' ')) if (n && n !== '(none)') allowedIps.push(n);
    }
  }
  const facts: RouteFacts = {
    destination,
    dev,
    allowedIps,
    ...(opts.port !== undefined ? { port: opts.port } : {}),
    ...(gateway ? { gateway } : {}),
    ...(opts.wgIfname ? { wgIfname: opts.wgIfname } : {}),
  };
  return { ...explainRoute(facts), facts };
}
