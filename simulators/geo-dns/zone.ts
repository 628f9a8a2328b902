/**
 * The authoritative data: zones, record sets (name+type) and Route 53 routing policies, and name
 * resolution with CNAME chasing (RFC 1034 §4.3.2) and negative answers (RFC 2308).
 */

import { isIPv4 } from 'node:net';
import type { z } from 'zod';
import { FieldlabError } from '../common/index.js';
import { bestGeo, type GeoMatch, geoText, locationText, parseGeo } from './geo.js';
import type { ClientLocation } from './ip.js';
import {
  type latencyRowSchema,
  type RecordInput,
  type RecordOptions,
  recordSchema,
  type ZoneOptions,
} from './options.js';
import type { Rr, RrTypeName, SoaData, SrvData } from './wire.js';
import { TYPE, TYPE_NAMES } from './wire.js';

type Routing = RecordOptions['routing'];

/** One stored record: a Route 53 record (with its set identifier) holding one or more values. */
export interface StoredRecord {
  id: string;
  owner: string;
  type: Exclude<RrTypeName, 'SOA'>;
  ttl: number;
  values: Array<string | SrvData>;
  routing: Routing;
  location?: GeoMatch;
  region?: string;
  weight: number;
  failover?: 'PRIMARY' | 'SECONDARY';
  healthCheck?: RecordOptions['healthCheck'];
}

export interface Zone {
  origin: string;
  ttl: number;
  soa: SoaData;
  soaTtl: number;
  /** RFC 2308 §5: negative TTL = min(SOA MINIMUM, SOA TTL). */
  negTtl: number;
}

export interface LatencyRow {
  location: GeoMatch;
  regions: Record<string, number>;
}

export interface ResolveContext {
  location: ClientLocation;
  healthy(rec: StoredRecord): boolean;
  random(): number;
  /** Fault: answer the query name with this record (by id or region). */
  answerFrom?: string | undefined;
  /** Internal: ANY is being expanded (the per-type lookups must not expand it again). */
  noAny?: boolean;
}

export interface Resolution {
  rcode: 'NOERROR' | 'NXDOMAIN' | 'REFUSED';
  answers: Rr[];
  authority: Rr[];
  reason: string;
  /** False when a random choice was made (weighted): do not cache. */
  cacheable: boolean;
  /** True when the answer depends on the client's location (ECS scope > 0). */
  locationDependent: boolean;
}

/** Lower case, no trailing dot. */
export function normName(n: string): string {
  const s = n.toLowerCase();
  return s.endsWith('.') ? s.slice(0, -1) : s;
}

/** Owner names: `@` = origin, trailing dot = absolute, else relative to the origin. */
export function ownerName(name: string, origin: string): string {
  if (name === '@') return origin;
  if (name.endsWith('.')) return normName(name);
  return origin === '' ? normName(name) : `${normName(name)}.${origin}`;
}

/** Target names in values: `@` = origin, a single label is relative to the origin, else absolute. */
export function targetName(v: string, origin: string): string {
  if (v === '@') return origin;
  if (!v.endsWith('.') && !v.includes('.') && origin !== '') return `${v.toLowerCase()}.${origin}`;
  return normName(v);
}

function parseSrv(v: string | SrvData, origin: string): SrvData {
  if (typeof v !== 'string') return { ...v, target: targetName(v.target, origin) };
  const m = /^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\s*$/.exec(v);
  if (!m) {
    throw new FieldlabError(
      'E_BAD_RECORD',
      `SRV value ${JSON.stringify(v)} is not "priority weight port target"`,
      {
        hint: 'write it as "10 5 8883 broker.example.com." or {priority, weight, port, target}',
      },
    );
  }
  return {
    priority: Number(m[1]),
    weight: Number(m[2]),
    port: Number(m[3]),
    target: targetName(m[4]!, origin),
  };
}

