/**
 * A small, fast DNS wire codec for the common case (RFC 1035 §4): one question, optional OPT (RFC 6891)
 * with EDNS Client Subnet (RFC 7871). Anything else is left to dns2's Packet (see server.ts).
 *
 *   query bytes ─► decodeQuery ─► {id, qname, qtype, opt?} ─► resolve ─► encodeResponse ─► + OPT
 */
import { formatIp, ipBytes } from './ip.js';

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, ANY: 255 } as const;
export type RrTypeName = 'A' | 'AAAA' | 'CNAME' | 'TXT' | 'SRV' | 'NS' | 'SOA';
export const TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(TYPE).map(([k, v]) => [v, k]),
);
export function typeName(t: number): string {
  return TYPE_NAMES[t] ?? `TYPE${t}`;
}

/**
 * RCODEs (RFC 1035 §4.1.1, RFC 6895 §2.3; BADVERS is the extended RCODE of RFC 6891 §6.1.3): the one
 * table of the project's DNS servers (geo-dns, resolver) and of the reports.
 */
export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  BADVERS: 16,
} as const;
export const RCODE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(RCODE).map(([k, v]) => [v, k]),
);
/** An RCODE's name (`NXDOMAIN`), or `RCODE<n>` for one the table lacks. */
export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

export interface SrvData {
  priority: number;
  weight: number;
  port: number;
  target: string;
}
export interface SoaData {
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

/** A resource record to encode; names are absolute, lower case, without the trailing dot. */
export type Rr =
  | { name: string; type: 'A' | 'AAAA' | 'CNAME' | 'NS'; ttl: number; data: string }
  | { name: string; type: 'TXT'; ttl: number; data: string }
  | { name: string; type: 'SRV'; ttl: number; data: SrvData }
  | { name: string; type: 'SOA'; ttl: number; data: SoaData };

/** EDNS Client Subnet as received (RFC 7871 §6). */
export interface Ecs {
  family: number;
  sourcePrefix: number;
  scopePrefix: number;
  /** ADDRESS as sent (only the significant bytes). */
  address: Uint8Array;
}

export interface OptInfo {
  udpSize: number;
  version: number;
  ecs?: Ecs;
}

export interface Query {
  id: number;
  /** Header flags word of the query (opcode, RD...). */
  flags: number;
  /** Lower-case name without the trailing dot (`` for the root). */
  qname: string;
  qtype: number;
  qclass: number;
  /** Offset just past the question in the query: bytes 12..qEnd are echoed. */
  qEnd: number;
  opt?: OptInfo;
  /** When the query arrived (performance.now()), set only while `query` events are read. */
  arrived?: number;
}

/** Why a query was not decoded: drop it, answer FORMERR / NOTIMP, or let the slow path try. */
export type DecodeFailure = 'drop' | 'formerr' | 'notimp' | 'fallback';

/** Reads a name that must not use compression (a question name). Returns [name, end] or undefined. */
function readQname(msg: Buffer, start: number): [string, number] | undefined {
  let off = start;
  let upper = false;
  // First pass: bounds and label checks; one string is built at the end (the hot path).
  for (;;) {
    if (off >= msg.length) return undefined;
    const len = msg[off]!;
    if (len === 0) break;
    if (len > 63) return undefined; // compression or extended label in a question: slow path
    if (off + 1 + len > msg.length) return undefined;
    for (let i = off + 1; i <= off + len; i++) {
      const c = msg[i]!;
      if (c === 0x2e) return undefined; // a dot inside a label: not representable as text here
      if (c >= 0x41 && c <= 0x5a) upper = true;
    }
    off += 1 + len;
    if (off - start > 255) return undefined; // RFC 1035 §3.1: names are at most 255 octets
  }
  if (off === start) return ['', off + 1];
  const chars = msg.toString('latin1', start + 1, off);
  // Replace the inner length octets with dots.
  let name = '';
  let last = 0;
  let p = start + 1 + msg[start]!;
  while (p < off) {
    name += `${chars.slice(last, p - start - 1)}.`;
    last = p - start;
    p += 1 + msg[p]!;
  }
  name += chars.slice(last);
  return [upper ? name.toLowerCase() : name, off + 1];
}

/** Parses an OPT RR's RDATA options; returns 'formerr' on a malformed ECS option (RFC 7871 §7.1.2). */
export function parseOptOptions(msg: Buffer, off: number, end: number): { ecs?: Ecs } | 'formerr' {
  const out: { ecs?: Ecs } = {};
  while (off + 4 <= end) {
    const code = msg.readUInt16BE(off);
    const len = msg.readUInt16BE(off + 2);
    off += 4;
    if (off + len > end) return 'formerr';
    if (code === 8) {
      // RFC 7871 §7.2.1: a query with a wrongly formatted option gets FORMERR; two ECS options in one
      // query is one (a resolver could not know which subnet the answer was for).
      if (len < 4 || out.ecs) return 'formerr';
      const family = msg.readUInt16BE(off);
      const sourcePrefix = msg[off + 2]!;
      const scopePrefix = msg[off + 3]!;
      const address = Uint8Array.from(msg.subarray(off + 4, off + len));
      const maxBits = family === 1 ? 32 : family === 2 ? 128 : -1;
      // RFC 7871 §6: ADDRESS has exactly ceil(SOURCE PREFIX-LENGTH / 8) bytes; §7.1.2: SCOPE must be 0.
      if (maxBits < 0 || sourcePrefix > maxBits || address.length !== Math.ceil(sourcePrefix / 8)) {
        return 'formerr';
      }
      if (scopePrefix !== 0) return 'formerr';
      // RFC 7871 §6: ADDRESS is truncated to SOURCE PREFIX-LENGTH bits, the rest of the last octet 0.
      const spare = address.length * 8 - sourcePrefix;
      if (spare > 0 && (address[address.length - 1]! & ((1 << spare) - 1)) !== 0) return 'formerr';
      out.ecs = { family, sourcePrefix, scopePrefix, address };
    }
    off += len;
  }
  return off === end ? out : 'formerr';
}

/**
 * Decodes the common query: QR=0, one question, no answer/authority records, at most one additional
 * record which is an OPT. Parses ECS from the raw bytes (dns2 3.0/3.1 loses the whole OPT when an IPv6
 * ADDRESS has an odd byte count, e.g. a /56).
 */
export function decodeQuery(msg: Buffer): Query | DecodeFailure {
  if (msg.length < 12) return 'drop';
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) return 'drop'; // a response: never answer it (RFC 1035 §4.1.1; avoids loops)
  const id = msg.readUInt16BE(0);
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  const ns = msg.readUInt16BE(8);
  const ar = msg.readUInt16BE(10);
  if ((flags >> 11) & 0xf) return 'notimp'; // only QUERY (opcode 0)
  if (qd !== 1) return 'formerr';
  if (an !== 0 || ns !== 0 || ar > 1) return 'fallback';
  const q = readQname(msg, 12);
  if (!q) return 'formerr';
  const [qname, p] = q;
  if (p + 4 > msg.length) return 'formerr';
  const qtype = msg.readUInt16BE(p);
  const qclass = msg.readUInt16BE(p + 2);
  const qEnd = p + 4;
  const query: Query = { id, flags, qname, qtype, qclass, qEnd };
  if (ar === 0) return qEnd === msg.length ? query : 'formerr';
  // The additional record: must be OPT with the root name.
  if (qEnd + 11 > msg.length || msg[qEnd] !== 0) return 'fallback';
  const type = msg.readUInt16BE(qEnd + 1);
  if (type !== TYPE.OPT) return 'fallback';
  const udpSize = msg.readUInt16BE(qEnd + 3);
  const version = msg[qEnd + 6]!;
  const rdlen = msg.readUInt16BE(qEnd + 9);
  const rdEnd = qEnd + 11 + rdlen;
  if (rdEnd !== msg.length) return 'formerr';
  const opts = parseOptOptions(msg, qEnd + 11, rdEnd);
  if (opts === 'formerr') return 'formerr';
  query.opt = { udpSize, version, ...(opts.ecs ? { ecs: opts.ecs } : {}) };
  return query;
}

