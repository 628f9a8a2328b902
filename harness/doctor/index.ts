import type { Duplex } from 'node:stream';
import { probeDns, probeProxy, probeTcp, probeTls, type TlsResult } from './probes.js';

/**
 * `fieldlab doctor`: what the network between this machine and its cloud endpoints does, checked with the
 * probes the lab uses, as one line per check with a fix hint (like `iotedge check`).
 *
 *   endpoint ─► DNS (the given resolver) ─► TCP to each port, or CONNECT through the proxy ─► TLS chain
 *                                                                                          └► clock (HTTPS Date)
 */

export interface DoctorPort {
  port: number;
  /** Speaks TLS from the first byte (the chain is checked). */
  tls: boolean;
  /** Answers HTTP over that TLS (the server's Date gives the clock check). */
  https: boolean;
}

export interface DoctorTarget {
  host: string;
  ports: DoctorPort[];
  /** What the endpoint is (`Azure IoT Hub`...), for people. */
  role: string;
}

export interface DoctorOptions {
  targets: DoctorTarget[];
  /** `http://[user:pass@]host:port` (or https://): go through it as devices configured with it do. */
  proxy?: URL;
  /** DNS server `address[:port]`; default the system's. */
  dnsServer?: string;
  /** More resolvers asked the same names, to see whether their answers differ (geo-DNS, split horizon). */
  otherDnsServers?: string[];
  /** PEM roots the device trusts; default Node's public roots. */
  ca?: string[];
  /** Per check. */
  timeoutMs: number;
  /** Clock difference past which the check fails (SAS tokens and certificates need a right clock). */
  maxSkewMs?: number;
}

export type CheckKind = 'dns' | 'tcp' | 'proxy' | 'tls' | 'clock' | 'mtu';

/**
 * Bytes of padding in the large-record check's request: one TLS record of ~6 KB, several full-size
 * packets on any path (Ethernet's 1500, a VPN's 1420, PPPoE's 1492), so each of them must fit the path.
 */
export const LARGE_RECORD_PADDING = 6_000;

/** One line of the report. Stable JSON (`--json`). */
export interface DoctorCheck {
  check: CheckKind;
  host: string;
  port?: number;
  ok: boolean;
  /** What was found, in a few words. */
  summary: string;
  /** How to fix it (failures only). */
  hint?: string;
  ms: number;
  /** The check's own facts: answers and TTLs, the chain with fingerprints, the proxy status... */
  details?: Record<string, unknown>;
}

export interface DoctorReport {
  ok: boolean;
  proxy?: string;
  dnsServer?: string;
  checks: DoctorCheck[];
}

/** The transport an IoT port carries, and its usual fix when the port is blocked. */
const PORT_FIX: Record<number, string> = {
  5671: 'AMQP over WebSocket on 443 (UpstreamProtocol=AmqpWs), through the proxy if there is one',
  8883: 'MQTT over WebSocket on 443 (UpstreamProtocol=MqttWs), or AWS IoT MQTT on 443 with ALPN x-amzn-mqtt-ca',
  8443: 'ask for outbound TCP 8443 to be opened (secure tunneling data plane)',
};
const portFix = (port: number) => (PORT_FIX[port] ? `; or use ${PORT_FIX[port]}` : '');

const ms = (n: number) => Math.round(n);
/** Proxy URL without its password, for output. */
export const safeProxy = (u: URL) => `${u.protocol}//${u.username ? `${u.username}:***@` : ''}${u.host}`;

export async function runDoctor(o: DoctorOptions): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  for (const t of o.targets) checks.push(...(await checkTarget(t, o)));
  return {
    ok: checks.every((c) => c.ok),
    ...(o.proxy ? { proxy: safeProxy(o.proxy) } : {}),
    ...(o.dnsServer ? { dnsServer: o.dnsServer } : {}),
    checks,
  };
}