export class ZoneStore {
  readonly zones: Zone[] = [];
  /** owner → type → records */
  private readonly sets = new Map<string, Map<string, StoredRecord[]>>();
  /** Every owner and its ancestors within its zone (empty non-terminals exist: RFC 8020). */
  private readonly names = new Map<string, number>();
  readonly byId = new Map<string, StoredRecord>();
  latency: LatencyRow[] = [];
  /** The server's own address, for the A records of the default apex name servers. */
  selfAddress: string | undefined;
  private seq = 0;

  addZone(z: ZoneOptions): Zone {
    const origin = normName(z.origin);
    if (this.zones.some((x) => x.origin === origin)) {
      throw new FieldlabError('E_BAD_OPTION', `geo-dns: zone ${origin} is defined twice`, {
        hint: 'merge the two zones',
      });
    }
    const soaTtl = z.soa.ttl ?? z.ttl;
    const zone: Zone = {
      origin,
      ttl: z.ttl,
      soa: {
        mname: targetName(z.soa.mname, origin),
        rname: targetName(z.soa.rname, origin),
        serial: z.soa.serial,
        refresh: z.soa.refresh,
        retry: z.soa.retry,
        expire: z.soa.expire,
        minimum: z.soa.minimum,
      },
      soaTtl,
      negTtl: Math.min(z.soa.minimum, soaTtl),
    };
    this.zones.push(zone);
    this.zones.sort((a, b) => b.origin.length - a.origin.length);
    this.bumpName(origin, origin, 1);
    for (const r of z.records) this.add(r, zone);
    if (!this.sets.get(origin)?.has('NS')) this.addApexNs(zone);
    return zone;
  }

  /**
   * A Route 53 hosted zone always has an NS record set of four name servers at its apex (TTL 172800)
   * beside the SOA. A zone given without one gets four lab names under its own origin, each with an A
   * record of the server's address (`selfAddress`) when that is a unicast IPv4 address.
   */
  private addApexNs(zone: Zone): void {
    const names = [1, 2, 3, 4].map((i) => `ns-${i}.${zone.origin}`);
    this.add({ name: `${zone.origin}.`, type: 'NS', ttl: 172800, value: names.map((n) => `${n}.`) }, zone);
    const self = this.selfAddress;
    if (self === undefined || !isIPv4(self) || self === '0.0.0.0') return;
    for (const n of names) {
      if (!this.sets.get(n)?.has('A')) this.add({ name: `${n}.`, type: 'A', ttl: 172800, value: self }, zone);
    }
  }

  /** The zone serving `name` (longest origin), or undefined. */
  zoneOf(name: string): Zone | undefined {
    for (const z of this.zones) {
      if (name === z.origin || z.origin === '' || name.endsWith(`.${z.origin}`)) return z;
    }
    return undefined;
  }

  private bumpName(owner: string, origin: string, delta: number): void {
    let n = owner;
    for (;;) {
      const c = (this.names.get(n) ?? 0) + delta;
      if (c <= 0) this.names.delete(n);
      else this.names.set(n, c);
      if (n === origin || n === '') break;
      const dot = n.indexOf('.');
      n = dot < 0 ? '' : n.slice(dot + 1);
    }
  }

