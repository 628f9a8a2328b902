import { isEnd } from '../channel.js';
import type { ToxicSpec } from '../spec.js';
import type { ToxicStub } from '../stub.js';
import type { Toxic, ToxicDefinition } from '../toxic.js';

type Spec = Extract<ToxicSpec, { type: 'slicer' }>;

/** Cuts chunks into pieces of `average_size` ± `size_variation` bytes, `delay` µs apart. */
export class SlicerToxic implements Toxic {
  constructor(private readonly spec: Spec) {}

  private size(): number {
    const { average_size: avg, size_variation: v } = this.spec;
    const jitter = v > 0 ? Math.floor(Math.random() * (2 * v + 1)) - v : 0;
    return Math.max(1, avg + jitter);
  }

  async pipe(stub: ToxicStub): Promise<void> {
    const delayMs = this.spec.delay / 1000;
    let applied = false;
    for (;;) {
      const item = await stub.read();
      if (item === undefined) return;
      if (isEnd(item)) {
        await stub.write(item);
        return;
      }
      let data = item.data;
      if (!applied && data.length > this.spec.average_size) {
        applied = true;
        stub.conn.applied();
      }
      while (data.length > 0) {
        const piece = data.subarray(0, this.size());
        data = data.subarray(piece.length);
        await stub.write({ data: piece, at: item.at });
        if (data.length > 0 && delayMs > 0 && !(await stub.sleep(delayMs))) {
          await stub.write({ data, at: item.at });
          return;
        }
      }
    }
  }
}

export const slicer: ToxicDefinition<'slicer'> = {
  type: 'slicer',
  directional: true,
  create: (spec) => new SlicerToxic(spec),
  describe: (s) =>
    `slicer ${s.average_size}${s.size_variation > 0 ? `±${s.size_variation}` : ''} B pieces` +
    (s.delay > 0 ? ` ${s.delay}µs apart` : ''),
};