async function checkTarget(t: DoctorTarget, o: DoctorOptions): Promise<DoctorCheck[]> {
  const out: DoctorCheck[] = [];
  const dns = await probeDns(t.host, o.dnsServer, o.timeoutMs);
  const answers = dns.addresses.map((a) => `${a.address} (TTL ${a.ttl} s)`).join(', ');
  // Behind a proxy the proxy resolves the name: a site resolver that does not is common and harmless.
  const dnsMatters = !o.proxy;
  out.push({
    check: 'dns',
    host: t.host,
    ok: dns.ok || !dnsMatters,
    summary: dns.ok
      ? `${t.host} → ${answers} from ${dns.resolver}`
      : `${t.host}: ${dns.error} from ${dns.resolver}${dnsMatters ? '' : ' (the proxy resolves it)'}`,
    ...(dns.ok || !dnsMatters ? {} : { hint: dnsHint(dns.error ?? '', t.host, dns.resolver) }),
    ms: ms(dns.ms),
    details: { resolver: dns.resolver, addresses: dns.addresses, ...(dns.error ? { error: dns.error } : {}) },
  });
  for (const server of o.otherDnsServers ?? [])
    out.push(await compareResolver(t.host, server, dns.addresses, o));
  const address = dns.addresses[0]?.address;
  for (const { port, tls: speaksTls, https } of t.ports) {
    let stream: Duplex | undefined;
    if (o.proxy) {
      const p = await probeProxy(o.proxy, `${t.host}:${port}`, o.timeoutMs);
      out.push({
        check: 'proxy',
        host: t.host,
        port,
        ok: p.outcome === 'ok',
        summary: proxySummary(p.outcome, o.proxy, t.host, port, p.detail),
        ...(p.outcome === 'ok' ? {} : { hint: proxyHint(p.outcome, port) }),
        ms: ms(p.ms),
        details: {
          outcome: p.outcome,
          ...(p.status !== undefined ? { status: p.status } : {}),
          ...(p.detail ? { detail: p.detail } : {}),
        },
      });
      stream = p.tunnel;
    } else if (address) {
      const c = await probeTcp(address, port, o.timeoutMs);
      out.push({
        check: 'tcp',
        host: t.host,
        port,
        ok: c.outcome === 'connected',
        summary:
          c.outcome === 'connected'
            ? `TCP ${port} to ${address}: connected`
            : `TCP ${port} to ${address}: ${TCP_WORDS[c.outcome]}`,
        ...(c.outcome === 'connected' ? {} : { hint: tcpHint(c.outcome, port) }),
        ms: ms(c.ms),
        details: { outcome: c.outcome, address },
      });
      stream = c.socket;
    }
    if (!stream) continue;
    if (!speaksTls) {
      stream.destroy();
      continue;
    }
    const tls = await probeTls(stream, t.host, {
      ...(o.ca ? { ca: o.ca } : {}),
      timeoutMs: o.timeoutMs,
      httpDate: https,
    });
    stream.destroy();
    out.push(tlsCheck(t.host, port, tls, o.ca !== undefined));
    if (tls.serverDate) out.push(clockCheck(t.host, port, tls.serverDate, o.maxSkewMs ?? 300_000));
    // A small request got its answer: does a large one, on a new connection the same way?
    if (tls.answered) {
      const large = await largeRecordCheck(t.host, port, address, o);
      if (large) out.push(large);
    }
  }
  return out;
}

/** A connection to host:port the way the checks above made theirs (through the proxy, or direct). */
async function reopen(host: string, port: number, address: string | undefined, o: DoctorOptions) {
  if (o.proxy) {
    const p = await probeProxy(o.proxy, `${host}:${port}`, o.timeoutMs);
    return p.tunnel;
  }
  if (!address) return undefined;
  return (await probeTcp(address, port, o.timeoutMs)).socket;
}

/**
 * The path MTU check: the same HTTPS request padded to one ~6 KB TLS record. A path that drops packets
 * larger than its MTU and filters the ICMP "fragmentation needed" that would shrink them (RFC 1191,
 * a PMTU black hole) passes the handshake and small requests, and stalls on this one.
 */