  /** Adds one record to `zone` (or to the zone serving its absolute name). */
  add(input: RecordInput | RecordOptions, zone?: Zone): StoredRecord {
    const r = recordSchema.parse(input);
    const owner = zone ? ownerName(r.name, zone.origin) : normName(r.name);
    const z = zone ?? this.zoneOf(owner);
    if (!z) {
      throw new FieldlabError('E_BAD_RECORD', `geo-dns: no zone serves ${owner}`, {
        hint: 'add a zone whose origin contains the name, or give the record a zone',
      });
    }
    const values = (Array.isArray(r.value) ? r.value : [r.value]).map((v) => {
      if (r.type === 'SRV') return parseSrv(v, z.origin);
      if (typeof v !== 'string') throw new FieldlabError('E_BAD_RECORD', `${r.type} value must be a string`);
      if (r.type === 'CNAME' || r.type === 'NS') return targetName(v, z.origin);
      return v;
    });
    const rec: StoredRecord = {
      id: r.id ?? `${owner}/${r.type}/${this.seq++}`,
      owner,
      type: r.type,
      ttl: r.ttl ?? z.ttl,
      values,
      routing: r.routing,
      weight: r.weight ?? 1,
      ...(r.location !== undefined ? { location: parseGeo(r.location) } : {}),
      ...(r.region !== undefined ? { region: r.region } : {}),
      ...(r.failover !== undefined ? { failover: r.failover } : {}),
      ...(r.healthCheck !== undefined ? { healthCheck: r.healthCheck } : {}),
    };
    if (r.routing === 'geolocation' && !rec.location) {
      throw new FieldlabError('E_BAD_RECORD', `geo-dns: geolocation record ${rec.id} has no location`, {
        hint: "set location: NA, US, US-WA or '*' (Default)",
      });
    }
    let byType = this.sets.get(owner);
    if (!byType) {
      byType = new Map();
      this.sets.set(owner, byType);
    }
    const list = byType.get(r.type) ?? [];
    byType.set(r.type, [...list, rec]);
    this.byId.set(rec.id, rec);
    this.bumpName(owner, z.origin, 1);
    return rec;
  }

  /** Removes the record set name+type (or every set at name when type is omitted). */
  remove(owner: string, type?: string): void {
    const byType = this.sets.get(owner);
    if (!byType) return;
    const z = this.zoneOf(owner);
    for (const [t, list] of [...byType]) {
      if (type !== undefined && t !== type) continue;
      for (const rec of list) {
        this.byId.delete(rec.id);
        if (z) this.bumpName(owner, z.origin, -1);
      }
      byType.delete(t);
    }
    if (byType.size === 0) this.sets.delete(owner);
  }

  records(): StoredRecord[] {
    return [...this.byId.values()];
  }

  /**
   * QTYPE ANY (RFC 1035 §3.2.3). Route 53's name servers answer it with the record sets at the name
   * (each chosen by its routing policy for this client), not with the RFC 8482 minimal answer: the
   * Route 53 documentation says nothing of RFC 8482, and its servers are commonly seen returning
   * SOA, NS, A, MX... to `dig ANY` at a zone apex. So every type at the name is resolved as if asked
   * for alone (a CNAME is returned, not chased); a name with no data is NODATA or NXDOMAIN as for
   * any other type.
   */
  private resolveAny(qname: string, ctx: ResolveContext): Resolution {
    const zone = this.zoneOf(qname);
    if (!zone) return this.resolve(qname, TYPE.A, ctx); // REFUSED, with its reason
    const types = [...(this.sets.get(qname)?.keys() ?? [])];
    if (qname === zone.origin) types.unshift('SOA');
    const out: Resolution = {
      rcode: 'NOERROR',
      answers: [],
      authority: [],
      reason: '',
      cacheable: true,
      locationDependent: false,
    };
    const reasons: string[] = [];
    // A stale fault's record stands in for its own type only.
    const forced = ctx.answerFrom !== undefined ? this.forced(qname, ctx.answerFrom) : undefined;
    for (const t of types) {
      const c = forced && forced.type !== t ? { ...ctx, answerFrom: undefined } : ctx;
      const r = this.resolve(qname, TYPE[t as keyof typeof TYPE], c);
      out.answers.push(...r.answers);
      out.cacheable &&= r.cacheable;
      out.locationDependent ||= r.locationDependent;
      reasons.push(`${t}: ${r.reason || 'zone apex'}`);
    }
    if (out.answers.length > 0) return { ...out, reason: `ANY: ${reasons.join('; ')}` };
    // No record set: NODATA at an existing name, NXDOMAIN else (the same path as a single type).
    const none = this.resolve(qname, TYPE.ANY, { ...ctx, answerFrom: undefined });
    return { ...none, reason: `ANY: ${none.reason}` };
  }

