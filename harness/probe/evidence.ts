import { DNS_FAULT_TYPES } from '../../simulators/common/dns-faults.js';
import type { LabEvent } from '../../simulators/common/events.js';
import { RCODE_NAMES } from '../../simulators/geo-dns/wire.js';
import type { FailureClass, Verdict } from './classes.js';

/**
 * Refines a client's verdict with what the lab's simulators saw. Each rule is data: the event type it
 * reads, an optional test on the event's data, the failure class the event points to, the classes it is
 * consistent with, and `explain()`, the sentence a report prints.
 *
 * What real clients send a TLS server when they reject its certificate (verified in
 * test/probe/evidence.test.ts with curl 7.88 / OpenSSL 3.0 and Node 20):
 *   curl (OpenSSL verifies during the handshake):
 *     untrusted root or missing intermediate → alert unknown_ca (48)
 *     expired certificate                    → alert certificate_expired (45)
 *     not-yet-valid certificate              → alert bad_certificate (42)
 *     host name mismatch                     → no alert (curl checks the name after the handshake and
 *                                              closes; the server records nothing)
 *   Node (tls/https/undici verify in JS after the handshake): never an alert; the server sees only
 *     ECONNRESET "socket hang up" (no rule matches it), so for Node clients the client's own error
 *     is the evidence.
 */

interface Data {
  [key: string]: unknown;
}

export interface EvidenceRule {
  /** A short id for tests and debugging. */
  id: string;
  /** The LabEvent type this rule reads. */
  event: string;
  when?: (data: Data, event: LabEvent) => boolean;
  /** The class this event points to; undefined for context-only events. */
  class?: FailureClass;
  /** Client classes this event is consistent with (besides `class`). */
  consistentWith?: FailureClass[];
  /**
   * Client classes this event narrows down: the client saw only that (a 403 is a 403), the lab knows
   * which refusal it was, so the verdict takes `class`.
   */
  refines?: FailureClass[];
  explain: (data: Data, event: LabEvent) => string;
}

const s = (v: unknown): string => (v === undefined || v === null ? '?' : String(v));
const toxicName = (d: Data) => s(d.toxic ?? d.name ?? d.id);
const isRelayToxic = (types: string[]) => (d: Data) => types.includes(s(d.type));
const firewallMatch = (d: Data, e: LabEvent) => `${e.source}: ${s(d.rule)} matched ${s(d.packets)} packet(s)`;

const rcode = (d: Data): string =>
  typeof d.rcode === 'number' ? (RCODE_NAMES[d.rcode] ?? String(d.rcode)) : s(d.rcode).toUpperCase();
/** DNS fault types (simulators/common/dns-faults.ts): a toxic-applied of these is a DNS server's. */
const DNS_FAULT_NAMES: ReadonlySet<string> = new Set(DNS_FAULT_TYPES);
/** What a client reports of a failed lookup, whichever the cause: each is consistent with a DNS fault. */
const DNS_CLASSES: FailureClass[] = [
  'dns.nxdomain',
  'dns.servfail',
  'dns.timeout',
  'dns.refused',
  'dns.nodata',
];
const why = (d: Data) => (d.reason ? ` (${s(d.reason)})` : '');
const noAnswers = (d: Data) => !Array.isArray(d.answers) || d.answers.length === 0;