async function largeRecordCheck(
  host: string,
  port: number,
  address: string | undefined,
  o: DoctorOptions,
): Promise<DoctorCheck | undefined> {
  const stream = await reopen(host, port, address, o);
  if (!stream) return undefined;
  const r = await probeTls(stream, host, {
    ...(o.ca ? { ca: o.ca } : {}),
    timeoutMs: o.timeoutMs,
    httpDate: true,
    padding: LARGE_RECORD_PADDING,
  });
  stream.destroy();
  // No handshake this time, or a reset: not the stall this check is about (the TLS check says the rest).
  if (!r.handshake) return undefined;
  const kb = `${Math.round(LARGE_RECORD_PADDING / 1000)} KB`;
  const details = { recordBytes: LARGE_RECORD_PADDING, answered: r.answered === true };
  if (r.answered) {
    return {
      check: 'mtu',
      host,
      port,
      ok: true,
      summary: `MTU ${port}: a ${kb} TLS record got its answer (large packets pass)`,
      ms: ms(r.ms),
      details,
    };
  }
  return {
    check: 'mtu',
    host,
    port,
    ok: false,
    summary: `MTU ${port}: a ${kb} TLS record got no answer in ${o.timeoutMs} ms while a small request did: packets larger than the path MTU are dropped (PMTU black hole)`,
    hint: "allow ICMP 'fragmentation needed' (type 3 code 4) back through the site firewall, or clamp the TCP MSS on the router (nft: tcp flags syn tcp option maxseg size set rt mtu), or lower the device's MTU (ip link set dev eth0 mtu 1400)",
    ms: ms(r.ms),
    details,
  };
}

/** The same name through another resolver: a failure there is one the device meets when it uses it. */
async function compareResolver(
  host: string,
  server: string,
  primary: Array<{ address: string }>,
  o: DoctorOptions,
): Promise<DoctorCheck> {
  const r = await probeDns(host, server, o.timeoutMs);
  const key = (list: Array<{ address: string }>) =>
    list
      .map((a) => a.address)
      .sort()
      .join(', ');
  const differs = r.ok && key(r.addresses) !== key(primary);
  return {
    check: 'dns',
    host,
    ok: r.ok,
    summary: !r.ok
      ? `${host}: ${r.error} from ${server}`
      : differs
        ? `${host} → ${key(r.addresses)} from ${server}: a different answer than ${o.dnsServer ?? 'the system resolver'} (${key(primary) || 'none'}), so the endpoint depends on the resolver`
        : `${host} → ${key(r.addresses)} from ${server} (the same answer)`,
    ...(r.ok ? {} : { hint: dnsHint(r.error ?? '', host, server) }),
    ms: ms(r.ms),
    details: { resolver: server, addresses: r.addresses, differs, ...(r.error ? { error: r.error } : {}) },
  };
}

const TCP_WORDS: Record<string, string> = {
  refused: 'refused (RST: a firewall REJECTs it, or nothing listens)',
  timeout: 'timed out (dropped silently: a firewall DROP, or no route)',
  reset: 'reset by a middlebox',
  unreachable: 'no route to the host',
  error: 'failed',
};

function dnsHint(error: string, host: string, resolver: string): string {
  if (error === 'NXDOMAIN')
    return `${resolver} says ${host} does not exist: check the name, or the site's DNS forwarding`;
  if (error === 'SERVFAIL')
    return `${resolver} failed to resolve ${host} (SERVFAIL: its upstream or DNSSEC): ask the site's DNS admin, or try another resolver`;
  if (error === 'NODATA')
    return `${host} has no IPv4 address at ${resolver}: check the record, or a geolocation record set without a default`;
  if (error === 'TIMEOUT') return `${resolver} did not answer: is UDP and TCP 53 to it allowed?`;
  return `resolving ${host} failed (${error}): check the resolver ${resolver}`;
}

function tcpHint(outcome: string, port: number): string {
  if (outcome === 'refused' || outcome === 'timeout')
    return `open outbound TCP ${port} in the site firewall${portFix(port)}`;
  if (outcome === 'unreachable') return 'check the routes (and a VPN’s AllowedIPs) to this address';
  return `a device on the path resets connections to port ${port}: check the firewall's logs`;
}

function proxySummary(outcome: string, proxy: URL, host: string, port: number, detail?: string): string {
  const via = `CONNECT ${host}:${port} via ${safeProxy(proxy)}`;
  const words: Record<string, string> = {
    ok: 'allowed',
    'auth-required': 'the proxy wants credentials (407)',
    'auth-rejected': 'the proxy rejected the credentials (407)',
    denied: `denied (${detail ?? '?'})`,
    'bad-gateway': `the proxy could not reach it (${detail ?? '?'})`,
    'wrong-scheme': `wrong proxy scheme: ${detail ?? ''}`,
    unreachable: `the proxy is unreachable (${detail ?? ''})`,
    timeout: 'the proxy did not answer',
    error: `failed (${detail ?? ''})`,
  };
  return `${via}: ${words[outcome] ?? outcome}`;
}

