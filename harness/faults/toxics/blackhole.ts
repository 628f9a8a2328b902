import type { ToxicSpec } from '../spec.js';
import type { ToxicConnection, ToxicStub } from '../stub.js';
import type { ConnectionToxic, ToxicDefinition } from '../toxic.js';

type Spec = Extract<ToxicSpec, { type: 'blackhole' }>;

/**
 * Accepts, reads and drops, never answers: a new connection never dials upstream; a live one stops
 * relaying both ways and leaves its upstream unused. A blackholed connection stays so after removal.
 */
export class BlackholeToxic implements ConnectionToxic {
  onConnection(conn: ToxicConnection): void {
    conn.applied();
    conn.blackhole();
  }

  /** Drops everything in its direction, the end of the stream included (nothing answers). */
  async pipe(stub: ToxicStub): Promise<void> {
    while ((await stub.read()) !== undefined) {
      // dropped
    }
  }
}

export const blackhole: ToxicDefinition<'blackhole'> = {
  type: 'blackhole',
  directional: false,
  create: (_spec: Spec) => new BlackholeToxic(),
  describe: () => 'blackhole: accepted, never answered',
};