  /** Resolves a question (RFC 1034 §4.3.2 steps 3a–3c, within the served zones). */
  resolve(qname: string, qtype: number, ctx: ResolveContext): Resolution {
    if (qtype === TYPE.ANY && !ctx.noAny) return this.resolveAny(qname, { ...ctx, noAny: true });
    const answers: Rr[] = [];
    const reasons: string[] = [];
    let cacheable = true;
    let locationDependent = false;
    let name = qname;
    const qtypeName = TYPE_NAMES[qtype] ?? '';
    const done = (rcode: Resolution['rcode'], authority: Rr[] = []): Resolution => ({
      rcode,
      answers,
      authority,
      reason: reasons.join('; '),
      cacheable,
      locationDependent,
    });
    for (let hop = 0; hop < 9; hop++) {
      const zone = this.zoneOf(name);
      if (!zone) {
        if (hop === 0) {
          reasons.push(`${name} is outside every zone`);
          return done('REFUSED');
        }
        reasons.push(`CNAME target ${name} is outside the served zones`);
        return done('NOERROR');
      }
      const soaRr: Rr = { name: zone.origin, type: 'SOA', ttl: zone.negTtl, data: zone.soa };
      const byType = this.sets.get(name);
      if (qtypeName === 'SOA' && name === zone.origin) {
        answers.push({ ...soaRr, ttl: zone.soaTtl });
        return done('NOERROR');
      }
      const forced =
        hop === 0 && ctx.answerFrom !== undefined ? this.forced(name, ctx.answerFrom) : undefined;
      const cname = byType?.get('CNAME');
      if (qtypeName !== 'CNAME' && (forced ? forced.type === 'CNAME' : cname)) {
        let target: StoredRecord | undefined;
        if (forced) {
          target = forced;
          reasons.push(`fault answerFrom ${forced.id}`);
        } else {
          const pick = this.select(cname ?? [], ctx);
          reasons.push(pick.reason);
          cacheable &&= pick.cacheable;
          locationDependent ||= pick.locationDependent;
          target = pick.rec;
        }
        if (!target) return done('NOERROR', [soaRr]);
        const to = String(target.values[0]);
        answers.push({ name, type: 'CNAME', ttl: target.ttl, data: to });
        name = to;
        continue;
      }
      const list = forced ? [forced] : byType?.get(qtypeName);
      if (!list || list.length === 0) {
        if (this.names.has(name)) {
          reasons.push(`${name} has no ${qtypeName || qtype} record`);
          return done('NOERROR', [soaRr]);
        }
        reasons.push(`${name} does not exist`);
        return done('NXDOMAIN', [soaRr]);
      }
      const pick = forced ? { rec: forced, reason: `fault answerFrom ${forced.id}` } : this.select(list, ctx);
      reasons.push(pick.reason);
      if (!forced && 'cacheable' in pick) {
        cacheable &&= pick.cacheable;
        locationDependent ||= pick.locationDependent;
      }
      if (!pick.rec) return done('NOERROR', [soaRr]);
      const recs = pick.rec.routing === 'simple' && !forced ? list : [pick.rec];
      for (const rec of recs) {
        for (const v of rec.values) answers.push(toRr(name, rec, v));
      }
      return done('NOERROR');
    }
    reasons.push('CNAME chain longer than 8');
    return done('NOERROR');
  }

  /** The record a fault's `answerFrom` names: by id, or the record of that region at `name`. */
  private forced(name: string, ref: string): StoredRecord | undefined {
    const byId = this.byId.get(ref);
    if (byId) return byId;
    for (const list of this.sets.get(name)?.values() ?? []) {
      const r = list.find((x) => x.region === ref);
      if (r) return r;
    }
    return undefined;
  }

