import type { Socket } from 'node:net';
import { FieldlabError } from './errors.js';

/**
 * PROXY protocol version 2 (HAProxy, "The PROXY protocol", proxy-protocol.txt §2.2): the binary header a
 * TLS-terminating front writes first on its connection to a simulator, with the client's address and TLVs.
 *
 *   signature(12) | ver_cmd(1) | fam(1) | len(2) | addresses | TLVs (type(1) length(2) value)...
 */
export const PROXY_V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);

/** TLV types (§2.2.1–2.2.7) and fieldlab's own in the custom range 0xE0–0xEF (§2.2.8). */
export const PP2 = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  SSL: 0x20,
  SUBTYPE_SSL_VERSION: 0x21,
  SUBTYPE_SSL_CIPHER: 0x23,
  CLIENT_SSL: 0x01,
  CLIENT_CERT_CONN: 0x02,
  /** fieldlab: one client certificate (DER) per TLV, leaf first, as the client sent its chain. */
  CLIENT_CERTIFICATE: 0xe0,
} as const;

export interface ProxyV2Header {
  /** `proxy`: a relayed connection; `local`: the front's own (health check), no addresses. */
  command: 'proxy' | 'local';
  /** The client's address and the address it connected to (absent for LOCAL or UNSPEC). */
  source?: { address: string; port: number };
  destination?: { address: string; port: number };
  /** Every TLV, in order. */
  tlvs: Array<{ type: number; value: Buffer }>;
  /** The header's length on the wire. */
  length: number;
}

/** The TLS facts a front reports (PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_SSL, fieldlab's 0xE0). */
export interface ProxiedTlsFacts {
  alpn?: string;
  servername?: string;
  /** PP2_SUBTYPE_SSL_VERSION, e.g. `TLSv1.3`. */
  version?: string;
  cipher?: string;
  /** The client's certificates (DER), leaf first. */
  certificates: Buffer[];
}

/** The most a header may be: 16 fixed bytes and a 16-bit length (§2.2). */
const MAX_HEADER = 16 + 0xffff;

function bad(message: string): FieldlabError {
  return new FieldlabError('E_PROXY_PROTOCOL', `PROXY v2 header: ${message}`, {
    hint: 'the connection must start with a PROXY protocol v2 header (fieldlab-tls-front writes one)',
  });
}

function ipv6(b: Buffer): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16));
  return parts.join(':');
}

/**
 * Parses a header at the start of `buf`: undefined while it is incomplete; throws E_PROXY_PROTOCOL on
 * anything that is not one.
 */
export function parseProxyV2(buf: Buffer): ProxyV2Header | undefined {
  const sigLen = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  if (!buf.subarray(0, sigLen).equals(PROXY_V2_SIGNATURE.subarray(0, sigLen))) throw bad('no signature');
  if (buf.length < 16) return undefined;
  const verCmd = buf[12] ?? 0;
  // §2.2: the high 4 bits are the version (2), the low 4 the command (0 LOCAL, 1 PROXY).
  if (verCmd >> 4 !== 2) throw bad(`version ${verCmd >> 4}, not 2`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) throw bad(`unknown command ${cmd}`);
  const fam = buf[13] ?? 0;
  const len = buf.readUInt16BE(14);
  if (buf.length < 16 + len) return undefined;
  const body = buf.subarray(16, 16 + len);
  const header: ProxyV2Header = { command: cmd === 1 ? 'proxy' : 'local', tlvs: [], length: 16 + len };
  let addrLen = 0;
  // §2.2: 0x11 TCP over IPv4 (12 address bytes), 0x21 TCP over IPv6 (36); UNSPEC and UNIX are not ours.
  if (fam === 0x11 || fam === 0x12) {
    addrLen = 12;
    if (body.length < addrLen) throw bad('IPv4 addresses cut short');
    header.source = { address: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8) };
    header.destination = { address: [...body.subarray(4, 8)].join('.'), port: body.readUInt16BE(10) };
  } else if (fam === 0x21 || fam === 0x22) {
    addrLen = 36;
    if (body.length < addrLen) throw bad('IPv6 addresses cut short');
    header.source = { address: ipv6(body.subarray(0, 16)), port: body.readUInt16BE(32) };
    header.destination = { address: ipv6(body.subarray(16, 32)), port: body.readUInt16BE(34) };
  } else if (fam === 0x31 || fam === 0x32) {
    addrLen = 216;
  }
  if (header.command === 'local') header.source = header.destination = undefined;
  header.tlvs = parseTlvs(body.subarray(addrLen));
  return header;
}

function parseTlvs(b: Buffer): Array<{ type: number; value: Buffer }> {
  const out: Array<{ type: number; value: Buffer }> = [];
  let i = 0;
  while (i < b.length) {
    if (i + 3 > b.length) throw bad('a TLV cut short');
    const type = b[i] ?? 0;
    const n = b.readUInt16BE(i + 1);
    if (i + 3 + n > b.length) throw bad(`TLV 0x${type.toString(16)} longer than the header`);
    out.push({ type, value: b.subarray(i + 3, i + 3 + n) });
    i += 3 + n;
  }
  return out;
}

/** The TLS facts in a header's TLVs. */
export function proxiedTlsFacts(h: ProxyV2Header): ProxiedTlsFacts {
  const facts: ProxiedTlsFacts = { certificates: [] };
  for (const t of h.tlvs) {
    if (t.type === PP2.ALPN) facts.alpn = t.value.toString('latin1');
    else if (t.type === PP2.AUTHORITY) facts.servername = t.value.toString('utf8');
    else if (t.type === PP2.CLIENT_CERTIFICATE) facts.certificates.push(Buffer.from(t.value));
    else if (t.type === PP2.SSL && t.value.length >= 5) {
      // §2.2.5: client(1) verify(4) then sub-TLVs.
      for (const s of parseTlvs(t.value.subarray(5))) {
        if (s.type === PP2.SUBTYPE_SSL_VERSION) facts.version = s.value.toString('latin1');
        else if (s.type === PP2.SUBTYPE_SSL_CIPHER) facts.cipher = s.value.toString('latin1');
      }
    }
  }
  return facts;
}

/**
 * Reads the PROXY v2 header off a fresh socket; the bytes after it are put back for the next reader.
 * Bounded: rejects after `timeoutMs` or on anything that is not a header.
 */
export function readProxyV2(socket: Socket, timeoutMs: number): Promise<ProxyV2Header> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const finish = (err: Error | undefined, h?: ProxyV2Header) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (err || !h) return reject(err ?? bad('no header'));
      if (buf.length > h.length) socket.unshift(buf.subarray(h.length));
      resolve(h);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (buf.length > MAX_HEADER + 65536) return finish(bad('too long'));
      try {
        const h = parseProxyV2(buf);
        if (h) finish(undefined, h);
      } catch (err) {
        finish(err as Error);
      }
    };
    const onEnd = () => finish(bad('the connection ended before the header'));
    const timer = setTimeout(() => finish(bad(`no header within ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
    socket.once('close', onEnd);
  });
}
