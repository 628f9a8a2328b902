import { isIP } from 'node:net';
import { Document } from 'yaml';
import type { FailureClass } from '../probe/classes.js';
import type { ScenarioInput } from '../scenario/model.js';
import { type DoctorCheck, type DoctorOptions, type DoctorReport, safeProxy } from './index.js';

/**
 * `fieldlab doctor --emit-scenario`: what doctor found, as a scenario that reproduces it in the lab.
 *
 *   each endpoint port  → a TLS endpoint (https-server) standing for it, on the same lab host name
 *   refused / dropped   → a `refuse` / `blackhole` fault on it (its broken variant)
 *   the proxy           → a connect-proxy with the same user (a lab password, never the real one) and the
 *                         same CONNECT port policy
 *   TLS inspection      → a tls-inspector behind that proxy, whose root the device does not trust, under
 *                         the names doctor saw (rootName, intermediateName: a lab key, the site's subject)
 *   a large record stalls → an `mtu_blackhole` on the device's direction, and a probe request as large
 *   DNS failures        → a second scenario (emitDnsScenario): dig against a lab geo-dns with the same faults
 *   variants            → one `broken-…` per failure (the device's current settings, expected class),
 *                         and `fixed`: the documented fix (a port that works, credentials, the root)
 *
 * The client is fieldlab's HTTPS probe; replace it with your device program (see `fieldlab init`).
 */

type Sim = ScenarioInput['lab']['simulators'][number];
type VariantIn = ScenarioInput['variants'][number];

const LAB_PASSWORD = 'lab-password';

/** What went wrong on one endpoint port, as a failure class and what reproduces it. */
interface PortState {
  host: string;
  port: number;
  sim: string;
  failure?: { class: FailureClass; fault?: 'refuse' | 'blackhole' | 'mtu_blackhole'; why: string };
  /** Its name did not resolve at the site: nothing past DNS was checked (the DNS scenario has it). */
  unresolved?: boolean;
}

/** The path MTU the lab's `mtu_blackhole` stands for (doctor sees the stall, not the MTU itself). */
const LAB_MTU = 1400;
/** A query string that makes the probe's request one TLS record larger than LAB_MTU (as doctor's was). */
const LARGE_QUERY = `?fieldlab-large-record=${'p'.repeat(3000)}`;

function portStates(report: DoctorReport, o: DoctorOptions): PortState[] {
  const states: PortState[] = [];
  let n = 0;
  for (const t of o.targets) {
    n++;
    for (const { port } of t.ports) {
      const at = (kind: DoctorCheck['check']) =>
        report.checks.find((c) => c.check === kind && c.host === t.host && c.port === port);
      const s: PortState = { host: t.host, port, sim: `ep${n}-${port}` };
      if (
        !at('tcp') &&
        !at('proxy') &&
        report.checks.some((c) => c.check === 'dns' && c.host === t.host && !c.ok)
      )
        s.unresolved = true;
      const tcp = at('tcp');
      const proxy = at('proxy');
      const tls = at('tls');
      const mtu = at('mtu');
      const outcome = (c: DoctorCheck | undefined) => c?.details?.outcome;
      if (outcome(tcp) === 'refused')
        s.failure = { class: 'tcp.refused', fault: 'refuse', why: tcp!.summary };
      else if (outcome(tcp) === 'timeout' || (tls && !tls.ok && tls.summary.includes('no handshake')))
        s.failure = { class: 'tcp.timeout', fault: 'blackhole', why: (tcp?.ok ? tls : tcp)!.summary };
      else if (outcome(proxy) === 'bad-gateway')
        s.failure = { class: 'proxy.bad-gateway', fault: 'refuse', why: proxy!.summary };
      else if (outcome(proxy) === 'denied')
        s.failure = { class: 'proxy.connect-denied', why: proxy!.summary };
      else if (outcome(proxy) === 'auth-required' || outcome(proxy) === 'auth-rejected')
        s.failure = { class: 'proxy.auth-required', why: proxy!.summary };
      else if (tls?.details?.inspectedBy) s.failure = { class: 'tls.untrusted-root', why: tls.summary };
      else if (mtu && !mtu.ok) s.failure = { class: 'tcp.timeout', fault: 'mtu_blackhole', why: mtu.summary };
      states.push(s);
    }
  }
  return states;
}