/**
 * Checks a (possibly compressed) name at `start`, following its pointers; returns the offset just past
 * the name where it is written, or undefined when it is malformed: past the end of the message, a label
 * length with the reserved 01/10 bits, over 255 octets (RFC 1035 §2.3.4), or a pointer that does not
 * point strictly before the labels being read (RFC 1035 §4.1.4: "a prior occurrence"; BIND's rule). Each
 * hop then lands strictly lower, so no chain of pointers can loop. The header holds no names.
 */
function nameEnd(msg: Buffer, start: number): number | undefined {
  let off = start;
  let runStart = start; // where the labels being read began: the name, or the last pointer's target
  let end: number | undefined; // set at the first pointer
  let octets = 1; // the root label
  for (;;) {
    if (off >= msg.length) return undefined;
    const len = msg[off]!;
    if (len === 0) return end ?? off + 1;
    if ((len & 0xc0) === 0xc0) {
      if (off + 2 > msg.length) return undefined;
      const ptr = ((len & 0x3f) << 8) | msg[off + 1]!;
      if (ptr < 12 || ptr >= runStart) return undefined;
      end ??= off + 2;
      off = runStart = ptr;
      continue;
    }
    if (len > 63) return undefined; // 0x40/0x80: extended label types (RFC 6891 §5: not to be used)
    octets += 1 + len;
    if (octets > 255) return undefined;
    off += 1 + len;
  }
}