/** The rules, most specific first; the first that matches an event speaks for it. */
export const EVIDENCE_RULES: readonly EvidenceRule[] = [
  {
    id: 'relay-held',
    event: 'toxic-applied',
    when: isRelayToxic(['timeout', 'blackhole', 'mtu_blackhole']),
    class: 'tcp.timeout',
    consistentWith: ['client.timeout', 'dns.timeout'],
    explain: (d, e) => `the relay ${e.source} held the connection (toxic ${toxicName(d)})`,
  },
  {
    id: 'relay-reset',
    event: 'toxic-applied',
    when: isRelayToxic(['reset_peer']),
    class: 'tcp.reset',
    consistentWith: ['tls.handshake'],
    explain: (d, e) => `the relay ${e.source} reset the connection (toxic ${toxicName(d)})`,
  },
  {
    id: 'relay-refuse',
    event: 'toxic-applied',
    when: isRelayToxic(['refuse']),
    class: 'tcp.refused',
    explain: (d, e) => `the relay ${e.source} refused the connection (toxic ${toxicName(d)})`,
  },
  {
    // A refusing relay has closed its listener: the kernel answers SYN with RST and the relay never
    // sees the connection, so the evidence is that the toxic was active during the run.
    id: 'relay-refusing',
    event: 'toxic-added',
    // Added with no delayed start: it refused from then on.
    when: (d) => {
      const t = d.toxic as Data | undefined;
      return s(t?.type) === 'refuse' && (t?.start === undefined || t.start === 0);
    },
    class: 'tcp.refused',
    explain: (d, e) =>
      `the relay ${e.source} was refusing new connections (toxic ${s((d.toxic as Data | undefined)?.name)})`,
  },
  {
    // netns backend: a real nftables rule counted the client's packets (read after the run).
    id: 'firewall-dropped',
    event: 'firewall-match',
    when: (d) => d.action === 'drop',
    class: 'tcp.timeout',
    consistentWith: ['client.timeout', 'dns.timeout'],
    explain: firewallMatch,
  },
  {
    id: 'firewall-rejected',
    event: 'firewall-match',
    when: (d) => d.action === 'reject',
    class: 'tcp.refused',
    consistentWith: ['tcp.unreachable'],
    explain: firewallMatch,
  },
  // The tunnel service's own refusal of a localproxy's handshake. The application behind the localproxy
  // (ssh) sees only the local side: nothing listening (the source localproxy ended: tcp.refused), or a
  // connection closed or reset before its protocol began (client.error, tcp.reset).
  {
    id: 'tunnel-token-used',
    event: 'token-rejected',
    when: (d) => d.reason === 'used',
    class: 'tunnel.token-used',
    refines: ['tcp.refused', 'tcp.reset'],
    explain: (d, e) =>
      `${e.source} refused a ${s(d.mode)} access token that was already used (HTTP ${s(d.status)}); rotate it or reconnect with the same client token`,
  },
  {
    id: 'tunnel-closed',
    event: 'token-rejected',
    when: (d) => d.reason === 'closed',
    class: 'tunnel.closed',
    refines: ['tcp.refused', 'tcp.reset'],
    explain: (d, e) =>
      `${e.source} refused the ${s(d.mode)} token of tunnel ${s(d.tunnelId)}: the tunnel is closed (HTTP ${s(d.status)})`,
  },
  {
    // A cloud endpoint (IoT Hub, DPS, AWS IoT persona) refused the device's credentials.
    id: 'service-auth-rejected',
    event: 'auth-rejected',
    class: 'auth.rejected',
    explain: (d, e) =>
      `${e.source} rejected the credentials of ${s(d.deviceId ?? d.clientId)} over ${s(d.transport)}: ${s(d.reason)}`,
  },
  {
    // The AWS IoT persona dropped a connection at CONNECT without a CONNACK (unknown, inactive or
    // just-registered certificate), which clients report only as a lost connection.
    id: 'aws-auth-denied',
    event: 'auth-denied',
    class: 'auth.rejected',
    consistentWith: ['tcp.reset'],
    explain: (d, e) =>
      `${e.source} refused the certificate of ${s(d.clientId)} and closed the connection without a CONNACK: ${s(d.reason)}`,
  },
  {
    id: 'relay-slow',
    event: 'toxic-applied',
    when: isRelayToxic(['latency', 'bandwidth', 'slicer', 'slow_close']),
    consistentWith: ['tcp.timeout', 'client.timeout'],
    explain: (d, e) => `the relay ${e.source} slowed the connection (toxic ${toxicName(d)}, ${s(d.type)})`,
  },
  {
    id: 'relay-limit',
    event: 'toxic-applied',
    when: isRelayToxic(['limit_data']),
    consistentWith: ['tcp.reset', 'tls.handshake', 'client.error'],
    explain: (d, e) =>
      `the relay ${e.source} closed the connection after a byte limit (toxic ${toxicName(d)})`,
  },
  {
    // SORACOM Krypton's 403: the request did not arrive through the SIM network (Air or Arc).
    id: 'krypton-source-denied',
    event: 'source-denied',
    class: 'http.status',
    explain: (d, e) =>
      `${e.source} answered 403: the request came from ${s(d.source)}, outside the SIM network ` +
      `(${Array.isArray(d.allowedSources) ? d.allowedSources.join(', ') : s(d.allowedSources)}); ` +
      'send it through SORACOM Air or Arc (add the service address to AllowedIPs and route it into the tunnel)',
  },
  {
    // Before proxy-denied: the client saw a 403 like any policy refusal; the lab knows it was its own list.
    id: 'proxy-destination-denied',
    event: 'destination-denied',
    class: 'proxy.destination-denied',
    refines: ['proxy.connect-denied', 'http.status'],
    consistentWith: ['client.error'],
    explain: (d, e) =>
      `proxy ${e.source} refused ${s(d.target)}: ${s(d.destination)} is not among the destinations it may ` +
      `reach (${s(d.allowed)}); map it to a lab host, or add it to the proxy's destinations`,
  },
  {
    id: 'proxy-denied',
    event: 'connect-denied',
    class: 'proxy.connect-denied',
    // azure-iot-device over MqttWs/AmqpWs reports any refused CONNECT as "Not authorized".
    refines: ['auth.rejected'],
    explain: (d, e) =>
      `proxy ${e.source} denied CONNECT ${s(d.target)} by rule ${s(d.rule)} (${s(d.status)})`,
  },
  {
    id: 'proxy-auth',
    event: 'auth-required',
    class: 'proxy.auth-required',
    // azure-iot-device over MqttWs/AmqpWs reports the proxy's 407 as "Not authorized".
    refines: ['auth.rejected'],
    explain: (d, e) =>
      d.reason === 'wrong'
        ? `proxy ${e.source} rejected the credentials it was given (407)`
        : `proxy ${e.source} asked for credentials the client did not send (407)`,
  },
  {
    // Before proxy-upstream: the inspector's session with the target failed because the target asked for
    // a client certificate. Clients see a lost connection (the target dropped it), a failed handshake
    // (s2n refuses a server that asks for no certificate) or the inspector's handshake_failure.
    id: 'inspector-client-cert',
    event: 'client-cert-unavailable',
    class: 'tls.client-cert-required',
    refines: ['tcp.reset', 'tls.handshake', 'client.error', 'proxy.bad-gateway'],
    consistentWith: ['auth.rejected'],
    explain: (d, e) => `${e.source}: ${s(d.message)}`,
  },
  {
    id: 'proxy-upstream',
    event: 'upstream-error',
    when: (d) => d.target !== undefined,
    class: 'proxy.bad-gateway',
    consistentWith: ['tcp.reset', 'tcp.timeout', 'client.error'],
    explain: (d, e) =>
      `proxy ${e.source} could not reach ${s(d.target)}: ${s(d.code)} ${s(d.message)}`.trim(),
  },
  {
    id: 'relay-upstream',
    event: 'upstream-error',
    consistentWith: ['tcp.reset', 'tcp.refused', 'tcp.timeout', 'client.error'],
    explain: (d, e) =>
      `the relay ${e.source} could not reach its upstream: ${s(d.code)} ${s(d.message)}`.trim(),
  },
  {
    id: 'tls-unknown-ca',
    event: 'tls-client-error',
    when: (d) => d.alert === 'unknown_ca',
    class: 'tls.untrusted-root',
    // OpenSSL sends unknown_ca both for an unknown root and for a missing intermediate.
    consistentWith: ['tls.incomplete-chain'],
    explain: (_d, e) => `the client rejected ${e.source}'s certificate with alert unknown_ca`,
  },
  {
    id: 'tls-expired',
    event: 'tls-client-error',
    when: (d) => d.alert === 'certificate_expired',
    class: 'tls.expired',
    explain: (_d, e) => `the client rejected ${e.source}'s certificate with alert certificate_expired`,
  },
  {
    id: 'tls-bad-cert',
    event: 'tls-client-error',
    when: (d) => d.alert === 'bad_certificate',
    // OpenSSL maps X509_V_ERR_CERT_NOT_YET_VALID to bad_certificate (ssl_verify_alarm_type).
    class: 'tls.not-yet-valid',
    consistentWith: ['tls.hostname-mismatch', 'tls.untrusted-root', 'tls.expired', 'tls.incomplete-chain'],
    explain: (_d, e) =>
      `the client rejected ${e.source}'s certificate with alert bad_certificate ` +
      "(OpenSSL's alert for a certificate not yet valid)",
  },
  {
    id: 'tls-cert-unknown',
    event: 'tls-client-error',
    when: (d) => d.alert === 'certificate_unknown',
    class: 'tls.handshake',
    consistentWith: ['tls.hostname-mismatch', 'tls.untrusted-root', 'tls.expired', 'tls.incomplete-chain'],
    explain: (_d, e) => `the client rejected ${e.source}'s certificate with alert certificate_unknown`,
  },
  {
    // A TLS inspector showed a valid leaf for the name (no fault) and the client left without an alert:
    // what Node does when it does not trust the issuing root (it verifies after the handshake).
    id: 'inspector-silent-reject',
    event: 'tls-client-error',
    // Dropped without a byte after its hello (a client that closes the session instead is another case).
    when: (d) => d.code === 'E_CLIENT_HANGUP' && d.fault === 'none' && !(Number(d.bytesAfterHello) > 0),
    class: 'tls.untrusted-root',
    refines: ['client.error'],
    consistentWith: ['tcp.reset', 'tls.handshake'],
    explain: (d, e) =>
      `the client hung up on ${e.source}'s forged certificate for ${s(d.host)} (valid for the name, issued ` +
      "by the inspector's CA) without an alert: what a client that verifies after the handshake (Node) " +
      "does when it does not trust the inspector's root",
  },
  {
    id: 'tls-no-client-cert',
    event: 'tls-client-error',
    when: (d) =>
      s(d.code).includes('PEER_DID_NOT_RETURN_A_CERTIFICATE') || d.alert === 'certificate_required',
    class: 'tls.client-cert-required',
    consistentWith: ['tls.handshake', 'tcp.reset'],
    explain: (_d, e) => `${e.source} wanted a client certificate and the client sent none`,
  },
  {
    id: 'proxy-tls-to-plain',
    event: 'protocol-error',
    // The connect proxy saw a TLS ClientHello (0x16) where an HTTP request line belongs.
    when: (d) => d.reason === 'tls-to-plain-proxy',
    class: 'proxy.scheme-mismatch',
    consistentWith: ['tls.handshake', 'tcp.reset', 'client.error'],
    explain: (_d, e) =>
      `${e.source} is a plain-HTTP proxy but the client opened TLS to it (an https:// proxy URL)`,
  },
  {
    id: 'proxy-plain-to-tls',
    event: 'protocol-error',
    when: (d) => d.reason === 'plain-to-tls-proxy',
    class: 'proxy.scheme-mismatch',
    consistentWith: ['tls.handshake', 'tcp.reset', 'client.error'],
    explain: (_d, e) => `${e.source} is a TLS (https://) proxy but the client spoke plain HTTP to it`,
  },
  {
    id: 'tls-plain-connect',
    event: 'tls-client-error',
    // OpenSSL: "https proxy request" when the first bytes on a TLS port are `CONNECT ...`.
    when: (d) => /HTTPS_PROXY_REQUEST|https proxy request/i.test(`${s(d.code)} ${s(d.message)}`),
    class: 'proxy.scheme-mismatch',
    consistentWith: ['tcp.reset', 'client.error'],
    explain: (_d, e) => `${e.source} speaks TLS but the client sent it a plain-HTTP CONNECT`,
  },
  {
    id: 'tls-plain-http',
    event: 'tls-client-error',
    when: (d) => /HTTP_REQUEST|http request/i.test(`${s(d.code)} ${s(d.message)}`),
    class: 'tls.handshake',
    consistentWith: ['proxy.scheme-mismatch', 'tcp.reset', 'client.error'],
    explain: (_d, e) => `${e.source} expected TLS but the client sent plain HTTP`,
  },
  {
    id: 'tls-other-alert',
    event: 'tls-client-error',
    when: (d) => typeof d.alert === 'string',
    class: 'tls.handshake',
    explain: (d, e) => `the TLS handshake with ${e.source} failed: the client sent alert ${s(d.alert)}`,
  },
  {
    // A DNS fault of a lab DNS server hit a query (the same toxic-* events as the relay's, DNS types).
    id: 'dns-fault',
    event: 'toxic-applied',
    when: (d) => DNS_FAULT_NAMES.has(s(d.type)),
    consistentWith: [...DNS_CLASSES, 'client.error', 'client.timeout'],
    explain: (d, e) =>
      `the DNS server ${e.source} applied its ${s(d.type)} fault (${toxicName(d)}) to the query ${s(d.query)} ` +
      `from ${s(d.client)} over ${s(d.transport)}`,
  },
  {
    // The device's resolver waited for the zone's server in vain: a client's "could not resolve" (curl
    // exit 6), EAI_AGAIN, or an SDK's "Not authorized" wrapping it, was this timeout.
    id: 'resolver-upstream-timeout',
    event: 'upstream-timeout',
    when: (d) => d.error === undefined,
    class: 'dns.timeout',
    refines: ['dns.nxdomain', 'auth.rejected'],
    consistentWith: [...DNS_CLASSES, 'client.timeout'],
    explain: (d, e) =>
      `the resolver ${e.source} got no answer from ${s(d.server)} for ${s(d.name)} ${s(d.type)} within ` +
      `${Math.round(Number(d.ms))} ms (attempt ${s(d.attempt)})`,
  },
  {
    id: 'resolver-upstream-error',
    event: 'upstream-timeout',
    consistentWith: [...DNS_CLASSES, 'client.error', 'client.timeout'],
    explain: (d, e) =>
      `the resolver ${e.source} could not ask ${s(d.server)} for ${s(d.name)} ${s(d.type)}: ${s(d.error)} ` +
      `(attempt ${s(d.attempt)})`,
  },
  {
    // What the device's resolver told it: glibc turns SERVFAIL into EAI_AGAIN ("temporary failure"),
    // curl into "Could not resolve host", azure-iot-device over MqttWs into "Not authorized".
    id: 'resolver-servfail',
    event: 'answer',
    when: (d) => d.rcode === 'SERVFAIL',
    class: 'dns.servfail',
    refines: ['dns.nxdomain', 'dns.timeout', 'auth.rejected'],
    consistentWith: ['client.error', 'client.timeout'],
    explain: (d, e) =>
      `the resolver ${e.source} answered SERVFAIL to ${s(d.client)} for ${s(d.name)} ${s(d.type)} ` +
      `after ${Math.round(Number(d.ms))} ms (${s(d.reason)})`,
  },
  {
    id: 'resolver-refused',
    event: 'answer',
    when: (d) => d.rcode === 'REFUSED',
    class: 'dns.refused',
    refines: ['dns.nxdomain', 'dns.timeout', 'auth.rejected'],
    explain: (d, e) =>
      `the resolver ${e.source} refused ${s(d.client)}'s query for ${s(d.name)} ${s(d.type)} (${s(d.reason)})`,
  },
  {
    id: 'dns-nxdomain',
    event: 'query',
    when: (d) => rcode(d) === 'NXDOMAIN',
    class: 'dns.nxdomain',
    explain: (d, e) => `the DNS server ${e.source} answered NXDOMAIN for ${s(d.name)} ${s(d.type)}${why(d)}`,
  },
  {
    id: 'dns-servfail',
    event: 'query',
    when: (d) => rcode(d) === 'SERVFAIL',
    class: 'dns.servfail',
    explain: (d, e) => `the DNS server ${e.source} answered SERVFAIL for ${s(d.name)}${why(d)}`,
  },
  {
    id: 'dns-refused',
    event: 'query',
    when: (d) => rcode(d) === 'REFUSED',
    class: 'dns.refused',
    explain: (d, e) => `the DNS server ${e.source} refused the query for ${s(d.name)}`,
  },
  {
    id: 'dns-nodata',
    event: 'query',
    when: (d) => rcode(d) === 'NOERROR' && noAnswers(d),
    class: 'dns.nodata',
    consistentWith: ['dns.nxdomain'],
    explain: (d, e) => `the DNS server ${e.source} has ${s(d.name)} but no ${s(d.type)} record${why(d)}`,
  },
];