/** The fault that reproduces a port's failure on the relay in front of its stand-in. */
function faultFor(target: string, type: 'refuse' | 'blackhole' | 'mtu_blackhole') {
  // A PMTU black hole drops the device's large packets (its requests); small ones pass.
  return type === 'mtu_blackhole'
    ? { target, type, mtu: LAB_MTU, stream: 'upstream' as const }
    : { target, type };
}

/** The names of the inspection root and intermediate doctor saw (a certificate CN is at most 64 characters). */
function inspection(report: DoctorReport): { root?: string; intermediate?: string } {
  const tls = report.checks.find((c) => c.check === 'tls' && typeof c.details?.inspectedBy === 'string');
  const name = (v: unknown) =>
    typeof v === 'string' && v.trim() && v !== '?' ? v.trim().slice(0, 64) : undefined;
  const root = name(tls?.details?.inspectedBy);
  const intermediate = name(tls?.details?.inspectedVia);
  return { ...(root ? { root } : {}), ...(root && intermediate ? { intermediate } : {}) };
}

/** A DNS name for the lab proxy host: the proxy's own name, or a stand-in for an address. */
const proxyHost = (u: URL) =>
  isIP(u.hostname.replace(/^\[|\]$/g, '')) ? 'proxy.site.example' : u.hostname.toLowerCase();

