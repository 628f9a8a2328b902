/**
 * The forwarding resolver's pipeline for one query, whatever transport brought it:
 *
 *   query ─► checks (QR, opcode, QDCOUNT, class) ─► hosts? ─► RD? ─► forward zone?
 *         ─► cache (name, type, ECS scope) ─fresh─► answer (TTL counted down)
 *               └ miss/expired ─► upstream (egress address, ECS, timeout × retries, TCP on TC)
 *                     ├ NOERROR/NXDOMAIN ─► cache ─► answer
 *                     └ timeout/SERVFAIL/REFUSED ─► stale entry? (RFC 8767) ─► answer : SERVFAIL
 *
 * DNS faults (the lab's `faults:`, simulators/common/dns-faults.ts) act first, where the client is
 * answered, before the cache and the upstream: see `applyFault`.
 */
import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import dns2 from 'dns2';
import type { DnsFaultSet } from '../common/dns-faults.js';
import { preciseNow, type SimulatorEvents } from '../common/index.js';
import { type Cidr, formatIp, inCidr, ipBytes, parseCidr } from '../geo-dns/ip.js';
import { effect, type Fault } from '../geo-dns/server.js';
import { RCODE, rcodeName } from '../geo-dns/wire.js';
import { type CacheEntry, ResolverCache } from './cache.js';
import type {
  AnswerSource,
  ResolverAnswerInfo,
  ResolverEvents,
  ResolverStats,
  ResolverTransport,
} from './events.js';
import type { ForwardZone } from './options.js';
import { answerInfo, type Dns2Resource, typeName, withTtl } from './records.js';
import {
  acceptAnswer,
  askTcp,
  askUdp,
  type ClientSubnet,
  type Dns2Packet,
  encodeQuery,
  type UpstreamOutcome,
  type UpstreamServer,
} from './upstream.js';

/** The merged faults acting on a query (the geo-dns's `Fault`), and whether one is `stale`. */
type ResolverFault = Fault & { stale: boolean };

/** Answers that came from the zone's servers (now or cached): the ones a location decides. */
const FORWARDED: ReadonlySet<AnswerSource> = new Set(['upstream', 'cache', 'stale']);

/** RFC 8767 §4: the TTL of a stale answer. */
const STALE_TTL = 30;
/** RFC 8767 §4: cap cached TTLs at 7 days. */
const MAX_TTL = 604_800;

export interface ResolverConfig {
  egress: string;
  /** ECS off: undefined. */
  ecs?: { ipv4: number; ipv6: number; subnet?: Cidr };
  forward: readonly ForwardZone[];
  hosts: Readonly<Record<string, string>>;
  hostsTtl: number;
  timeoutMs: number;
  retries: number;
  cache: boolean;
  maxEntries: number;
  serveStale: boolean;
  maxStaleS: number;
  maxInflight: number;
  /** Who this resolver is, as `answer-check` events name it (persona, location, ECS). */
  description?: string;
  /** The lab's check of forwarded answers (see `AnswerCheck`); none: no `answer-check` events. */
  check?: AnswerCheck;
}

/**
 * What the authoritative server gives the client's own location (the lab asks it directly, as Route 53's
 * TestDNSAnswer does with the client's address as the EDNS client subnet); undefined: no opinion (the
 * name is not the lab's). The resolver compares it with what it answered and emits `answer-check`.
 */
export type AnswerCheck = (query: {
  client: string;
  name: string;
  type: string;
}) => { server: string; location: string; answers: ResolverAnswerInfo[] } | undefined;

/** Answers compared without their TTLs, as a device uses them. */
function sameAnswers(a: readonly ResolverAnswerInfo[], b: readonly ResolverAnswerInfo[]): boolean {
  const key = (r: readonly ResolverAnswerInfo[]) =>
    r
      .map(
        (x) =>
          `${x.name.toLowerCase().replace(/\.$/, '')} ${x.type} ${x.data.toLowerCase().replace(/\.$/, '')}`,
      )
      .sort()
      .join('\n');
  return key(a) === key(b);
}

/** A forward zone with its servers parsed. */
interface Route {
  zone: string;
  servers: UpstreamServer[];
}

type Result = {
  rcode: number;
  answers: Dns2Resource[];
  authority: Dns2Resource[];
  source: AnswerSource;
  reason: string;
  /** A `truncate` fault: TC set (UDP). */
  truncated?: boolean;
};

function normName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

