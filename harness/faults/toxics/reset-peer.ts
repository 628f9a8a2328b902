import { formatMs } from '../../../simulators/common/duration.js';
import type { ToxicSpec } from '../spec.js';
import { forward, type ToxicConnection, type ToxicStub } from '../stub.js';
import type { CleanupToxic, ConnectionToxic, ToxicDefinition } from '../toxic.js';

type Spec = Extract<ToxicSpec, { type: 'reset_peer' }>;

/** Resets the connection (TCP RST to the client) `timeout` after it is attached; data flows until then. */
export class ResetPeerToxic implements ConnectionToxic, CleanupToxic {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly spec: Spec) {}

  onConnection(conn: ToxicConnection): void {
    this.timer = setTimeout(() => {
      conn.applied();
      conn.reset();
    }, this.spec.timeout);
  }

  pipe(stub: ToxicStub): Promise<void> {
    return forward(stub);
  }

  cleanup(): void {
    clearTimeout(this.timer);
  }
}

export const resetPeer: ToxicDefinition<'reset_peer'> = {
  type: 'reset_peer',
  directional: false,
  create: (spec) => new ResetPeerToxic(spec),
  describe: (s) => (s.timeout > 0 ? `reset (RST) after ${formatMs(s.timeout)}` : 'reset (RST) at once'),
};