export function emitScenario(report: DoctorReport, o: DoctorOptions, name = 'site'): ScenarioInput {
  const states = portStates(report, o);
  const proxy = o.proxy;
  const inspected = states.some((s) => s.failure?.class === 'tls.untrusted-root');
  const authSeen = states.some((s) => s.failure?.class === 'proxy.auth-required');
  const user = proxy?.username ? decodeURIComponent(proxy.username) : 'device';
  const needsAuth = authSeen || (proxy?.username ?? '') !== '';

  const simulators: Sim[] = states.map((s) => ({ name: s.sim, type: 'https-server', host: s.host }));
  if (proxy) {
    const okPorts = [
      ...new Set(states.filter((s) => s.failure?.class !== 'proxy.connect-denied').map((s) => s.port)),
    ];
    const denied = states.some((s) => s.failure?.class === 'proxy.connect-denied');
    // The inspector first: the proxy refers to it (a lab starts its simulators in order).
    if (inspected) {
      const seen = inspection(report);
      simulators.push({
        name: 'inspector',
        type: 'tls-inspector',
        host: 'inspector.site.example',
        options: {
          // The root (and intermediate) under the names the site's inspector showed: a lab key, same subject.
          ...(seen.root ? { rootName: seen.root } : {}),
          ...(seen.intermediate ? { intermediateName: seen.intermediate } : {}),
          map: Object.fromEntries(
            states.map((s) => [`${s.host}:${s.port}`, `\${${s.sim}.address}:\${${s.sim}.port}`]),
          ),
        },
      });
    }
    simulators.push({
      name: 'proxy',
      type: 'connect-proxy',
      host: proxyHost(proxy),
      options: {
        ...(needsAuth ? { users: [{ username: user, password: LAB_PASSWORD }] } : {}),
        // The site's policy as seen: CONNECT allowed to the ports that got through.
        ...(denied ? { allowPorts: okPorts.length > 0 ? okPorts : [443] } : {}),
        map: Object.fromEntries(
          states.map((s) => [`${s.host}:${s.port}`, `\${${s.sim}.address}:\${${s.sim}.port}`]),
        ),
        ...(inspected ? { upstream: 'http://${inspector.hostport}' } : {}),
      },
    });
  }
  const proxyUrl = (withCreds: boolean) =>
    `http://${withCreds ? `${encodeURIComponent(user)}:${LAB_PASSWORD}@` : ''}\${proxy.hostport}`;
  const urlOf = (s: PortState) => (proxy ? `https://${s.host}:${s.port}/` : `\${${s.sim}.url}`);
  // The device as configured at the site: its proxy URL with or without credentials, the cloud's roots.
  const current = { proxy: proxy ? proxyUrl(proxy.username !== '') : undefined, trust: 'lab' as const };
  const fixedTrust = inspected ? ['${inspector.bundle}'] : ('lab' as const);

  const variants: VariantIn[] = [];
  for (const s of states.filter((x) => x.failure)) {
    const f = s.failure!;
    variants.push({
      name: `broken-${s.sim}`,
      description: `as found: ${f.why}`,
      ...(f.fault ? { faults: [faultFor(s.sim, f.fault)] } : {}),
      client: {
        url: urlOf(s) + (f.fault === 'mtu_blackhole' ? LARGE_QUERY : ''),
        ...(current.proxy ? { proxy: current.proxy } : {}),
        ...(f.class === 'proxy.auth-required' ? { proxy: proxyUrl(false) } : {}),
      },
      expect: { result: 'fail', class: f.class },
    });
  }
  // The fix: a port that worked, else the first one with its blocking removed (the port opened).
  const working = states.find(
    (s) =>
      !s.unresolved &&
      (!s.failure || s.failure.class === 'proxy.auth-required' || s.failure.class === 'tls.untrusted-root'),
  );
  const target = working ?? states[0]!;
  const opened = working === undefined && target.failure?.class === 'proxy.connect-denied';
  const large = target.failure?.fault === 'mtu_blackhole';
  variants.push({
    name: 'fixed',
    description: working
      ? `the device on ${target.host}:${target.port}${needsAuth ? ', with the proxy credentials' : ''}${inspected ? ', trusting the inspection root' : ''}`
      : large
        ? `${target.host}:${target.port} with large packets passing (ICMP fragmentation-needed allowed, or the MSS clamped)`
        : `${target.host}:${target.port} opened in the site's firewall or proxy`,
    ...(opened ? { simulators: { proxy: { allowPorts: [target.port] } } } : {}),
    client: {
      url: urlOf(target) + (large ? LARGE_QUERY : ''),
      ...(proxy ? { proxy: proxyUrl(needsAuth) } : {}),
      trust: fixedTrust,
    },
    expect: 'pass',
  });
  if (variants.length < 2) {
    variants.unshift({
      name: 'broken-untrusted-root',
      description: 'nothing failed at the site: a device without the cloud root, for a start',
      client: { trust: 'system' },
      expect: { result: 'fail', class: 'tls.untrusted-root' },
    });
  }
  const first = states[0]!;
  return {
    name,
    title: `The network of a site, as fieldlab doctor found it${proxy ? ` (proxy ${safeProxy(proxy)})` : ''}`,
    description: report.checks
      .filter((c) => !c.ok)
      .map((c) => c.summary)
      .join('; '),
    tags: ['site', 'doctor'],
    backends: ['loopback'],
    timeout: '10s',
    lab: { simulators },
    client: {
      type: 'probe',
      url: urlOf(first),
      ...(current.proxy ? { proxy: current.proxy } : {}),
      trust: current.trust,
      timeout: '3s',
    },
    variants,
  };
}

export function emitScenarioYaml(report: DoctorReport, o: DoctorOptions, name?: string): string {
  const doc = new Document(emitScenario(report, o, name), { aliasDuplicateObjects: false });
  doc.commentBefore = [
    ' Written by fieldlab doctor --emit-scenario: the site network as it was found, in the lab.',
    ' Each broken-* variant is one failure with the class it must fail with; `fixed` is the documented fix.',
    ' The client is fieldlab’s HTTPS probe: put your device program in its place (see `fieldlab init`).',
    ' Endpoints are TLS stand-ins (https-server) on the same names; the proxy has the same user with a lab',
    ' password (never the real one), and an inspector stands for TLS inspection with a lab root.',
    ' Run it: npx fieldlab run <this file>',
  ].join('\n');
  return doc.toString({ lineWidth: 0 });
}

/** The DNS fault that gives a resolver's answer doctor saw (NODATA: a zone without the record instead). */
const DNS_FAULT: Record<string, { type: 'servfail' | 'nxdomain' | 'refused' | 'drop'; class: FailureClass }> =
  {
    SERVFAIL: { type: 'servfail', class: 'dns.servfail' },
    NXDOMAIN: { type: 'nxdomain', class: 'dns.nxdomain' },
    REFUSED: { type: 'refused', class: 'dns.refused' },
    TIMEOUT: { type: 'drop', class: 'dns.timeout' },
  };

