/**
 * The transports and the per-query pipeline:
 *
 *   dgram / TCP (2-byte length, RFC 1035 §4.2.2)
 *     ─► decodeQuery (fast) ─┬─► fault? ─► resolve ─► encode ─► send
 *     └ unusual: dns2 Packet ┘            └ cache: (name, type, location) → bytes
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import dns2 from 'dns2';
import type { DnsFaultSet, DnsFaultSpec } from '../common/dns-faults.js';
import {
  ConnectionTracker,
  closeServer,
  errorCode,
  hostPort,
  type SimulatorEvents,
} from '../common/index.js';
import { listenOnHandle } from '../common/net.js';
import type { GeoDnsEvents, GeoDnsStats } from './events.js';
import { locationText } from './geo.js';
import type { HealthChecks } from './health.js';
import { type ClientLocation, inCidr, ipBytes, type LocationTable, parseCidr } from './ip.js';
import {
  decodeQuery,
  type Ecs,
  ecsAddress,
  ecsText,
  encodeOpt,
  encodeResponse,
  errorResponse,
  finishResponse,
  parseOptOptions,
  type Query,
  RCODE,
  type Rr,
  rcodeName,
  rdataText,
  typeName,
  validateMessage,
} from './wire.js';
import type { Resolution, ZoneStore } from './zone.js';

/** What the faults matching a query do to it, merged (see `effect`). */
export interface Fault {
  rcode?: 'nxdomain' | 'servfail' | 'refused';
  drop?: boolean;
  delay?: number;
  /** UDP only: answer with TC set and no records. */
  truncate?: boolean;
  /** `stale`: answer the query name with this record (by id or region). */
  answerFrom?: string;
  /** `wrong-answer`: answer this address. */
  address?: string;
  ttl?: number;
  /** Text for reasons, e.g. `servfail`, `delay 200ms`. */
  text: string;
}

/** Merges the faults matching one query: the first of each kind wins. */
export function effect(specs: readonly DnsFaultSpec[], random: () => number): Fault {
  const f: Fault = {
    text: specs.map((x) => (x.name === x.type ? x.type : `${x.name} (${x.type})`)).join(', '),
  };
  for (const x of specs) {
    switch (x.type) {
      case 'servfail':
      case 'nxdomain':
      case 'refused':
        f.rcode ??= x.type;
        break;
      case 'drop':
        f.drop = true;
        break;
      case 'delay':
        f.delay ??= Math.max(0, x.latency + (x.jitter > 0 ? (random() * 2 - 1) * x.jitter : 0));
        break;
      case 'truncate':
        f.truncate = true;
        break;
      case 'stale':
        if (x.record !== undefined) f.answerFrom ??= x.record;
        if (x.ttl !== undefined) f.ttl ??= x.ttl;
        break;
      case 'wrong-answer':
        f.address ??= x.address;
        f.ttl ??= x.ttl;
        break;
      case 'tcp-refused':
        break;
    }
  }
  return f;
}

type Transport = 'udp' | 'tcp';
/** Sends one answer; `hold` marks an answer still to come (a delay fault) so TCP does not idle out. */
type Send = ((buf: Buffer) => void) & { hold?: (delta: number) => void };

interface CacheEntry {
  body: Buffer;
  res: Resolution;
  rcode: number;
}

const NO_ECS_OPT = encodeOpt(undefined, 0);

export interface ServerDeps {
  host: string;
  port: number;
  /** Serve on these instead of binding host:port (see the `bound` option). */
  bound?: { udp: UdpSocket; tcp: object } | undefined;
  zones: ZoneStore;
  locations: () => LocationTable;
  health: HealthChecks;
  events: SimulatorEvents<GeoDnsEvents>;
  random: () => number;
  cache: boolean;
  /** The DNS faults (scheduled, matched per query). */
  faults: DnsFaultSet;
  /** Close a TCP connection after this long without a query (RFC 7766 §6.2.3); 0 = never. */
  tcpIdleTimeout: number;
}

export class DnsServer {
  private readonly cache = new Map<string, CacheEntry>();
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private readonly tracker = new ConnectionTracker();
  private readonly timers = new Set<NodeJS.Timeout>();
  private connSeq = 0;
  port = 0;
  readonly counters: GeoDnsStats = {
    queries: 0,
    byRcode: {},
    truncated: 0,
    tcpQueries: 0,
    dropped: 0,
    malformed: 0,
    cacheHits: 0,
  };

