import { isEnd } from '../channel.js';
import type { ToxicSpec } from '../spec.js';
import type { ToxicStub } from '../stub.js';
import type { Toxic, ToxicDefinition } from '../toxic.js';

type Spec = Extract<ToxicSpec, { type: 'bandwidth' }>;

/** Slice length in time: large chunks go out in pieces of 100 ms worth of bytes (as Toxiproxy). */
const SLICE_MS = 100;

/**
 * Limits the rate to `rate` KB/s (1 KB = 1024 bytes). A virtual clock tracks when the link is free
 * again; each piece is written once its transmission time has passed. Idle time earns at most one slice of
 * burst credit.
 */
export class BandwidthToxic implements Toxic {
  private readonly bytesPerMs: number;
  private free = 0;

  constructor(spec: Spec) {
    this.bytesPerMs = (spec.rate * 1024) / 1000;
  }

  async pipe(stub: ToxicStub): Promise<void> {
    const slice = Math.max(1, Math.floor(this.bytesPerMs * SLICE_MS));
    let applied = false;
    for (;;) {
      const item = await stub.read();
      if (item === undefined) return;
      if (isEnd(item)) {
        await stub.write(item);
        return;
      }
      if (!applied) {
        applied = true;
        stub.conn.applied();
      }
      let data = item.data;
      while (data.length > 0) {
        const piece = data.length > slice ? data.subarray(0, slice) : data;
        data = data.subarray(piece.length);
        // Timer overshoot is made up on the next pieces; only a real idle gap resets the clock.
        const now = performance.now();
        if (now - this.free > SLICE_MS) this.free = now;
        this.free += piece.length / this.bytesPerMs;
        if (!(await stub.sleep(this.free - performance.now()))) {
          // Interrupted: hand on everything held, unshaped.
          await stub.write({ data: Buffer.concat([piece, data]), at: item.at });
          return;
        }
        await stub.write({ data: piece, at: item.at });
        if (stub.interrupted) {
          if (data.length > 0) await stub.write({ data, at: item.at });
          return;
        }
      }
    }
  }
}

export const bandwidth: ToxicDefinition<'bandwidth'> = {
  type: 'bandwidth',
  directional: true,
  create: (spec) => new BandwidthToxic(spec),
  describe: (s) => `bandwidth ${s.rate} KB/s`,
};