function proxyHint(outcome: string, port: number): string {
  switch (outcome) {
    case 'auth-required':
      return 'give the proxy as http://user:pass@proxy:port (percent-encode @ : / in them), in https_proxy and the runtime settings';
    case 'auth-rejected':
      return 'check the proxy user and password (percent-encoded in the URL: @ → %40, : → %3A, / → %2F)';
    case 'denied':
      return `ask for CONNECT to port ${port} to be allowed${portFix(port)}`;
    case 'bad-gateway':
      return `the proxy's own path to port ${port} is blocked or the endpoint is down: ask the proxy's admins${portFix(port)}`;
    case 'wrong-scheme':
      return 'use the scheme the proxy speaks in the proxy URL (most proxies: http://, even for HTTPS traffic)';
    case 'unreachable':
    case 'timeout':
      return 'check the proxy host and port, and that this machine may reach it';
    default:
      return 'check the proxy settings';
  }
}

function tlsCheck(host: string, port: number, r: TlsResult, caGiven: boolean): DoctorCheck {
  const base = { check: 'tls' as const, host, port, ms: ms(r.ms) };
  const chain = r.chain;
  const top = chain[chain.length - 1];
  const details = { chain, ...(r.verifyError ? { verifyError: r.verifyError } : {}) };
  if (!r.handshake) {
    return {
      ...base,
      ok: false,
      summary: `TLS ${port}: no handshake (${r.detail ?? '?'})`,
      hint: `something on the path takes the connection but holds or ends it (a firewall that drops after the SYN, a middlebox): check what filters port ${port}${portFix(port)}`,
      details,
    };
  }
  const names = chain.map((c) => c.subject).join(' ← ');
  if (!r.trusted) {
    const rootName = top ? (top.selfSigned ? top.subject : top.issuer) : '?';
    // The CA under the root that signed the leaf, when the server sent it (Zscaler's "Intermediate Root CA").
    const below = chain.length > 1 ? chain[chain.length - (top?.selfSigned ? 2 : 1)] : undefined;
    const intermediate = below && below !== chain[0] ? below.subject : undefined;
    // Servers seldom send their root: then the CA it issued, and its fingerprint, stand for it.
    const fp = top
      ? top.selfSigned
        ? ` (root SHA-256 ${top.fingerprint256})`
        : ` (root not sent; ${top.subject} SHA-256 ${top.fingerprint256})`
      : '';
    return {
      ...base,
      ok: false,
      summary: `TLS ${port}: TLS inspection by ${rootName}${fp}: the chain ${names} is not trusted here (${r.verifyError ?? 'untrusted'})`,
      hint: `add ${rootName}'s root to the device's trust store and the runtime's trust bundle, or ask for ${host} to be exempted from inspection${caGiven ? '' : ' (or give the roots the device trusts with --ca)'}`,
      details: { ...details, inspectedBy: rootName, ...(intermediate ? { inspectedVia: intermediate } : {}) },
    };
  }
  if (r.nameMismatch) {
    return {
      ...base,
      ok: false,
      summary: `TLS ${port}: the certificate does not name ${host} (it names ${r.nameMismatch})`,
      hint: `connect with a name the certificate was issued for, or fix the certificate of ${host}`,
      details,
    };
  }
  return { ...base, ok: true, summary: `TLS ${port}: ${names} (trusted)`, details };
}

function clockCheck(host: string, port: number, serverDate: Date, maxSkewMs: number): DoctorCheck {
  // Date has one-second resolution (RFC 9110 §5.6.7): a skew under two seconds is no skew.
  const skew = Date.now() - serverDate.getTime();
  const ok = Math.abs(skew) <= Math.max(maxSkewMs, 2_000);
  const words = `${Math.abs(Math.round(skew / 1000))} s ${skew > 0 ? 'ahead of' : 'behind'}`;
  return {
    check: 'clock',
    host,
    port,
    ok,
    summary: `clock: this machine is ${words} ${host} (server Date ${serverDate.toUTCString()})`,
    ...(ok ? {} : { hint: 'set the clock with NTP: SAS tokens and certificate validity depend on it' }),
    ms: 0,
    details: { skewMs: skew },
  };
}
