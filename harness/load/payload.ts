/**
 * Self-checking DATA payloads: the TypeScript twin of load/lib/payload.js (the k6 scripts' copy; the two
 * must stay byte-identical, test/load/payload.test.ts checks it).
 *
 * ```
 * | seq uint32 BE | checksum uint32 BE | sentAt float64 BE (ms) | filler (fixed pattern per size) |
 * ```
 * checksum = Adler-32 (RFC 1950 §8.2) over bytes [0, 4) then [8, size).
 */

export const PAYLOAD_HEADER_BYTES = 16;

const ADLER_MOD = 65521;

/** Adler-32 of buf[0, 4) followed by buf[8, end); the sums stay exact in doubles up to 64512 bytes. */
function checksum(buf: Uint8Array, end: number): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < 4; i++) {
    a += buf[i] as number;
    b += a;
  }
  for (let i = 8; i < end; i++) {
    a += buf[i] as number;
    b += a;
  }
  return (((b % ADLER_MOD) << 16) | (a % ADLER_MOD)) >>> 0;
}

const fillers = new Map<number, Uint8Array>();

/** The filler for a payload of `size` (xorshift32 from a fixed seed), made once per size. */
function filler(size: number): Uint8Array {
  let f = fillers.get(size);
  if (f) return f;
  f = new Uint8Array(size - PAYLOAD_HEADER_BYTES);
  let x = 2463534242;
  for (let i = 0; i < f.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    f[i] = x & 255;
  }
  fillers.set(size, f);
  return f;
}

/** A payload of `size` bytes (≥ 16) carrying `seq` and `sentAt` (ms). */
export function makePayload(seq: number, sentAt: number, size: number): Buffer {
  if (size < PAYLOAD_HEADER_BYTES) throw new RangeError(`payload size ${size} < ${PAYLOAD_HEADER_BYTES}`);
  const buf = Buffer.allocUnsafe(size);
  buf.writeUInt32BE(seq >>> 0, 0);
  buf.writeDoubleBE(sentAt, 8);
  buf.set(filler(size), PAYLOAD_HEADER_BYTES);
  buf.writeUInt32BE(checksum(buf, size), 4);
  return buf;
}

export type PayloadCheck = { ok: true; seq: number; sentAt: number } | { ok: false; reason: string };

/** Reads and verifies a payload (length, checksum). */
export function checkPayload(buf: Uint8Array): PayloadCheck {
  if (buf.length < PAYLOAD_HEADER_BYTES) return { ok: false, reason: `payload of ${buf.length} bytes` };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  if (checksum(buf, buf.length) !== view.getUint32(4)) return { ok: false, reason: 'checksum mismatch' };
  return { ok: true, seq: view.getUint32(0), sentAt: view.getFloat64(8) };
}