const bare = (name: unknown) => s(name).toLowerCase().replace(/\.$/, '');
const dataOf = (e: LabEvent): Data => (typeof e.data === 'object' && e.data !== null ? e.data : {}) as Data;
const targets = (answers: unknown): string[] =>
  Array.isArray(answers) ? answers.map((a) => bare((a as Data).data)) : [];
const answerText = (answers: unknown): string =>
  Array.isArray(answers) && answers.length > 0
    ? answers.map((a) => `${s((a as Data).type)} ${s((a as Data).data)}`).join(', ')
    : 'no records';

const WRONG_REGION: EvidenceRule = {
  id: 'dns-wrong-region',
  event: 'domain-connection',
  class: 'dns.wrong-region',
  explain: (d, e) => `${e.source} (${s(d.endpoint)}) served ${s(d.servername)}`,
};

/**
 * `dns.wrong-region` from what the lab saw, never from the client's words: a resolver answered a name
 * with records the client's own location does not get (its `answer-check`: the authoritative server
 * asked for that client's address), and a region's endpoint named in that answer, not in the one the
 * location gets, then served a device that asked for the name (its `domain-connection`, by SNI).
 */
function wrongRegionFindings(events: readonly LabEvent[]): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  // The answer a device connected with is the last one the lab checked for that name before it connected.
  const lastCheck = new Map<string, LabEvent>();
  for (const e of events) {
    if (e.type === 'answer-check') {
      lastCheck.set(bare(dataOf(e).name), e);
      continue;
    }
    if (e.type !== 'domain-connection') continue;
    const r = dataOf(e);
    const check = lastCheck.get(bare(r.servername));
    const c = check ? dataOf(check) : undefined;
    const endpoint = bare(r.endpoint);
    if (
      c?.agrees !== false ||
      !targets(c.answers).includes(endpoint) ||
      targets(c.expected).includes(endpoint)
    ) {
      continue;
    }
    const sentence =
      `${s(c.resolver)} answered ${s(c.name)} ${s(c.type)} with ${answerText(c.answers)} to ${s(c.client)}, ` +
      `whose own location (${s(c.clientLocation)}) gets ${answerText(c.expected)} from ${s(c.server)}; ` +
      `the device then connected to ${e.source} (${s(r.endpoint)}, region ${s(r.region)}) asking for ${s(r.servername)}`;
    if (seen.has(sentence)) continue;
    seen.add(sentence);
    out.push({ rule: WRONG_REGION, sentence });
  }
  return out;
}

