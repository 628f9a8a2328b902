import { describe, expect, it } from 'vitest';
import { checkPayload, makePayload } from '../../harness/load/payload.js';
import * as js from '../../load/lib/payload.js';

describe('DATA payloads: load/lib/payload.js and harness/load/payload.ts', () => {
  it('make byte-identical payloads and verify each other', () => {
    for (const [seq, size] of [
      [0, 16],
      [1, 17],
      [12345, 1024],
      [0xffffffff, 64_512],
    ] as const) {
      const sentAt = 1_790_000_000_000.125;
      const a = js.makePayload(seq, sentAt, size);
      const b = makePayload(seq, sentAt, size);
      expect(Buffer.from(a).equals(b)).toBe(true);
      expect(checkPayload(a)).toEqual({ ok: true, seq, sentAt });
      expect(js.checkPayload(b)).toEqual({ ok: true, seq, sentAt });
    }
  });

  it('detect a flipped bit, a cut payload and a changed sequence number', () => {
    const p = makePayload(7, 1000, 256);
    for (const i of [0, 3, 8, 15, 16, 255]) {
      const bad = Buffer.from(p);
      bad[i] = (bad[i] as number) ^ 0x10;
      expect(checkPayload(bad)).toEqual({ ok: false, reason: 'checksum mismatch' });
      expect(js.checkPayload(bad)).toEqual({ ok: false, reason: 'checksum mismatch' });
    }
    expect(checkPayload(p.subarray(0, 200)).ok).toBe(false);
    expect(js.checkPayload(p.subarray(0, 10))).toEqual({ ok: false, reason: 'payload of 10 bytes' });
    // A view at an odd offset (as a payload inside a received frame) still checks.
    const framed = Buffer.concat([Buffer.from([1, 2, 3]), p]);
    expect(js.checkPayload(framed.subarray(3))).toEqual({ ok: true, seq: 7, sentAt: 1000 });
  });
});
