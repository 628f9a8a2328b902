/**
 * A small, bounds-checked reader for the first flight of a TLS client: the ClientHello, possibly split
 * over several handshake records. It reads only what an intercepting proxy needs (SNI, ALPN, versions)
 * and never throws: malformed input is reported as `invalid`, short input as `need-more`.
 *
 *   record(s) ──► handshake bytes ──► ClientHello ──► extensions ──► server_name, ALPN, versions
 */

/** What a proxy learns from a ClientHello. */
export interface ClientHelloInfo {
  /** The host_name from server_name (RFC 6066 §3), lower-cased; absent when the client sent none. */
  sni?: string;
  /** The ALPN ProtocolNameList in the client's order (RFC 7301 §3.1); absent when not offered. */
  alpn?: string[];
  /** ClientHello.legacy_version (0x0303 for TLS 1.2 and 1.3). */
  legacyVersion: number;
  /** supported_versions (RFC 8446 §4.2.1), when offered. */
  supportedVersions?: number[];
  /** Bytes of the record layer the ClientHello took (all records up to its last byte). */
  recordBytes: number;
}

export type ClientHelloScan =
  | { status: 'ok'; hello: ClientHelloInfo }
  | { status: 'need-more' }
  | { status: 'invalid'; reason: string };

// RFC 8446 §5.1: record content types and the plaintext fragment bound.
const CONTENT_HANDSHAKE = 22;
const MAX_FRAGMENT = 1 << 14;
// RFC 8446 §4: handshake type client_hello.
const HANDSHAKE_CLIENT_HELLO = 1;
// A ClientHello larger than this is not one a real client sends (post-quantum key shares are ~1.2 KB).
const MAX_CLIENT_HELLO = 64 * 1024;

const EXT_SERVER_NAME = 0; // RFC 6066 §3
const EXT_ALPN = 16; // RFC 7301 §3.1
const EXT_SUPPORTED_VERSIONS = 43; // RFC 8446 §4.2.1

/** Reads the ClientHello from the start of `buf`. Undefined when incomplete or malformed. */
export function parseClientHello(buf: Uint8Array): ClientHelloInfo | undefined {
  const scan = scanClientHello(buf);
  return scan.status === 'ok' ? scan.hello : undefined;
}

/**
 * Scans `buf` (bytes the client sent first) for a complete ClientHello: `need-more` while the records
 * are merely short, `invalid` as soon as anything contradicts the format.
 */
export function scanClientHello(buf: Uint8Array): ClientHelloScan {
  // Reassemble the handshake message from as many records as it spans (RFC 8446 §5.1: a handshake
  // message may be fragmented over several records of the same content type).
  const parts: Uint8Array[] = [];
  let have = 0;
  let off = 0;
  let needed: number | undefined;
  while (needed === undefined || have < needed) {
    if (buf.length - off < 5) return { status: 'need-more' };
    const type = buf[off]!;
    const major = buf[off + 1]!;
    const len = (buf[off + 3]! << 8) | buf[off + 4]!;
    // RFC 8446 §5.1: the first flight is a handshake record; legacy_record_version is 0x0301 or 0x0303
    // (any 0x03xx is accepted, as servers do).
    if (type !== CONTENT_HANDSHAKE)
      return { status: 'invalid', reason: `record type ${type}, not handshake` };
    if (major !== 3) return { status: 'invalid', reason: `record version major ${major}` };
    // RFC 8446 §5.1: zero-length handshake fragments are not allowed; length MUST NOT exceed 2^14.
    if (len === 0 || len > MAX_FRAGMENT) return { status: 'invalid', reason: `record length ${len}` };
    if (buf.length - off - 5 < len) return { status: 'need-more' };
    parts.push(buf.subarray(off + 5, off + 5 + len));
    have += len;
    off += 5 + len;
    if (needed === undefined && have >= 4) {
      const hs = concat(parts, 4);
      if (hs[0] !== HANDSHAKE_CLIENT_HELLO) return { status: 'invalid', reason: `handshake type ${hs[0]}` };
      const bodyLen = (hs[1]! << 16) | (hs[2]! << 8) | hs[3]!;
      if (bodyLen > MAX_CLIENT_HELLO) return { status: 'invalid', reason: `ClientHello length ${bodyLen}` };
      needed = 4 + bodyLen;
    }
  }
  const hs = concat(parts, needed);
  const hello = parseBody(new Reader(hs.subarray(4)));
  if (typeof hello === 'string') return { status: 'invalid', reason: hello };
  return { status: 'ok', hello: { ...hello, recordBytes: off } };
}

function concat(parts: Uint8Array[], upTo: number): Uint8Array {
  if (parts.length === 1 && parts[0]!.length >= upTo) return parts[0]!.subarray(0, upTo);
  const out = new Uint8Array(upTo);
  let at = 0;
  for (const p of parts) {
    if (at >= upTo) break;
    const take = Math.min(p.length, upTo - at);
    out.set(p.subarray(0, take), at);
    at += take;
  }
  return out;
}

/** A cursor over a byte range; every read is bounds-checked and returns undefined past the end. */
class Reader {
  private pos = 0;
  constructor(private readonly b: Uint8Array) {}