type RdataPart = 'name' | number;
/**
 * RDATA that holds domain names or has a fixed size (RFC 1035 §3.3, RFC 3596, RFC 2782, RFC 6672; names
 * in RP, AFSDB, RT and PX per RFC 3597 §4): each name must parse and the parts must fill RDLENGTH exactly.
 * Other types are opaque.
 */
const RDATA_LAYOUTS: Record<number, readonly RdataPart[]> = {
  1: [4], // A
  2: ['name'], // NS
  3: ['name'], // MD
  4: ['name'], // MF
  5: ['name'], // CNAME
  6: ['name', 'name', 20], // SOA
  7: ['name'], // MB
  8: ['name'], // MG
  9: ['name'], // MR
  12: ['name'], // PTR
  14: ['name', 'name'], // MINFO
  15: [2, 'name'], // MX
  17: ['name', 'name'], // RP
  18: [2, 'name'], // AFSDB
  21: [2, 'name'], // RT
  26: [2, 'name', 'name'], // PX
  28: [16], // AAAA
  33: [6, 'name'], // SRV
  39: ['name'], // DNAME
};

/** Whether the RDATA in [start, end) is well-formed for its type (known layouts and TXT; others opaque). */
function rdataValid(msg: Buffer, type: number, start: number, end: number): boolean {
  // An empty RDATA is how a query or an UPDATE says "any record of this type" (RFC 2136 §2.4.1).
  if (start === end) return true;
  if (type === TYPE.TXT) {
    // RFC 1035 §3.3.14: one or more <character-string>s, exactly filling RDLENGTH
    let off = start;
    while (off < end) off += 1 + msg[off]!;
    return off === end;
  }
  const layout = RDATA_LAYOUTS[type];
  if (!layout) return true;
  let off = start;
  for (const part of layout) {
    const next = part === 'name' ? nameEnd(msg, off) : off + part;
    if (next === undefined || next > end) return false;
    off = next;
  }
  return off === end;
}

const TSIG = 250;

/**
 * Checks that a whole message is well-formed (RFC 1035 §4.1): every name (pointers followed), every
 * record and the RDATA of known types parse, the sections end exactly at the end of the message, OPT
 * appears at most once, in the additional section, owned by the root (RFC 6891 §6.1.1), TSIG only as
 * the last record (RFC 8945 §5.1); at most 32 records. dns2's Packet.parse only ever sees bytes that
 * passed. Returns the OPT RR's RDATA range when there is one.
 */
export function validateMessage(
  msg: Buffer,
): { opt?: { start: number; end: number; udpSize: number } } | undefined {
  if (msg.length < 12 || msg.length > 65535) return undefined;
  const qd = msg.readUInt16BE(4);
  const an = msg.readUInt16BE(6);
  const ns = msg.readUInt16BE(8);
  const rr = an + ns + msg.readUInt16BE(10);
  if (qd > 1 || rr > 32) return undefined;
  let off = 12;
  for (let i = 0; i < qd; i++) {
    const e = nameEnd(msg, off);
    if (e === undefined || e + 4 > msg.length) return undefined;
    off = e + 4;
  }
  let opt: { start: number; end: number; udpSize: number } | undefined;
  for (let i = 0; i < rr; i++) {
    const owner = off;
    const e = nameEnd(msg, off);
    if (e === undefined || e + 10 > msg.length) return undefined;
    const type = msg.readUInt16BE(e);
    const rdlen = msg.readUInt16BE(e + 8);
    const end = e + 10 + rdlen;
    if (end > msg.length || !rdataValid(msg, type, e + 10, end)) return undefined;
    if (type === TYPE.OPT) {
      // RFC 6891 §6.1.1: one OPT, in the additional section; §6.1.2: its NAME is the root
      if (opt || i < an + ns || msg[owner] !== 0) return undefined;
      opt = { start: e + 10, end, udpSize: msg.readUInt16BE(e + 2) };
    }
    if (type === TSIG && i !== rr - 1) return undefined; // RFC 8945 §5.1: TSIG is the last record
    off = end;
  }
  if (off !== msg.length) return undefined;
  return opt ? { opt } : {};
}

