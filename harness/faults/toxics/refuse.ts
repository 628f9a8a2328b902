import type { ToxicSpec } from '../spec.js';
import { forward, type ToxicConnection, type ToxicStub } from '../stub.js';
import type { ConnectionToxic, ToxicDefinition } from '../toxic.js';

type Spec = Extract<ToxicSpec, { type: 'refuse' }>;

/**
 * Refuses new connections. At toxicity 1 the relay closes its listening socket while the toxic is
 * active, so the kernel answers SYN with RST (ECONNREFUSED), and listens again on the same address and
 * port when it is removed. Below 1 the listener stays and the chosen new connections are reset as they
 * are accepted (the nearest a userspace relay gets to refusing some). Established connections go on.
 */
export class RefuseToxic implements ConnectionToxic {
  onConnection(conn: ToxicConnection): void {
    if (!conn.fresh) return;
    conn.applied();
    conn.reset();
  }

  pipe(stub: ToxicStub): Promise<void> {
    return forward(stub);
  }
}

export const refuse: ToxicDefinition<'refuse'> = {
  type: 'refuse',
  directional: false,
  create: (_spec: Spec) => new RefuseToxic(),
  describe: () => 'refuse new connections',
  activate: (relay, spec) => (spec.toxicity >= 1 ? relay.holdListener() : () => {}),
};
