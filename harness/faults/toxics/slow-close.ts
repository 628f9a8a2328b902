import { formatMs } from '../../../simulators/common/duration.js';
import { isEnd } from '../channel.js';
import type { ToxicSpec } from '../spec.js';
import type { ToxicStub } from '../stub.js';
import type { Toxic, ToxicDefinition } from '../toxic.js';

type Spec = Extract<ToxicSpec, { type: 'slow_close' }>;

/** Delays the end of the stream (the FIN, or a close another toxic asked for) by `delay`. */
export class SlowCloseToxic implements Toxic {
  constructor(private readonly spec: Spec) {}

  async pipe(stub: ToxicStub): Promise<void> {
    for (;;) {
      const item = await stub.read();
      if (item === undefined) return;
      if (isEnd(item)) {
        stub.conn.applied();
        await stub.sleep(this.spec.delay);
        await stub.write(item);
        return;
      }
      await stub.write(item);
    }
  }
}

export const slowClose: ToxicDefinition<'slow_close'> = {
  type: 'slow_close',
  directional: true,
  create: (spec) => new SlowCloseToxic(spec),
  describe: (s) => `close delayed by ${formatMs(s.delay)}`,
};