  constructor(private readonly d: ServerDeps) {}

  /** Forgets every cached answer (records, faults, health or locations changed). */
  invalidate(): void {
    this.cache.clear();
  }

  /** Binds UDP (port 0 → a free port), then TCP on the same port; retries when TCP's port is taken. */
  async listen(): Promise<void> {
    if (this.d.bound) {
      const { udp, tcp: handle } = this.d.bound;
      const tcp = createServer({ noDelay: true }, (s) => this.onTcp(s));
      await listenOnHandle(tcp, handle);
      this.serve(udp, tcp);
      return;
    }
    for (let attempt = 0; ; attempt++) {
      const udp = createSocket({ type: this.d.host.includes(':') ? 'udp6' : 'udp4' });
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(this.d.port, this.d.host, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      const port = udp.address().port;
      const tcp = createServer({ noDelay: true }, (s) => this.onTcp(s));
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen({ host: this.d.host, port, exclusive: true }, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        if (errorCode(err) === 'EADDRINUSE' && this.d.port === 0 && attempt < 5) continue;
        throw err;
      }
      this.serve(udp, tcp);
      return;
    }
  }

  private serve(udp: UdpSocket, tcp: Server): void {
    udp.on('message', (msg, rinfo) => this.onUdp(msg, rinfo));
    udp.on('error', () => {}); // ICMP errors from clients that went away; keep serving
    this.udp = udp;
    this.tcp = tcp;
    this.port = udp.address().port;
  }

  /** The address it serves on (the bound socket's when given one). */
  get address(): string {
    return this.udp?.address().address ?? this.d.host;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const udp = this.udp;
    this.udp = undefined;
    if (udp) await new Promise<void>((r) => udp.close(() => r()));
    if (this.tcp) await closeServer(this.tcp, this.tracker);
    this.tcp = undefined;
  }

  private onUdp(msg: Buffer, rinfo: RemoteInfo): void {
    const udp = this.udp;
    if (!udp) return;
    this.handle(msg, rinfo.address, rinfo.port, 'udp', (b) => udp.send(b, rinfo.port, rinfo.address));
  }

  /**
   * `tcp-refused` came or went: the listener closes (the kernel answers SYN with RST: ECONNREFUSED), and
   * listens again on the same port afterwards. A passed handle cannot be re-bound: new connections are
   * reset instead (see onTcp).
   */
  async refuseTcp(on: boolean): Promise<void> {
    if (this.d.bound || !this.udp) return;
    if (on && this.tcp) {
      const old = this.tcp;
      this.tcp = undefined;
      await new Promise<void>((r) => old.close(() => r()));
    } else if (!on && !this.tcp) {
      const tcp = createServer({ noDelay: true }, (s) => this.onTcp(s));
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: this.d.host, port: this.port, exclusive: true }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      this.tcp = tcp;
    }
  }