/** Client classes too vague to stand against a specific finding from the lab. */
const VAGUE: ReadonlySet<FailureClass> = new Set<FailureClass>(['client.error', 'tls.handshake']);

interface Finding {
  rule: EvidenceRule;
  sentence: string;
}

function findings(events: readonly LabEvent[], rules: readonly EvidenceRule[]): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const event of events) {
    const data = (typeof event.data === 'object' && event.data !== null ? event.data : {}) as Data;
    const rule = rules.find((r) => r.event === event.type && (!r.when || r.when(data, event)));
    if (!rule) continue;
    const sentence = rule.explain(data, event);
    if (seen.has(sentence)) continue; // retries repeat the same event
    seen.add(sentence);
    out.push({ rule, sentence });
  }
  return out;
}

function agrees(f: Finding, cls: FailureClass): boolean {
  return f.rule.class === cls || (f.rule.consistentWith ?? []).includes(cls);
}

/**
 * Refines `verdict` with the lab's events:
 * - a success stays a success (no lines);
 * - an event that narrows the client's class (`refines`) gives the verdict its more specific class;
 * - events that agree with the client's class confirm it, and their sentences explain it;
 * - when the client's class is vague (client.error, tls.handshake) and an event names a specific class,
 *   the lab wins: the verdict takes the lab's class and keeps the client's detail as evidence;
 * - otherwise the client's class stands and a line says what the lab saw.
 */