  /** Applies the set's routing policy (the first record's) and says why. */
  select(
    list: readonly StoredRecord[],
    ctx: ResolveContext,
  ): { rec?: StoredRecord; reason: string; cacheable: boolean; locationDependent: boolean } {
    const first = list[0];
    if (!first) return { reason: 'empty record set', cacheable: true, locationDependent: false };
    const healthy = list.filter((r) => ctx.healthy(r));
    // Route 53: when every record is unhealthy, it answers as if all were healthy.
    const pool = healthy.length > 0 ? healthy : list;
    const loc = locationText(ctx.location);
    switch (first.routing) {
      case 'simple':
        return { rec: first, reason: 'simple', cacheable: true, locationDependent: false };
      case 'geolocation': {
        const rec = bestGeo(pool, (r) => r.location, ctx.location);
        if (!rec) {
          return {
            reason: `no geolocation match for ${loc} and no Default record`,
            cacheable: true,
            locationDependent: true,
          };
        }
        const g = geoText(rec.location ?? {});
        const what = g === '*' ? `Default matched ${rec.id}` : `geolocation ${g} matched ${rec.id}`;
        return { rec, reason: `${what} (client ${loc})`, cacheable: true, locationDependent: true };
      }
      case 'latency': {
        const row = bestGeo(this.latency, (r) => r.location, ctx.location);
        let rec = pool[0];
        let best = Number.POSITIVE_INFINITY;
        for (const r of pool) {
          const ms = row && r.region !== undefined ? row.regions[r.region] : undefined;
          if (ms !== undefined && ms < best) {
            best = ms;
            rec = r;
          }
        }
        const reason = Number.isFinite(best)
          ? `latency: ${rec?.region} lowest (${best}ms) for client ${loc}`
          : `latency: no latency figures for client ${loc}; first record ${rec?.id}`;
        return { ...(rec ? { rec } : {}), reason, cacheable: true, locationDependent: true };
      }
      case 'weighted': {
        const nonzero = pool.filter((r) => r.weight > 0);
        // Route 53: weight 0 is never chosen unless every record has weight 0 (then all equally).
        const cand = nonzero.length > 0 ? nonzero : pool;
        const total = cand.reduce((s, r) => s + (nonzero.length > 0 ? r.weight : 1), 0);
        let x = ctx.random() * total;
        let rec = cand[cand.length - 1];
        for (const r of cand) {
          x -= nonzero.length > 0 ? r.weight : 1;
          if (x < 0) {
            rec = r;
            break;
          }
        }
        return {
          ...(rec ? { rec } : {}),
          reason: `weighted: chose ${rec?.id} (weight ${rec?.weight} of ${total})`,
          cacheable: false,
          locationDependent: false,
        };
      }
      case 'failover': {
        const primary = list.find((r) => r.failover === 'PRIMARY');
        const secondary = list.find((r) => r.failover === 'SECONDARY');
        if (primary && ctx.healthy(primary)) {
          return {
            rec: primary,
            reason: `failover: PRIMARY ${primary.id} healthy`,
            cacheable: true,
            locationDependent: false,
          };
        }
        if (secondary && ctx.healthy(secondary)) {
          return {
            rec: secondary,
            reason: `failover: PRIMARY ${primary?.id ?? '(none)'} unhealthy, SECONDARY ${secondary.id}`,
            cacheable: true,
            locationDependent: false,
          };
        }
        const rec = primary ?? secondary;
        return {
          ...(rec ? { rec } : {}),
          reason: `failover: all unhealthy, answering ${rec?.id}`,
          cacheable: true,
          locationDependent: false,
        };
      }
    }
  }
}

function toRr(name: string, rec: StoredRecord, v: string | SrvData): Rr {
  if (rec.type === 'SRV') return { name, type: 'SRV', ttl: rec.ttl, data: v as SrvData };
  return { name, type: rec.type, ttl: rec.ttl, data: String(v) } as Rr;
}

export function latencyRows(rows: ReadonlyArray<z.output<typeof latencyRowSchema>>): LatencyRow[] {
  return rows.map((r) => ({ location: parseGeo(r.location), regions: r.regions }));
}