/** The client subnet as `addr/prefix` text, for events. */
export function ecsText(ecs: Ecs): string {
  const full = new Uint8Array(ecs.family === 1 ? 4 : 16);
  full.set(ecs.address.subarray(0, full.length));
  return `${formatIp(full)}/${ecs.sourcePrefix}`;
}

/** The full-length address of an ECS option (zero-padded), for the location lookup. */
export function ecsAddress(ecs: Ecs): Uint8Array {
  const full = new Uint8Array(ecs.family === 1 ? 4 : 16);
  full.set(ecs.address.subarray(0, full.length));
  return full;
}

/** A growable writer with RFC 1035 §4.1.4 name compression. */
class Writer {
  buf = Buffer.allocUnsafe(512);
  len = 0;
  private readonly names = new Map<string, number>();

  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.len++] = v & 0xff;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v & 0xffff, this.len);
    this.len += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.len);
    this.len += 4;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  /** Registers the suffixes of a name written uncompressed at `off` (the question). */
  remember(name: string, off: number): void {
    let o = off;
    let rest = name;
    while (rest !== '') {
      if (!this.names.has(rest) && o < 0x4000) this.names.set(rest, o);
      const dot = rest.indexOf('.');
      const label = dot < 0 ? rest : rest.slice(0, dot);
      o += 1 + Buffer.byteLength(label, 'latin1');
      rest = dot < 0 ? '' : rest.slice(dot + 1);
    }
  }
  name(name: string, compress = true): void {
    let rest = name.toLowerCase();
    while (rest !== '') {
      const ptr = compress ? this.names.get(rest) : undefined;
      if (ptr !== undefined) {
        this.u16(0xc000 | ptr);
        return;
      }
      if (compress && this.len < 0x4000) this.names.set(rest, this.len);
      const dot = rest.indexOf('.');
      const label = dot < 0 ? rest : rest.slice(0, dot);
      const b = Buffer.from(label, 'latin1');
      this.u8(b.length);
      this.bytes(b);
      rest = dot < 0 ? '' : rest.slice(dot + 1);
    }
    this.u8(0);
  }
  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.len));
  }
}

function writeRdata(w: Writer, rr: Rr): void {
  const lenAt = w.len;
  w.u16(0);
  switch (rr.type) {
    case 'A':
    case 'AAAA':
      w.bytes(ipBytes(rr.data) ?? new Uint8Array(rr.type === 'A' ? 4 : 16));
      break;
    case 'CNAME':
    case 'NS':
      w.name(rr.data);
      break;
    case 'TXT': {
      // RFC 1035 §3.3.14: character-strings of at most 255 bytes each.
      const b = Buffer.from(rr.data, 'utf8');
      if (b.length === 0) w.u8(0);
      for (let i = 0; i < b.length; i += 255) {
        const part = b.subarray(i, i + 255);
        w.u8(part.length);
        w.bytes(part);
      }
      break;
    }
    case 'SRV':
      w.u16(rr.data.priority);
      w.u16(rr.data.weight);
      w.u16(rr.data.port);
      w.name(rr.data.target, false); // RFC 2782: the target is not compressed
      break;
    case 'SOA':
      w.name(rr.data.mname);
      w.name(rr.data.rname);
      w.u32(rr.data.serial);
      w.u32(rr.data.refresh);
      w.u32(rr.data.retry);
      w.u32(rr.data.expire);
      w.u32(rr.data.minimum);
      break;
  }
  w.buf.writeUInt16BE(w.len - lenAt - 2, lenAt);
}

export interface ResponseParts {
  rcode: number;
  aa: boolean;
  answers: readonly Rr[];
  authority: readonly Rr[];
}

/**
 * Encodes a response without ID-specific or OPT parts: header (ID 0, ARCOUNT 0), the question copied from
 * the query, answers and authority. The result is cacheable; `finishResponse` patches it per query.
 */