export function explain(
  verdict: Verdict,
  events: readonly LabEvent[],
  rules: readonly EvidenceRule[] = EVIDENCE_RULES,
): { verdict: Verdict; explanation: string[] } {
  const misrouted = wrongRegionFindings(events);
  if (verdict.ok) {
    // The device got through, but to another region than its location's: the run failed all the same.
    if (misrouted.length === 0) return { verdict, explanation: [] };
    const sentences = misrouted.map((f) => f.sentence);
    return {
      verdict: {
        ok: false,
        class: 'dns.wrong-region',
        detail: `the client succeeded, in the wrong region: ${sentences[0]}`,
        evidence: sentences,
      },
      explanation: [
        ...sentences,
        "the client reported success; the lab's evidence shows it reached another region than its location's",
      ],
    };
  }
  const all = [...misrouted, ...findings(events, rules)];
  if (all.length === 0) return { verdict, explanation: [] };
  // The lab's own evidence for the client's class keeps it: a hub that rejected the key after the proxy
  // challenged a client that sends credentials only when asked (407, then CONNECT with them).
  const confirmed = all.some((f) => f.rule.class === verdict.class);
  const narrowing = confirmed ? [] : all.filter((f) => f.rule.refines?.includes(verdict.class));
  const narrower = narrowing[0]?.rule.class;
  if (narrower) {
    // What led up to it, in the order the lab saw it (e.g. the DNS fault that hit the query the
    // resolver then failed): events with no class of their own that agree with the narrower class.
    const context = all.filter((f) => !f.rule.class && !narrowing.includes(f) && agrees(f, narrower));
    return {
      verdict: {
        ok: false,
        class: narrower,
        detail: verdict.detail,
        evidence: [
          ...(verdict.evidence ?? []),
          `client said ${verdict.class}`,
          ...narrowing.map((f) => f.sentence),
        ],
      },
      explanation: [
        ...context.map((f) => f.sentence),
        ...narrowing.map((f) => f.sentence),
        `the client saw ${verdict.class}; the lab's evidence narrows it to ${narrower}`,
      ],
    };
  }
  const agreeing = all.filter((f) => agrees(f, verdict.class));
  const specific = all.filter(
    (f) => f.rule.class && f.rule.class !== verdict.class && !VAGUE.has(f.rule.class),
  );
  if (
    VAGUE.has(verdict.class) &&
    specific.length > 0 &&
    !agreeing.some((f) => f.rule.class === verdict.class)
  ) {
    const winner = specific[0]!;
    const cls = winner.rule.class!;
    return {
      verdict: {
        ok: false,
        class: cls,
        detail: verdict.detail,
        evidence: [
          ...(verdict.evidence ?? []),
          `client said ${verdict.class}`,
          ...specific.map((f) => f.sentence),
        ],
      },
      explanation: [
        ...specific.map((f) => f.sentence),
        `the client reported only ${verdict.class}; the lab's evidence points to ${cls}`,
      ],
    };
  }
  const explanation = agreeing.map((f) => f.sentence);
  for (const f of all) {
    if (!agreeing.includes(f)) explanation.push(`the lab also saw: ${f.sentence}`);
  }
  const evidence = [...(verdict.evidence ?? []), ...agreeing.map((f) => f.sentence)];
  return {
    verdict: { ...verdict, ...(evidence.length ? { evidence } : {}) },
    explanation,
  };
}