  private onTcp(sock: Socket): void {
    if (this.d.faults.tcpRefused) {
      sock.resetAndDestroy();
      return;
    }
    this.tracker.track(sock);
    const id = `tcp-${++this.connSeq}`;
    const remote = hostPort(sock.remoteAddress ?? '?', sock.remotePort ?? 0);
    const opened = performance.now();
    this.d.events.emitEvent('connection', { id, remote });
    let pending: Buffer = Buffer.alloc(0);
    let bytesIn = 0;
    let bytesOut = 0;
    let held = 0;
    const send: Send = (b) => {
      if (sock.destroyed || sock.writableEnded) return;
      const framed = Buffer.allocUnsafe(2 + b.length);
      framed.writeUInt16BE(b.length, 0);
      b.copy(framed, 2);
      bytesOut += framed.length;
      sock.write(framed);
    };
    send.hold = (d) => {
      held += d;
    };
    // RFC 7766 §6.2.3: a server closes a connection that has been idle; the client reconnects when it
    // has more to ask. Not while an answer is still to come; a client that ignores our FIN is cut off.
    if (this.d.tcpIdleTimeout > 0) {
      sock.setTimeout(this.d.tcpIdleTimeout);
      sock.on('timeout', () => {
        if (held > 0) return;
        if (sock.writableEnded) sock.destroy();
        else sock.end();
      });
    }
    sock.on('data', (chunk: Buffer) => {
      bytesIn += chunk.length;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      // RFC 1035 §4.2.2 / RFC 7766 §6.2.1: several length-prefixed messages per connection.
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const msg = pending.subarray(2, 2 + len);
        pending = pending.subarray(2 + len);
        this.counters.tcpQueries++;
        this.handle(msg, sock.remoteAddress ?? '', sock.remotePort ?? 0, 'tcp', send);
      }
    });
    sock.on('error', () => {});
    sock.once('close', () => {
      this.d.events.emitEvent('closed', { id, bytesIn, bytesOut, durationMs: performance.now() - opened });
    });
  }

  private listening(): boolean {
    return this.d.events.listenerCount('query') > 0 || this.d.events.listenerCount('event') > 0;
  }

  private count(rcode: number): void {
    const name = rcodeName(rcode);
    this.counters.byRcode[name] = (this.counters.byRcode[name] ?? 0) + 1;
  }

  /** One message from either transport. Never throws: a bad packet must not take the server down. */
  handle(msg: Buffer, addr: string, port: number, transport: Transport, send: Send): void {
    this.counters.queries++;
    try {
      let q = decodeQuery(msg);
      let query = msg;
      if (q === 'fallback') {
        const slow = this.slowDecode(msg);
        if (slow) [q, query] = slow;
        else q = 'formerr';
      }
      if (typeof q === 'string') {
        this.malformed(msg, addr, port, transport, q, send);
        return;
      }
      // Only when someone reads `query` events, and on the query itself: a WeakMap entry per query
      // slowed the server down as the map grew between collections (static A qps fell by two thirds
      // over 12 s of dnsperf).
      if (this.listening()) q.arrived = performance.now();
      this.answer(q, query, addr, port, transport, send);
    } catch {
      // A bug or a packet we could not cope with: count it, answer nothing, keep serving.
      this.counters.malformed++;
      this.counters.dropped++;
    }
  }

  private malformed(msg: Buffer, addr: string, port: number, t: Transport, what: string, send: Send): void {
    this.counters.malformed++;
    let action = 'dropped';
    if (what === 'formerr' || what === 'notimp') {
      const rcode = what === 'formerr' ? RCODE.FORMERR : RCODE.NOTIMP;
      send(errorResponse(msg, rcode));
      this.count(rcode);
      action = rcodeName(rcode);
    } else this.counters.dropped++;
    if (this.d.events.listenerCount('malformed') > 0 || this.d.events.listenerCount('event') > 0) {
      this.d.events.emitEvent('malformed', {
        client: hostPort(addr, port),
        transport: t,
        bytes: msg.length,
        action,
      });
    }
  }

  /**
   * The unusual query (extra records, e.g. TSIG or several additionals): dns2's Packet parses it; the
   * question is re-encoded so the rest of the pipeline is the same.
   */
  private slowDecode(msg: Buffer): [Query, Buffer] | undefined {
    const valid = validateMessage(msg);
    if (!valid) return undefined;
    let p: InstanceType<typeof dns2.Packet>;
    try {
      p = dns2.Packet.parse(msg);
    } catch {
      return undefined;
    }
    const q = p.questions[0];
    if (p.questions.length !== 1 || !q || typeof q.name !== 'string') return undefined;
    const labels = q.name.replace(/\.$/, '').split('.').filter(Boolean);
    const parts: Buffer[] = [msg.subarray(0, 12)];
    for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, 'latin1'));
    const tail = Buffer.alloc(5);
    tail.writeUInt16BE(q.type, 1);
    tail.writeUInt16BE(q.class, 3);
    parts.push(tail);
    const synthetic = Buffer.concat(parts);
    const query: Query = {
      id: msg.readUInt16BE(0),
      flags: msg.readUInt16BE(2),
      qname: labels.join('.').toLowerCase(),
      qtype: q.type,
      qclass: q.class,
      qEnd: synthetic.length,
    };
    // The OPT from the raw bytes: dns2 drops it when an IPv6 ECS address has an odd byte count.
    if (valid.opt) {
      const o = parseOptOptions(msg, valid.opt.start, valid.opt.end);
      if (o === 'formerr') return undefined;
      query.opt = { udpSize: valid.opt.udpSize, version: 0, ...(o.ecs ? { ecs: o.ecs } : {}) };
    }
    return [query, synthetic];
  }

  private faultFor(
    q: Query,
    addr: string,
    port: number,
    t: Transport,
    ecs: Ecs | undefined,
  ): Fault | undefined {
    const set = this.d.faults;
    if (!set.anyActive) return undefined;
    let client: Uint8Array | undefined;
    const specs = set.match({
      qname: q.qname,
      qtype: typeName(q.qtype),
      inCidr: (c) => {
        const cidr = parseCidr(c);
        client ??= ecs ? ecsAddress(ecs) : ipBytes(addr);
        return cidr !== undefined && client !== undefined && inCidr(client, cidr);
      },
    });
    // truncate acts on UDP only: over TCP the whole answer is the point of the retry.
    const acting = t === 'tcp' ? specs.filter((x) => x.type !== 'truncate') : specs;
    if (acting.length === 0) return undefined;
    const who = hostPort(addr, port);
    for (const x of acting) set.applied(x, `${q.qname} ${typeName(q.qtype)}`, who, t);
    return effect(acting, this.d.random);
  }

  private locate(addr: string, ecs: Ecs | undefined): ClientLocation {
    const table = this.d.locations();
    // RFC 7871 §7.1.2: SOURCE PREFIX-LENGTH 0 means "do not use my subnet": fall back to the source.
    return ecs && ecs.sourcePrefix > 0 ? table.lookupBytes(ecsAddress(ecs)) : table.lookup(addr);
  }

  /**
   * RFC 7871 §7.2.1: SCOPE PREFIX-LENGTH covers the addresses the answer is good for: the matched row's
   * prefix, but never wider than a more specific row inside the client's subnet (a /25 holding a /32
   * located elsewhere is answered with scope 32).
   */
  private scope(ecs: Ecs, loc: ClientLocation): number {
    if (ecs.sourcePrefix === 0) return 0; // §7.1.2: the source address located it, not the subnet
    const base = loc.prefix ?? ecs.sourcePrefix;
    const inner = this.d.locations().innerPrefix(ecsAddress(ecs), ecs.sourcePrefix);
    return inner !== undefined && inner > base ? inner : base;
  }

  private answer(q: Query, msg: Buffer, addr: string, port: number, t: Transport, send: Send): void {
    const ecs = q.opt?.ecs;
    const maxSize = t === 'tcp' ? 65535 : q.opt ? Math.max(512, q.opt.udpSize) : 512;
    // RFC 6891 §6.1.3: we speak EDNS version 0 only.
    if (q.opt && q.opt.version > 0) {
      this.sendWith(
        q,
        msg,
        t,
        send,
        encodeOpt(undefined, 0, RCODE.BADVERS >> 4),
        maxSize,
        {
          body: encodeResponse(msg.subarray(12, q.qEnd), q.qname, {
            rcode: 0,
            aa: false,
            answers: [],
            authority: [],
          }),
          res: this.plain('REFUSED', `EDNS version ${q.opt.version} not supported`),
          rcode: RCODE.BADVERS,
        },
        addr,
        port,
        ecs,
        undefined,
      );
      return;
    }
    const loc = this.locate(addr, ecs);
    const fault = this.faultFor(q, addr, port, t, ecs);
    let entry: CacheEntry | undefined;
    const key = `${q.qname}\0${q.qtype}\0${q.qclass}\0${loc.key}`;
    if (!fault && this.d.cache) {
      entry = this.cache.get(key);
      if (entry) this.counters.cacheHits++;
    }
    if (!entry) {
      entry = this.compute(q, msg, loc, fault);
      if (!fault && this.d.cache && entry.res.cacheable) {
        if (this.cache.size > 50_000) this.cache.clear();
        this.cache.set(key, entry);
      }
    }
    if (fault?.drop) {
      this.counters.dropped++;
      this.emitQuery(q, addr, port, t, ecs, loc, 'NONE', entry.res, false, `fault ${fault.text}`);
      return;
    }
    const scope = entry.res.locationDependent && ecs ? this.scope(ecs, loc) : 0;
    const opt = q.opt ? (ecs ? encodeOpt(ecs, scope) : NO_ECS_OPT) : undefined;
    const size = fault?.truncate ? 0 : maxSize; // RFC 2181 §9: TC, header and question only
    if (fault?.delay) {
      send.hold?.(1);
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        send.hold?.(-1);
        this.sendWith(q, msg, t, send, opt, size, entry, addr, port, ecs, loc);
      }, fault.delay);
      this.timers.add(timer);
      return;
    }
    this.sendWith(q, msg, t, send, opt, size, entry, addr, port, ecs, loc);
  }

  private plain(rcode: Resolution['rcode'], reason: string): Resolution {
    return { rcode, answers: [], authority: [], reason, cacheable: true, locationDependent: false };
  }

  private sendWith(
    q: Query,
    msg: Buffer,
    t: Transport,
    send: Send,
    opt: Buffer | undefined,
    maxSize: number,
    entry: CacheEntry,
    addr: string,
    port: number,
    ecs: Ecs | undefined,
    loc: ClientLocation | undefined,
  ): void {
    const { buf, truncated } = finishResponse(entry.body, msg, q, opt, maxSize);
    send(buf);
    if (truncated) this.counters.truncated++;
    this.count(entry.rcode);
    this.emitQuery(q, addr, port, t, ecs, loc, rcodeName(entry.rcode), entry.res, truncated);
  }

  /** Resolves (with the fault's changes) and encodes the cacheable body. */
  private compute(q: Query, msg: Buffer, loc: ClientLocation, fault: Fault | undefined): CacheEntry {
    const question = msg.subarray(12, q.qEnd);
    const encode = (res: Resolution, rcode: number, aa: boolean): CacheEntry => ({
      body: encodeResponse(question, q.qname, { rcode, aa, answers: res.answers, authority: res.authority }),
      res,
      rcode,
    });
    if (q.qclass !== 1)
      return encode(this.plain('REFUSED', `class ${q.qclass} is not IN`), RCODE.REFUSED, false);
    if (fault?.rcode === 'servfail')
      return encode(this.plain('REFUSED', 'fault servfail'), RCODE.SERVFAIL, false);
    if (fault?.rcode === 'refused')
      return encode(this.plain('REFUSED', 'fault refused'), RCODE.REFUSED, false);
    if (fault?.rcode === 'nxdomain') {
      const z = this.d.zones.zoneOf(q.qname);
      const authority: Rr[] = z ? [{ name: z.origin, type: 'SOA', ttl: z.negTtl, data: z.soa }] : [];
      return encode({ ...this.plain('NXDOMAIN', 'fault nxdomain'), authority }, RCODE.NXDOMAIN, true);
    }
    if (fault?.address !== undefined) {
      const wrong = this.wrongAnswer(q, fault.address, fault.ttl ?? 60);
      if (wrong) return encode({ ...wrong, reason: `fault ${fault.text}` }, RCODE.NOERROR, true);
    }
    const res = this.d.zones.resolve(q.qname, q.qtype, {
      location: loc,
      healthy: (r) => this.d.health.healthy(r),
      random: this.d.random,
      ...(fault?.answerFrom !== undefined ? { answerFrom: fault.answerFrom } : {}),
    });
    if (fault?.ttl !== undefined) {
      const ttl = fault.ttl;
      res.answers = res.answers.map((a) => ({ ...a, ttl }));
    }
    if (fault) res.reason = `${res.reason}; fault ${fault.text}`;
    const rcode = RCODE[res.rcode];
    return encode(res, rcode, res.rcode !== 'REFUSED');
  }

  /** `wrong-answer`: an A (IPv4) or AAAA (IPv6) record at the query name, when the query asks for it. */
  private wrongAnswer(q: Query, address: string, ttl: number): Resolution | undefined {
    const type = address.includes(':') ? 'AAAA' : 'A';
    if (typeName(q.qtype) !== type && typeName(q.qtype) !== 'ANY') return undefined;
    return {
      rcode: 'NOERROR',
      answers: [{ name: q.qname, type, ttl, data: address }],
      authority: [],
      reason: '',
      cacheable: false,
      locationDependent: false,
    };
  }

  private emitQuery(
    q: Query,
    addr: string,
    port: number,
    transport: Transport,
    ecs: Ecs | undefined,
    loc: ClientLocation | undefined,
    rcode: string,
    res: Resolution,
    truncated: boolean,
    reason?: string,
  ): void {
    if (!this.listening()) return;
    const arrived = q.arrived;
    this.d.events.emitEvent('query', {
      client: hostPort(addr, port),
      transport,
      name: q.qname,
      type: typeName(q.qtype),
      ...(ecs ? { ecs: ecsText(ecs) } : {}),
      location: loc ? locationText(loc) : 'unknown',
      rcode,
      answers:
        rcode === 'NONE'
          ? []
          : res.answers.map((a) => ({ name: a.name, type: a.type, ttl: a.ttl, data: rdataText(a) })),
      reason: reason ?? res.reason,
      truncated,
      ...(arrived !== undefined ? { ms: performance.now() - arrived } : {}),
    });
  }
}
