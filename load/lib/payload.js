/**
 * Self-checking DATA payloads for the tunnel load tests (k6 and the Node driver share this layout;
 * harness/load/payload.ts is the TypeScript twin, test/load/payload.test.ts keeps them identical).
 *
 * ```
 * | seq uint32 BE | checksum uint32 BE | sentAt float64 BE (ms) | filler ... |
 *   0               4                    8                        16
 * ```
 * checksum = Adler-32 (RFC 1950 §8.2) over bytes [0, 4) then [8, size): it covers the sequence number, the
 * send time and the filler, so a corrupted or cut payload fails `checkPayload`, and a mixed-up one shows a
 * wrong sequence number. Adler-32, not a multiply-based hash: goja (k6) runs it several times faster, and the
 * sums stay exact in doubles for any payload ≤ 64512 bytes, so the modulo runs once at the end. The filler
 * is one fixed pattern per size (made once, copied in): generating bytes per message is slow in goja.
 */

/** The header's size; payloads are at least this long. */
export const PAYLOAD_HEADER_BYTES = 16;

const ADLER_MOD = 65521;

/** Adler-32 of buf[0, 4) followed by buf[8, end). */
function checksum(buf, end) {
  let a = 1;
  let b = 0;
  for (let i = 0; i < 4; i++) {
    a += buf[i];
    b += a;
  }
  for (let i = 8; i < end; i++) {
    a += buf[i];
    b += a;
  }
  return (((b % ADLER_MOD) << 16) | (a % ADLER_MOD)) >>> 0;
}

const fillers = {};

/** The filler bytes for a payload of `size` (xorshift32 from a fixed seed), made once per size. */
function filler(size) {
  let f = fillers[size];
  if (f) return f;
  f = new Uint8Array(size - PAYLOAD_HEADER_BYTES);
  let x = 2463534242;
  for (let i = 0; i < f.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    f[i] = x & 255;
  }
  fillers[size] = f;
  return f;
}

/** A payload of `size` bytes (≥ 16) carrying `seq` and `sentAt` (ms since the epoch). */
export function makePayload(seq, sentAt, size) {
  if (size < PAYLOAD_HEADER_BYTES) throw new Error(`payload size ${size} < ${PAYLOAD_HEADER_BYTES}`);
  const buf = new Uint8Array(size);
  const view = new DataView(buf.buffer);
  view.setUint32(0, seq >>> 0);
  view.setFloat64(8, sentAt);
  buf.set(filler(size), PAYLOAD_HEADER_BYTES);
  view.setUint32(4, checksum(buf, size));
  return buf;
}

/**
 * Reads and verifies a payload: `{ ok: true, seq, sentAt }` or `{ ok: false, reason }` (too short, bad
 * checksum).
 */
export function checkPayload(buf) {
  if (buf.length < PAYLOAD_HEADER_BYTES) return { ok: false, reason: `payload of ${buf.length} bytes` };
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  if (checksum(buf, buf.length) !== view.getUint32(4)) return { ok: false, reason: 'checksum mismatch' };
  return { ok: true, seq: view.getUint32(0), sentAt: view.getFloat64(8) };
}
