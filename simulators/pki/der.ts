/**
 * The little DER (ITU-T X.690 §10) a certificate needs: tag-length-value encoding, and a reader that
 * walks a structure's elements without decoding them. Used by the leaf template (leaf-der.ts), where the
 * general ASN.1 library is most of the cost of issuing a leaf.
 */

/** One encoded element: tag, length (definite, minimal: X.690 §10.1) and contents. */
export function tlv(tag: number, contents: Buffer | readonly Buffer[]): Buffer {
  const body = Buffer.isBuffer(contents) ? contents : Buffer.concat(contents);
  const n = body.length;
  let head: Buffer;
  if (n < 0x80) head = Buffer.from([tag, n]);
  else if (n < 0x100) head = Buffer.from([tag, 0x81, n]);
  else if (n < 0x10000) head = Buffer.from([tag, 0x82, n >> 8, n & 0xff]);
  else head = Buffer.from([tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([head, body]);
}

export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  ia5String: 0x16,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

export const sequence = (...items: Buffer[]): Buffer => tlv(TAG.sequence, items);

/** An OBJECT IDENTIFIER from its dotted form (X.690 §8.19). */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [(arcs[0] ?? 0) * 40 + (arcs[1] ?? 0)];
  for (const arc of arcs.slice(2)) {
    const bytes = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift((v & 0x7f) | 0x80);
    out.push(...bytes);
  }
  return tlv(TAG.oid, Buffer.from(out));
}

/** A non-negative INTEGER from big-endian bytes: leading zeros dropped, one added if the top bit is set. */
export function unsignedInteger(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = bytes.subarray(i);
  const top = trimmed[0] ?? 0;
  return tlv(TAG.integer, top & 0x80 ? [Buffer.from([0]), trimmed] : trimmed);
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds, `Z`, no fraction. */
export function time(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  const year = date.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(TAG.utcTime, Buffer.from(`${digits.slice(2)}Z`, 'latin1'));
  return tlv(TAG.generalizedTime, Buffer.from(`${digits}Z`, 'latin1'));
}

/** Where one element sits in a buffer: its whole encoding and its contents. */
export interface Element {
  tag: number;
  /** Offset of the tag byte. */
  start: number;
  /** Offset of the contents. */
  contentStart: number;
  /** Offset just past the element. */
  end: number;
}

/** Reads the element at `offset` (definite lengths only, as DER has). */
export function readElement(buf: Buffer, offset: number): Element {
  const tag = buf[offset];
  let len = buf[offset + 1];
  if (tag === undefined || len === undefined) throw new RangeError('DER: truncated element');
  let p = offset + 2;
  if (len & 0x80) {
    const count = len & 0x7f;
    if (count === 0 || count > 4) throw new RangeError('DER: unsupported length');
    len = 0;
    for (let i = 0; i < count; i++) len = len * 256 + (buf[p++] ?? 0);
  }
  const end = p + len;
  if (end > buf.length) throw new RangeError('DER: element runs past the end');
  return { tag, start: offset, contentStart: p, end };
}

/** The elements directly inside a constructed element. */
export function children(buf: Buffer, parent: Element): Element[] {
  const out: Element[] = [];
  for (let p = parent.contentStart; p < parent.end; ) {
    const e = readElement(buf, p);
    out.push(e);
    p = e.end;
  }
  return out;
}

/** PEM (RFC 7468 §2): base64 in 64-character lines, `\n` line ends and a final newline, as OpenSSL writes. */
export function pem(der: Buffer, label: string): string {
  const b64 = der.toString('base64');
  let body = '';
  for (let i = 0; i < b64.length; i += 64) body += `${b64.slice(i, i + 64)}\n`;
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}
