import { formatMs } from '../../../simulators/common/duration.js';
import type { ToxicSpec } from '../spec.js';
import type { ToxicConnection, ToxicStub } from '../stub.js';
import type { CleanupToxic, ConnectionToxic, ToxicDefinition } from '../toxic.js';

type Spec = Extract<ToxicSpec, { type: 'timeout' }>;

/**
 * Stops all data in its direction (the stage stops reading, so backpressure holds the bytes in the
 * relay and the kernel), and closes the connection after `timeout` (0 = never: hang until removed).
 * Unlike Toxiproxy, held bytes are not dropped: when the toxic is removed they flow on, in order.
 */
export class TimeoutToxic implements ConnectionToxic, CleanupToxic {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly spec: Spec) {}

  onConnection(conn: ToxicConnection): void {
    conn.applied();
    if (this.spec.timeout > 0) this.timer = setTimeout(() => conn.close(), this.spec.timeout);
  }

  async pipe(stub: ToxicStub): Promise<void> {
    await stub.whenInterrupted();
  }

  cleanup(): void {
    clearTimeout(this.timer);
  }
}

export const timeout: ToxicDefinition<'timeout'> = {
  type: 'timeout',
  directional: true,
  create: (spec) => new TimeoutToxic(spec),
  describe: (s) =>
    s.timeout > 0
      ? `timeout: data stops, closed after ${formatMs(s.timeout)}`
      : 'timeout: data stops (hangs)',
};