export function encodeResponse(question: Buffer, qname: string, parts: ResponseParts): Buffer {
  const w = new Writer();
  w.u16(0);
  w.u16(0x8000 | (parts.aa ? 0x0400 : 0) | (parts.rcode & 0xf));
  w.u16(1);
  w.u16(parts.answers.length);
  w.u16(parts.authority.length);
  w.u16(0);
  w.bytes(question);
  w.remember(qname, 12);
  for (const rr of [...parts.answers, ...parts.authority]) {
    w.name(rr.name);
    w.u16(TYPE[rr.type]);
    w.u16(1);
    w.u32(rr.ttl);
    writeRdata(w, rr);
  }
  return w.result();
}

/** Bytes of an OPT RR (RFC 6891 §6.1.2) echoing ECS with our scope (RFC 7871 §7.2.1). */
export function encodeOpt(ecs: Ecs | undefined, scope: number, extRcode = 0): Buffer {
  const optLen = ecs ? 8 + ecs.address.length : 0;
  const b = Buffer.alloc(11 + optLen);
  b.writeUInt16BE(TYPE.OPT, 1);
  b.writeUInt16BE(1232, 3); // our UDP payload size
  b[5] = extRcode;
  b.writeUInt16BE(optLen, 9);
  if (ecs) {
    b.writeUInt16BE(8, 11);
    b.writeUInt16BE(4 + ecs.address.length, 13);
    b.writeUInt16BE(ecs.family, 15);
    b[17] = ecs.sourcePrefix;
    b[18] = Math.min(scope, ecs.family === 1 ? 32 : 128);
    b.set(ecs.address, 19);
  }
  return b;
}

/**
 * A sendable response from a cached body: copies it, patches ID, RD/opcode from the query, the question
 * bytes (keeps the client's letter case, e.g. DNS 0x20), adds the OPT, and truncates to `maxSize`
 * (RFC 2181 §9: TC set, only the header and question kept) when the answer does not fit.
 */
export function finishResponse(
  body: Buffer,
  query: Buffer,
  q: { id: number; flags: number; qEnd: number },
  opt: Buffer | undefined,
  maxSize: number,
): { buf: Buffer; truncated: boolean } {
  const total = body.length + (opt ? opt.length : 0);
  const truncated = total > maxSize;
  const bodyLen = truncated ? q.qEnd : body.length;
  const out = Buffer.allocUnsafe(bodyLen + (opt ? opt.length : 0));
  body.copy(out, 0, 0, bodyLen);
  out.writeUInt16BE(q.id, 0);
  let flags = body.readUInt16BE(2) | (q.flags & 0x7900); // opcode + RD from the query
  if (truncated) flags |= 0x0200;
  out.writeUInt16BE(flags, 2);
  query.copy(out, 12, 12, q.qEnd);
  if (truncated) out.fill(0, 6, 10);
  out.writeUInt16BE(opt ? 1 : 0, 10);
  if (opt) opt.copy(out, bodyLen);
  return { buf: out, truncated };
}

/** A minimal error response (FORMERR, NOTIMP...): header and, when known, the question. */
export function errorResponse(msg: Buffer, rcode: number, qEnd?: number): Buffer {
  const hasQ = qEnd !== undefined && qEnd <= msg.length;
  const out = Buffer.alloc(12 + (hasQ ? qEnd - 12 : 0));
  out.writeUInt16BE(msg.length >= 2 ? msg.readUInt16BE(0) : 0, 0);
  const qflags = msg.length >= 4 ? msg.readUInt16BE(2) : 0;
  out.writeUInt16BE(0x8000 | (qflags & 0x7900) | (rcode & 0xf), 2);
  if (hasQ) {
    out.writeUInt16BE(1, 4);
    msg.copy(out, 12, 12, qEnd);
  }
  return out;
}

/** Text form of an RR's data, for events. */
export function rdataText(rr: Rr): string {
  switch (rr.type) {
    case 'SRV':
      return `${rr.data.priority} ${rr.data.weight} ${rr.data.port} ${rr.data.target}.`;
    case 'SOA':
      return [
        `${rr.data.mname}.`,
        `${rr.data.rname}.`,
        rr.data.serial,
        rr.data.refresh,
        rr.data.retry,
        rr.data.expire,
        rr.data.minimum,
      ].join(' ');
    case 'CNAME':
    case 'NS':
      return `${rr.data}.`;
    default:
      return rr.data;
  }
}
