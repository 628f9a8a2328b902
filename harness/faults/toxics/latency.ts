import { formatMs } from '../../../simulators/common/duration.js';
import { isEnd } from '../channel.js';
import type { ToxicSpec } from '../spec.js';
import type { ToxicStub } from '../stub.js';
import type { Toxic, ToxicDefinition } from '../toxic.js';

type Spec = Extract<ToxicSpec, { type: 'latency' }>;

/**
 * Delays every chunk (and the end of the stream: a FIN crosses the link too) by `latency` ± `jitter`
 * from the time it entered the relay, keeping order. Interrupted, it writes the held chunk at once.
 */
export class LatencyToxic implements Toxic {
  constructor(private readonly spec: Spec) {}

  private delay(): number {
    const { latency, jitter } = this.spec;
    if (jitter <= 0) return latency;
    return Math.max(0, latency + (Math.random() * 2 - 1) * jitter);
  }

  async pipe(stub: ToxicStub): Promise<void> {
    let applied = false;
    for (;;) {
      const item = await stub.read();
      if (item === undefined) return;
      const delay = this.delay();
      if (delay > 0 && !applied) {
        applied = true;
        stub.conn.applied();
      }
      const wait = item.at + delay - performance.now();
      if (wait > 0 && !(await stub.sleep(wait))) {
        await stub.write(item);
        return;
      }
      item.at += Math.max(0, delay);
      await stub.write(item);
      if (isEnd(item)) return;
    }
  }
}

export const latency: ToxicDefinition<'latency'> = {
  type: 'latency',
  directional: true,
  create: (spec) => new LatencyToxic(spec),
  describe: (s) => `latency ${formatMs(s.latency)}${s.jitter > 0 ? ` ±${formatMs(s.jitter)}` : ''}`,
};
