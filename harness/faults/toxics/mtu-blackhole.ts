import type { ToxicSpec } from '../spec.js';
import type { ToxicStub } from '../stub.js';
import type { Toxic, ToxicDefinition } from '../toxic.js';

type Spec = Extract<ToxicSpec, { type: 'mtu_blackhole' }>;

/**
 * A path MTU black hole: a hop with a smaller MTU drops the packets that do not fit, and the ICMP
 * "fragmentation needed" (RFC 1191) that would tell the sender is filtered. Small writes (handshakes,
 * short requests) pass; the first write larger than `mtu` bytes, and everything after it in that
 * direction, never arrives: TCP retransmits a full-size segment that never fits, so the connection
 * stalls until a peer gives up. A write here is a chunk the relay read (on loopback, one write of
 * the sender: a TLS record and whatever it sent with it).
 */
export class MtuBlackholeToxic implements Toxic {
  constructor(private readonly spec: Spec) {}

  async pipe(stub: ToxicStub): Promise<void> {
    for (;;) {
      const item = await stub.read();
      if (item === undefined) return;
      if ('data' in item && item.data.length > this.spec.mtu) break;
      await stub.write(item);
    }
    stub.conn.applied();
    // Dropped from here on, the end of the stream included (the peer never sees it either).
    while ((await stub.read()) !== undefined) {
      // dropped
    }
  }
}

export const mtuBlackhole: ToxicDefinition<'mtu_blackhole'> = {
  type: 'mtu_blackhole',
  directional: true,
  create: (spec) => new MtuBlackholeToxic(spec),
  describe: (s) => `MTU black hole: writes over ${s.mtu} bytes never arrive`,
};