/** A stand-in address for an endpoint in the DNS lab: a documentation address, only ever an answer. */
const standIn = (i: number) => `198.51.100.${20 + (i % 200)}`;

/**
 * The DNS failures doctor saw (NXDOMAIN, SERVFAIL, REFUSED, timeouts, NODATA), as a scenario of their own:
 * a program in a loopback lab resolves lab names from the lab's hosts file, so a DNS fault cannot reach
 * the HTTPS probe of the site scenario. Here the client asks the lab's name server itself (dig, as
 * geo-endpoint-dns.yaml does), one broken variant per failing name with the class it fails with, and the
 * fix: the same name answered. Undefined when every name resolved.
 */
export function emitDnsScenario(report: DoctorReport, name = 'site-dns'): ScenarioInput | undefined {
  const failed = new Map<string, { error: string; summary: string }>();
  for (const c of report.checks) {
    const error = c.details?.error;
    if (c.check !== 'dns' || c.ok || typeof error !== 'string' || failed.has(c.host)) continue;
    if (DNS_FAULT[error] || error === 'NODATA') failed.set(c.host, { error, summary: c.summary });
  }
  if (failed.size === 0) return undefined;
  const hosts = [...failed.keys()];
  const dig = (host: string) => [
    'dig',
    '@${dns.address}',
    '-p',
    '${dns.port}',
    host,
    'A',
    '+time=1',
    '+tries=1',
  ];
  const zone = (host: string, i: number, withRecord: boolean) => ({
    origin: host,
    soa: { mname: 'ns1.site.example', rname: 'hostmaster.site.example', minimum: 60 },
    records: withRecord ? [{ name: '@', type: 'A', value: standIn(i) }] : [],
  });
  const zones = (noData?: string) => hosts.map((h, i) => zone(h, i, h !== noData));
  const variants: VariantIn[] = hosts.map((host, i) => {
    const { error, summary } = failed.get(host)!;
    const fault = DNS_FAULT[error];
    return {
      name: `broken-dns-${i + 1}`,
      description: `as found: ${summary}`,
      ...(fault ? { faults: [{ target: 'dns', type: fault.type, qname: host }] } : {}),
      ...(fault ? {} : { simulators: { dns: { zones: zones(host) } } }),
      client: { argv: dig(host) },
      expect: { result: 'fail', class: fault?.class ?? 'dns.nodata' },
    };
  });
  const first = hosts[0]!;
  variants.push({
    name: 'fixed',
    description: `${first} answered (the site's resolver, or its upstream, fixed)`,
    client: { argv: dig(first) },
    expect: {
      result: 'pass',
      output: `${first.replace(/[.]/g, '\\.')}\\.\\s+\\d+\\s+IN\\s+A\\s+${standIn(0).replace(/[.]/g, '\\.')}`,
    },
  });
  return {
    name,
    title: 'The DNS failures of a site, as fieldlab doctor found them',
    description: hosts.map((h) => failed.get(h)!.summary).join('; '),
    tags: ['site', 'doctor', 'dns'],
    requires: ['cmd:dig'],
    backends: ['loopback'],
    timeout: '10s',
    lab: {
      simulators: [{ name: 'dns', type: 'geo-dns', host: 'ns1.site.example', options: { zones: zones() } }],
    },
    client: { type: 'command', resolve: 'none', argv: dig(first) },
    variants,
  };
}

export function emitDnsScenarioYaml(report: DoctorReport, name?: string): string | undefined {
  const scenario = emitDnsScenario(report, name);
  if (!scenario) return undefined;
  const doc = new Document(scenario, { aliasDuplicateObjects: false });
  doc.commentBefore = [
    ' Written by fieldlab doctor --emit-scenario: the DNS failures the site showed, in the lab.',
    ' The client asks the lab name server itself (dig): a program in a loopback lab resolves lab names',
    " from the lab's hosts file, so DNS faults live in this file, not in the site scenario beside it.",
    ' Endpoint addresses here are stand-ins (answers only, never contacted).',
    ' Run it: npx fieldlab run <this file>',
  ].join('\n');
  return doc.toString({ lineWidth: 0 });
}
