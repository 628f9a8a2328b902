/** Types for payload.js (self-checking DATA payloads of the tunnel load tests). */

export declare const PAYLOAD_HEADER_BYTES: number;
export declare function makePayload(seq: number, sentAt: number, size: number): Uint8Array;
export declare function checkPayload(
  buf: Uint8Array,
): { ok: true; seq: number; sentAt: number } | { ok: false; reason: string };