  get remaining(): number {
    return this.b.length - this.pos;
  }

  u8(): number | undefined {
    if (this.remaining < 1) return undefined;
    return this.b[this.pos++];
  }

  u16(): number | undefined {
    if (this.remaining < 2) return undefined;
    const v = (this.b[this.pos]! << 8) | this.b[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  bytes(n: number): Uint8Array | undefined {
    if (n < 0 || this.remaining < n) return undefined;
    const v = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** A length-prefixed vector (prefix of 1 or 2 bytes) as its own Reader. */
  vector(prefix: 1 | 2): Reader | undefined {
    const n = prefix === 1 ? this.u8() : this.u16();
    if (n === undefined) return undefined;
    const v = this.bytes(n);
    return v === undefined ? undefined : new Reader(v);
  }
}

type Body = Omit<ClientHelloInfo, 'recordBytes'>;

/** RFC 8446 §4.1.2 ClientHello (also the TLS 1.2 form, RFC 5246 §7.4.1.2). Returns a reason on error. */
function parseBody(r: Reader): Body | string {
  const legacyVersion = r.u16();
  if (legacyVersion === undefined || r.bytes(32) === undefined) return 'truncated version/random';
  const sessionId = r.vector(1); // legacy_session_id<0..32>
  if (sessionId === undefined || sessionId.remaining > 32) return 'bad legacy_session_id';
  const suites = r.vector(2); // cipher_suites<2..2^16-2>
  if (suites === undefined || suites.remaining < 2 || suites.remaining % 2 !== 0) return 'bad cipher_suites';
  const compression = r.vector(1); // legacy_compression_methods<1..2^8-1>
  if (compression === undefined || compression.remaining < 1) return 'bad legacy_compression_methods';
  const body: Body = { legacyVersion };
  // RFC 5246 §7.4.1.2: extensions may be absent entirely (a TLS 1.2-era client with none).
  if (r.remaining === 0) return body;
  const exts = r.vector(2);
  if (exts === undefined || r.remaining !== 0) return 'bad extensions length';
  const seen = new Set<number>();
  while (exts.remaining > 0) {
    const type = exts.u16();
    const data = exts.vector(2);
    if (type === undefined || data === undefined) return 'truncated extension';
    // RFC 8446 §4.2: there MUST NOT be more than one extension of the same type.
    if (seen.has(type)) return `duplicate extension ${type}`;
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const sni = readServerName(data);
      if (typeof sni !== 'object') return sni;
      if (sni.name !== undefined) body.sni = sni.name;
    } else if (type === EXT_ALPN) {
      const alpn = readAlpn(data);
      if (typeof alpn === 'string') return alpn;
      body.alpn = alpn;
    } else if (type === EXT_SUPPORTED_VERSIONS) {
      const versions = readVersions(data);
      if (typeof versions === 'string') return versions;
      body.supportedVersions = versions;
    }
  }
  return body;
}

/** RFC 6066 §3: ServerNameList; takes the first host_name (there MUST NOT be more than one). */
function readServerName(data: Reader): { name?: string } | string {
  // A server's own (empty) server_name extension has no list; a client's must have one.
  const list = data.vector(2);
  if (list === undefined || data.remaining !== 0 || list.remaining === 0) return 'bad server_name list';
  let name: string | undefined;
  while (list.remaining > 0) {
    const nameType = list.u8();
    const host = list.vector(2);
    if (nameType === undefined || host === undefined) return 'truncated server_name entry';
    if (nameType !== 0) continue; // only host_name(0) is defined
    if (name !== undefined) return 'two host_name entries';
    const bytes = host.bytes(host.remaining)!;
    // RFC 6066 §3: HostName is ASCII, without a trailing dot; 1..255 bytes (RFC 1035 §2.3.4).
    if (bytes.length === 0 || bytes.length > 255) return 'bad host_name length';
    for (const c of bytes) if (c <= 0x20 || c >= 0x7f) return 'non-ASCII host_name';
    name = String.fromCharCode(...bytes).toLowerCase();
  }
  return name === undefined ? {} : { name };
}

/** RFC 7301 §3.1: ProtocolNameList protocol_name_list<2..2^16-1>, each ProtocolName<1..2^8-1>. */
function readAlpn(data: Reader): string[] | string {
  const list = data.vector(2);
  if (list === undefined || data.remaining !== 0 || list.remaining < 2) return 'bad ALPN list';
  const out: string[] = [];
  while (list.remaining > 0) {
    const p = list.vector(1);
    if (p === undefined || p.remaining === 0) return 'bad ALPN protocol name';
    out.push(Buffer.from(p.bytes(p.remaining)!).toString('latin1'));
  }
  return out;
}

/** RFC 8446 §4.2.1: ClientHello supported_versions is ProtocolVersion versions<2..254>. */
function readVersions(data: Reader): number[] | string {
  const list = data.vector(1);
  if (list === undefined || data.remaining !== 0 || list.remaining < 2 || list.remaining % 2 !== 0) {
    return 'bad supported_versions';
  }
  const out: number[] = [];
  while (list.remaining > 0) out.push(list.u16()!);
  return out;
}
