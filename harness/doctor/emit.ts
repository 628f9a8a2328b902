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
 *   TLS inspection      → a tls-inspector behind that proxy, whose root the device does not trust
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
  failure?: { class: FailureClass; fault?: 'refuse' | 'blackhole'; why: string };
}

function portStates(report: DoctorReport, o: DoctorOptions): PortState[] {
  const states: PortState[] = [];
  let n = 0;
  for (const t of o.targets) {
    n++;
    for (const { port } of t.ports) {
      const at = (kind: DoctorCheck['check']) =>
        report.checks.find((c) => c.check === kind && c.host === t.host && c.port === port);
      const s: PortState = { host: t.host, port, sim: `ep${n}-${port}` };
      const tcp = at('tcp');
      const proxy = at('proxy');
      const tls = at('tls');
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
      states.push(s);
    }
  }
  return states;
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
      simulators.push({
        name: 'inspector',
        type: 'tls-inspector',
        host: 'inspector.site.example',
        options: {
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
      ...(f.fault ? { faults: [{ target: s.sim, type: f.fault }] } : {}),
      client: {
        url: urlOf(s),
        ...(current.proxy ? { proxy: current.proxy } : {}),
        ...(f.class === 'proxy.auth-required' ? { proxy: proxyUrl(false) } : {}),
      },
      expect: { result: 'fail', class: f.class },
    });
  }
  // The fix: a port that worked, else the first one with its blocking removed (the port opened).
  const working = states.find(
    (s) =>
      !s.failure || s.failure.class === 'proxy.auth-required' || s.failure.class === 'tls.untrusted-root',
  );
  const target = working ?? states[0]!;
  const opened = working === undefined && target.failure?.class === 'proxy.connect-denied';
  variants.push({
    name: 'fixed',
    description: working
      ? `the device on ${target.host}:${target.port}${needsAuth ? ', with the proxy credentials' : ''}${inspected ? ', trusting the inspection root' : ''}`
      : `${target.host}:${target.port} opened in the site's firewall or proxy`,
    ...(opened ? { simulators: { proxy: { allowPorts: [target.port] } } } : {}),
    client: {
      url: urlOf(target),
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