function parseServer(s: string): UpstreamServer {
  const m = /^(?:\[([0-9a-fA-F:]+)\]|([0-9.]+)):(\d+)$/.exec(s);
  const host = m?.[1] ?? m?.[2] ?? '127.0.0.1';
  return { host, port: Number(m?.[3] ?? 53), text: s };
}

/** The first `prefix` bits of `bytes`, the rest zero. */
function masked(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0, bits = prefix; bits > 0 && i < bytes.length; i++, bits -= 8) {
    out[i] = (bytes[i] ?? 0) & (bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/** The client subnet to send (RFC 7871 §6) and its full-length address for cache lookups. */
interface Subnet {
  ecs: ClientSubnet;
  full: Uint8Array;
  text: string;
}

export class Resolver {
  readonly cache: ResolverCache<Dns2Resource>;
  readonly counters: Omit<ResolverStats, 'cacheEntries'> = {
    queries: 0,
    byTransport: { udp: 0, tcp: 0, dot: 0, doh: 0 },
    byRcode: {},
    cacheHits: 0,
    cacheMisses: 0,
    staleServed: 0,
    upstreamQueries: 0,
    upstreamTimeouts: 0,
    malformed: 0,
    dropped: 0,
  };
  private readonly routes: Route[];
  private readonly hosts = new Map<string, string>();
  /** Upstream resolutions in flight, by (name, type, subnet): concurrent clients share one. */
  private readonly inflight = new Map<string, Promise<Result>>();
  private readonly abort = new AbortController();

  constructor(
    private readonly cfg: ResolverConfig,
    private readonly events: SimulatorEvents<ResolverEvents>,
    /** The lab's DNS faults on this resolver (none: every query is answered normally). */
    private readonly faults?: DnsFaultSet,
  ) {
    // Expired entries are kept `maxStale` (bounded by maxEntries) whether or not the resolver serves
    // stale itself: a `stale` fault answers from them, as a resolver that kept the old record set.
    this.cache = new ResolverCache(cfg.maxEntries, cfg.maxStaleS * 1000);
    this.routes = cfg.forward
      .map((f) => ({ zone: normName(f.zone), servers: f.upstream.map(parseServer) }))
      .sort((a, b) => b.zone.length - a.zone.length);
    for (const [name, addr] of Object.entries(cfg.hosts)) this.hosts.set(normName(name), addr);
  }

  /** Adds (or replaces) lab host names answered locally. */
  setHosts(hosts: Readonly<Record<string, string>>): void {
    for (const [name, addr] of Object.entries(hosts)) this.hosts.set(normName(name), addr);
  }

  /** Ends upstream queries in flight (their clients get SERVFAIL). */
  stop(): void {
    this.abort.abort();
  }

  /**
   * Answers one query (a dns2 Packet) from `client`; undefined means send nothing (a response was
   * received: never answer one, RFC 1035 §4.1.1).
   */
  async answer(
    request: Dns2Packet,
    client: string,
    transport: ResolverTransport,
  ): Promise<Dns2Packet | undefined> {
    const started = preciseNow();
    this.counters.queries++;
    this.counters.byTransport[transport]++;
    if (request.header.qr) {
      this.counters.malformed++;
      this.events.emitEvent('malformed', { client, transport, bytes: 0, action: 'dropped a response' });
      return transport === 'doh' ? this.reply(request, RCODE.FORMERR, [], []) : undefined;
    }
    const q = request.questions[0];
    const name = q ? normName(q.name) : '';
    const type = q?.type ?? 0;
    this.events.emitEvent('query', {
      client,
      transport,
      name,
      type: typeName(type),
      rd: request.header.rd === 1,
    });
    const fault = this.faultFor(request, name, type, client, transport);
    if (fault?.drop) {
      this.counters.dropped++;
      this.events.emitEvent('answer', {
        client,
        transport,
        name,
        type: typeName(type),
        rcode: 'NONE',
        source: 'none',
        answers: [],
        reason: `fault ${fault.text}: no answer`,
        ms: preciseNow() - started,
      });
      return undefined;
    }
    if (fault?.delay !== undefined && fault.delay > 0) {
      // Ends early when the resolver stops: the client gets nothing, as from a stopped server.
      const waited = await sleep(fault.delay, true, { signal: this.abort.signal }).catch(() => false);
      if (!waited) return undefined;
    }
    const result = fault
      ? await this.applyFault(fault, request, q, name, type, client, transport)
      : await this.resolve(request, q, name, type, client);
    const response = this.reply(request, result.rcode, result.answers, result.authority);
    // RFC 2181 §9: TC set, the header and question only: the client retries over TCP (RFC 7766 §5)
    if (result.truncated) response.header.tc = 1;
    const rcode = rcodeName(result.rcode);
    this.counters.byRcode[rcode] = (this.counters.byRcode[rcode] ?? 0) + 1;
    const answers = answerInfo(result.answers);
    this.events.emitEvent('answer', {
      client,
      transport,
      name,
      type: typeName(type),
      rcode,
      source: result.source,
      answers,
      reason: result.reason,
      ms: preciseNow() - started,
    });
    if (FORWARDED.has(result.source)) this.checkAnswer(client, name, typeName(type), answers);
    return response;
  }

  /**
   * The faults acting on this query (each reported with `toxic-applied`), merged as the geo-dns merges
   * them; undefined when none acts. `truncate` acts on UDP only: over TCP, DoT and DoH the whole answer
   * is the point. Only well-formed standard queries are matched (the others get their FORMERR/NOTIMP).
   */
  private faultFor(
    request: Dns2Packet,
    name: string,
    type: number,
    client: string,
    transport: ResolverTransport,
  ): ResolverFault | undefined {
    const set = this.faults;
    if (!set?.anyActive || request.header.opcode !== 0 || request.questions.length !== 1) return undefined;
    let addr: Uint8Array | undefined;
    const specs = set.match({
      qname: name,
      qtype: typeName(type),
      // A client of a resolver is its source address (a stub sends no client subnet of its own)
      inCidr: (c) => {
        const cidr = parseCidr(c);
        addr ??= ipBytes(client);
        return cidr !== undefined && addr !== undefined && inCidr(addr, cidr);
      },
    });
    const acting = transport === 'udp' ? specs : specs.filter((x) => x.type !== 'truncate');
    if (acting.length === 0) return undefined;
    for (const x of acting) set.applied(x, `${name} ${typeName(type)}`, client, transport);
    return { ...effect(acting, Math.random), stale: acting.some((x) => x.type === 'stale') };
  }

  /**
   * The answer under a fault, before the cache and the upstream: an RCODE (servfail, nxdomain, refused),
   * TC with no records (truncate), the given address (wrong-answer, when it is of the query's type), the
   * cached record set however old (stale), else the normal resolution (a delay alone).
   */
  private async applyFault(
    fault: ResolverFault,
    request: Dns2Packet,
    q: Dns2Packet['questions'][number] | undefined,
    name: string,
    type: number,
    client: string,
    transport: ResolverTransport,
  ): Promise<Result> {
    const because = `fault ${fault.text}`;
    const none = (rcode: number, reason: string, truncated = false): Result => ({
      rcode,
      answers: [],
      authority: [],
      source: 'none',
      reason,
      ...(truncated ? { truncated } : {}),
    });
    const rcode =
      fault.rcode === 'servfail'
        ? RCODE.SERVFAIL
        : fault.rcode === 'nxdomain'
          ? RCODE.NXDOMAIN
          : fault.rcode === 'refused'
            ? RCODE.REFUSED
            : undefined;
    if (fault.truncate && transport === 'udp') {
      return none(rcode ?? RCODE.NOERROR, `${because}: TC set, no records (retry over TCP)`, true);
    }
    if (rcode !== undefined) return none(rcode, because);
    if (fault.address !== undefined && q) {
      const wrong = this.wrongAnswer(q, fault.address, fault.ttl ?? 60, type);
      if (wrong) return { ...wrong, reason: `${because}: answered ${fault.address}` };
    }
    if (fault.stale) {
      const stale = this.staleAnswer(name, type, this.subnetOf(client), fault.ttl);
      if (stale) return { ...stale, reason: `${because}: ${stale.reason}` };
      return none(
        RCODE.SERVFAIL,
        `${because}: no cached answer for ${name} ${typeName(type)} to serve stale, so SERVFAIL`,
      );
    }
    const result = await this.resolve(request, q, name, type, client);
    return { ...result, reason: `${result.reason}; ${because}` };
  }

  /** A `wrong-answer` record at the query name, or undefined when the address is not of the query's type. */
  private wrongAnswer(
    q: Dns2Packet['questions'][number],
    address: string,
    ttl: number,
    type: number,
  ): Result | undefined {
    const want = isIP(address) === 4 ? dns2.Packet.TYPE.A : dns2.Packet.TYPE.AAAA;
    if (type !== want && type !== dns2.Packet.TYPE.ANY) return undefined;
    const rr = new dns2.Packet.Resource(q.name, want, dns2.Packet.CLASS.IN, ttl);
    rr.address = address;
    return { rcode: RCODE.NOERROR, answers: [rr], authority: [], source: 'none', reason: '' };
  }

  /**
   * The cached record set for the client's subnet however old (RFC 8767 answer: TTL `ttl`, default 30),
   * without asking the upstream: a `stale` fault, the resolver that kept the record set from before a
   * failover. Undefined when the cache has none (never cached, evicted, past `maxStale`).
   */
  private staleAnswer(
    name: string,
    type: number,
    subnet: Subnet | undefined,
    ttl = STALE_TTL,
  ): Result | undefined {
    const hit = this.cfg.cache ? this.cache.lookup(name, type, subnet?.full) : undefined;
    if (!hit) return undefined;
    this.counters.staleServed++;
    this.events.emitEvent('cache-hit', {
      name,
      type: typeName(type),
      subnet: subnet?.text ?? 'none',
      scope: hit.entry.scopeText,
      ttl,
      stale: true,
    });
    const expired = hit.age - hit.entry.ttl;
    return {
      rcode: hit.entry.rcode,
      answers: hit.entry.answers.map((r) => withTtl(r, ttl)),
      authority: hit.entry.authority.map((r) => withTtl(r, ttl)),
      source: 'stale',
      reason: `stale answer (RFC 8767) cached ${hit.age}s ago${expired >= 0 ? `, expired ${expired}s ago` : `, ${-expired}s left`}`,
    };
  }

  /** Emits `answer-check`: this answer against what the client's own location gets (the lab's check). */
  private checkAnswer(client: string, name: string, type: string, answers: ResolverAnswerInfo[]): void {
    let own: ReturnType<AnswerCheck>;
    try {
      own = this.cfg.check?.({ client, name, type });
    } catch {
      return; // a check that cannot answer (another family, a type it does not know) has no opinion
    }
    if (!own) return;
    this.events.emitEvent('answer-check', {
      client,
      name,
      type,
      resolver: this.cfg.description ?? 'resolver',
      answers,
      server: own.server,
      clientLocation: own.location,
      expected: own.answers,
      agrees: sameAnswers(answers, own.answers),
    });
  }

  private async resolve(
    request: Dns2Packet,
    q: Dns2Packet['questions'][number] | undefined,
    name: string,
    type: number,
    client: string,
  ): Promise<Result> {
    const fail = (rcode: number, reason: string): Result => ({
      rcode,
      answers: [],
      authority: [],
      source: 'none',
      reason,
    });
    // RFC 1035 §4.1.1: only standard queries; RFC 9619: exactly one question
    if (request.header.opcode !== 0)
      return fail(RCODE.NOTIMP, `opcode ${request.header.opcode} not implemented`);
    if (!q || request.questions.length !== 1)
      return fail(RCODE.FORMERR, `${request.questions.length} questions`);
    if (q.class !== dns2.Packet.CLASS.IN) return fail(RCODE.REFUSED, `class ${q.class} not served`);
    const local = this.hosts.get(name);
    if (local !== undefined) return this.hostsAnswer(q, local, type);
    // A forwarding resolver answers only recursive queries (unbound's `access-control: allow` refuses
    // non-recursive ones; RFC 1034 §4.3.1 leaves RD=0 to the server).
    if (!request.header.rd)
      return fail(RCODE.REFUSED, 'recursion not desired (RD=0): this resolver only recurses');
    const route = this.routes.find((r) => r.zone === '' || name === r.zone || name.endsWith(`.${r.zone}`));
    if (!route) return fail(RCODE.REFUSED, `no forward zone for ${name || '.'}`);
    const subnet = this.subnetOf(client);
    const lookupAddr = subnet?.full;
    const hit = this.cfg.cache ? this.cache.lookup(name, type, lookupAddr) : undefined;
    if (hit && !hit.stale) {
      this.counters.cacheHits++;
      const ttl = hit.entry.ttl - hit.age;
      this.events.emitEvent('cache-hit', {
        name,
        type: typeName(type),
        subnet: subnet?.text ?? 'none',
        scope: hit.entry.scopeText,
        ttl,
        stale: false,
      });
      return {
        rcode: hit.entry.rcode,
        answers: hit.entry.answers.map((r) => withTtl(r, Math.max(0, r.ttl - hit.age))),
        authority: hit.entry.authority.map((r) =>
          withTtl(r, Math.max(0, Math.min(r.ttl, hit.entry.ttl) - hit.age)),
        ),
        source: 'cache',
        reason: `cached ${hit.age}s ago for scope ${hit.entry.scopeText}, ${ttl}s left`,
      };
    }
    this.counters.cacheMisses++;
    this.events.emitEvent('cache-miss', { name, type: typeName(type), subnet: subnet?.text ?? 'none' });
    const key = `${name}|${type}|${subnet?.text ?? ''}`;
    let pending = this.inflight.get(key);
    if (!pending) {
      if (this.inflight.size >= this.cfg.maxInflight) {
        return fail(RCODE.SERVFAIL, `${this.inflight.size} upstream resolutions in flight (maxInflight)`);
      }
      pending = this.forward(route, name, q.name.replace(/\.$/, ''), type, subnet).finally(() =>
        this.inflight.delete(key),
      );
      this.inflight.set(key, pending);
    }
    return pending;
  }

  /** Asks the zone's servers (next server per retry), caches the answer, falls back to a stale one. */
  private async forward(
    route: Route,
    name: string,
    qname: string,
    type: number,
    subnet: Subnet | undefined,
  ): Promise<Result> {
    let failure = 'no answer';
    for (let attempt = 0; attempt <= this.cfg.retries && !this.abort.signal.aborted; attempt++) {
      const server = route.servers[attempt % route.servers.length]!;
      const out = await this.ask(server, name, qname, type, subnet, attempt + 1);
      if (out.kind === 'timeout') {
        failure = `${server.text} ${out.error ?? `did not answer within ${this.cfg.timeoutMs}ms`}`;
        continue;
      }
      if (out.rcode !== RCODE.NOERROR && out.rcode !== RCODE.NXDOMAIN) {
        // RFC 8767 §5: an upstream SERVFAIL/REFUSED is a failure the stale answer may cover
        failure = `${server.text} answered ${rcodeName(out.rcode)}`;
        continue; // the next server (or the same one again), as resolvers do
      }
      const answers = out.packet.answers;
      const authority = out.packet.authorities;
      const entry = this.entryOf(out.rcode, answers, authority, subnet, out.scope);
      if (entry && this.cfg.cache) this.cache.store(name, type, entry);
      return {
        rcode: out.rcode,
        answers,
        authority,
        source: 'upstream',
        reason: `${server.text} answered ${rcodeName(out.rcode)}${subnet ? ` for ECS ${subnet.text} (scope /${out.scope ?? 0})` : ` to egress ${this.cfg.egress} (no ECS)`}`,
      };
    }
    // RFC 8767: with serveStale, an expired answer beats SERVFAIL when the upstream fails.
    const stale = this.cfg.serveStale ? this.staleAnswer(name, type, subnet) : undefined;
    if (stale) return { ...stale, reason: `${stale.reason}: ${failure}` };
    return {
      rcode: RCODE.SERVFAIL,
      answers: [],
      authority: [],
      source: 'none',
      reason: `upstream failed: ${failure}`,
    };
  }

  /** One attempt: UDP, then TCP when the answer is truncated (RFC 7766 §5). */
  private async ask(
    server: UpstreamServer,
    name: string,
    qname: string,
    type: number,
    subnet: Subnet | undefined,
    attempt: number,
  ): Promise<UpstreamOutcome> {
    const id = randomInt(0x10000);
    const query = encodeQuery(id, qname, type, subnet?.ecs);
    const started = preciseNow();
    const base = { server: server.text, name, type: typeName(type) };
    const sent = (transport: 'udp' | 'tcp'): void => {
      this.counters.upstreamQueries++;
      this.events.emitEvent('upstream-query', {
        ...base,
        egress: this.cfg.egress,
        transport,
        ...(subnet ? { ecs: subnet.text } : {}),
        attempt,
      });
    };
    const check = (transport: 'udp' | 'tcp') => (msg: Buffer) =>
      acceptAnswer(msg, id, name, type, subnet?.ecs, transport);
    sent('udp');
    let out: UpstreamOutcome = await askUdp(
      server,
      this.cfg.egress,
      query,
      check('udp'),
      this.cfg.timeoutMs,
      this.abort.signal,
    );
    if (out.kind === 'answer' && 'truncated' in out && out.truncated) {
      sent('tcp');
      out = await askTcp(server, this.cfg.egress, query, check('tcp'), this.cfg.timeoutMs, this.abort.signal);
    }
    const ms = preciseNow() - started;
    if (out.kind === 'timeout') {
      this.counters.upstreamTimeouts++;
      this.events.emitEvent('upstream-timeout', {
        ...base,
        attempt,
        ms,
        ...(out.error ? { error: out.error } : {}),
      });
    } else {
      this.events.emitEvent('upstream-answer', {
        ...base,
        rcode: rcodeName(out.rcode),
        ...(out.scope !== undefined ? { scope: out.scope } : {}),
        answers: answerInfo(out.packet.answers),
        ms,
      });
    }
    return out;
  }

  /** The cache entry for an answer, or undefined when it must not be cached. */
  private entryOf(
    rcode: number,
    answers: Dns2Resource[],
    authority: Dns2Resource[],
    subnet: Subnet | undefined,
    scope: number | undefined,
  ): CacheEntry<Dns2Resource> | undefined {
    let ttl: number;
    if (rcode === RCODE.NOERROR && answers.length > 0) {
      ttl = Math.min(...answers.map((r) => r.ttl)); // RFC 2181 §5.2: one TTL per RRset; the entry lives as long as its shortest
    } else {
      // RFC 2308 §5: NXDOMAIN/NODATA are cached for min(SOA TTL, SOA MINIMUM); without an SOA, not at all
      const soa = authority.find((r) => r.type === dns2.Packet.TYPE.SOA);
      if (!soa) return undefined;
      ttl = Math.min(soa.ttl, soa.minimum ?? soa.ttl);
    }
    ttl = Math.min(ttl, MAX_TTL);
    if (ttl <= 0) return undefined;
    // RFC 7871 §7.3.1: scope 0 (or no ECS option in the answer) is for every client
    const s = subnet && scope ? scope : 0;
    const scoped = subnet && s > 0 ? { bytes: masked(subnet.full, s), prefix: s } : undefined;
    return {
      rcode,
      answers,
      authority,
      storedAt: performance.now(),
      ttl,
      ...(scoped ? { scope: scoped } : {}),
      scopeText: scoped ? `${formatIp(scoped.bytes)}/${s}` : '0',
    };
  }

  /** The ECS subnet for a client (its address truncated, or the configured one); undefined with ECS off. */
  private subnetOf(client: string): Subnet | undefined {
    const ecs = this.cfg.ecs;
    if (!ecs) return undefined;
    let bytes: Uint8Array | undefined;
    let prefix: number;
    if (ecs.subnet) {
      bytes = ecs.subnet.bytes;
      prefix = ecs.subnet.prefix;
    } else {
      bytes = ipBytes(client.replace(/^::ffff:(?=\d+\.)/, ''));
      if (!bytes) return undefined;
      prefix = bytes.length === 4 ? ecs.ipv4 : ecs.ipv6;
    }
    const full = masked(bytes, prefix);
    return {
      ecs: {
        family: bytes.length === 4 ? 1 : 2,
        sourcePrefix: prefix,
        address: full.subarray(0, Math.ceil(prefix / 8)),
      },
      full,
      text: `${formatIp(full)}/${prefix}`,
    };
  }

  private hostsAnswer(q: Dns2Packet['questions'][number], address: string, type: number): Result {
    const want = isIP(address) === 4 ? dns2.Packet.TYPE.A : dns2.Packet.TYPE.AAAA;
    if (type !== want)
      return {
        rcode: RCODE.NOERROR,
        answers: [],
        authority: [],
        source: 'hosts',
        reason: `lab host ${q.name} has no ${typeName(type)}`,
      };
    const rr = new dns2.Packet.Resource(q.name, want, dns2.Packet.CLASS.IN, this.cfg.hostsTtl);
    rr.address = address;
    return {
      rcode: RCODE.NOERROR,
      answers: [rr],
      authority: [],
      source: 'hosts',
      reason: `lab host ${q.name}`,
    };
  }

  /** The response: RA=1 (RFC 1035 §4.1.1), RD copied, AA=0, an OPT when the query had one (RFC 6891 §7). */
  private reply(
    request: Dns2Packet,
    rcode: number,
    answers: Dns2Resource[],
    authority: Dns2Resource[],
  ): Dns2Packet {
    const response = dns2.Packet.createResponseFromRequest(request);
    response.header.ra = 1;
    response.header.aa = 0;
    response.header.rcode = rcode;
    response.answers = answers;
    response.authorities = authority;
    if (request.additionals.some((r) => r.type === dns2.Packet.TYPE.EDNS)) {
      const opt = dns2.Packet.Resource.EDNS([]);
      opt.class = 1232;
      response.additionals = [opt];
    }
    return response;
  }
}
