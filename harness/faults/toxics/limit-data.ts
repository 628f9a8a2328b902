import { isEnd } from '../channel.js';
import type { ToxicSpec } from '../spec.js';
import type { ToxicStub } from '../stub.js';
import type { Toxic, ToxicDefinition } from '../toxic.js';

type Spec = Extract<ToxicSpec, { type: 'limit_data' }>;

/** Lets `bytes` bytes through in its direction, then closes the connection (after delivering them). */
export class LimitDataToxic implements Toxic {
  private left: number;

  constructor(spec: Spec) {
    this.left = spec.bytes;
  }

  async pipe(stub: ToxicStub): Promise<void> {
    if (this.left === 0) return this.limit(stub);
    for (;;) {
      const item = await stub.read();
      if (item === undefined) return;
      if (isEnd(item)) {
        await stub.write(item);
        return;
      }
      if (item.data.length < this.left) {
        this.left -= item.data.length;
        await stub.write(item);
        continue;
      }
      await stub.write({ data: item.data.subarray(0, this.left), at: item.at });
      this.left = 0;
      return this.limit(stub);
    }
  }

  private limit(stub: ToxicStub): void {
    stub.conn.applied();
    stub.close();
  }
}

export const limitData: ToxicDefinition<'limit_data'> = {
  type: 'limit_data',
  directional: true,
  create: (spec) => new LimitDataToxic(spec),
  describe: (s) => `close after ${s.bytes} bytes`,
};
