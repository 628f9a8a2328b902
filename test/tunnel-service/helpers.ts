import type { IoTSecureTunnelingClient } from '@aws-sdk/client-iotsecuretunneling';
import { endpointOf } from '../../simulators/common/handle.js';
import {
  start,
  type TunnelServiceHandle,
  type TunnelServiceOptions,
} from '../../simulators/tunnel-service/index.js';
import { connect, openTunnelWith, RawPeer, tunnelSdk, V2 } from '../helpers/tunnel.js';
import { within } from '../helpers/within.js';

export const V1 = 'aws.iot.securetunneling-1.0';
export const V3 = 'aws.iot.securetunneling-3.0';
export const CLIENT_TOKEN_A = 'a'.repeat(32);

export type { ConnectOpts } from '../helpers/tunnel.js';
export { connect, RawPeer, V2, within };

export interface Lab {
  svc: TunnelServiceHandle;
  sdk: IoTSecureTunnelingClient;
  dataUrl: string;
}

export async function startLab(options: TunnelServiceOptions = {}): Promise<Lab> {
  const svc = await start(options);
  const sdk = tunnelSdk(endpointOf(svc, 'api').url as string);
  return { svc, sdk, dataUrl: endpointOf(svc, 'data').url as string };
}

export async function stopLab(lab: Lab | undefined): Promise<void> {
  if (!lab) return;
  lab.sdk.destroy();
  await lab.svc.stop();
}

export function openTunnel(lab: Lab, services = ['SSH'], thingName = 'thing-1') {
  return openTunnelWith(lab.sdk, services, thingName);
}

/** The HTTP status a refused handshake got. */
export async function refusal(p: Promise<RawPeer>): Promise<number | undefined> {
  try {
    const peer = await p;
    peer.close();
    return undefined;
  } catch (err) {
    return (err as { status?: number }).status;
  }
}

/** Connects both sides of a tunnel and consumes their SERVICE_IDS. */
export async function connectPair(
  lab: Lab,
  tokens: { source: string; destination: string },
  protocol = V2,
): Promise<{ src: RawPeer; dst: RawPeer }> {
  const src = await connect(lab, { mode: 'source', token: tokens.source, protocols: [protocol] });
  const dst = await connect(lab, { mode: 'destination', token: tokens.destination, protocols: [protocol] });
  if (protocol !== V1) {
    await src.next();
    await dst.next();
  }
  return { src, dst };
}

/**
 * A clock the test moves by hand (the simulator's `clock` option): lifetimes of minutes and a retention
 * of hours run in no real time. `advance` fires due timers in time order.
 */
export class ManualClock {
  private time = Date.now();
  private readonly timers = new Set<{ at: number; fn: () => void }>();

  now = (): number => this.time;

  after = (ms: number, fn: () => void): (() => void) => {
    const timer = { at: this.time + ms, fn };
    this.timers.add(timer);
    return () => this.timers.delete(timer);
  };

  /** Timers armed and not yet fired or cancelled. */
  get pending(): number {
    return this.timers.size;
  }

  advance(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      let next: { at: number; fn: () => void } | undefined;
      for (const t of this.timers) if (t.at <= until && (!next || t.at < next.at)) next = t;
      if (!next) break;
      this.timers.delete(next);
      this.time = Math.max(this.time, next.at);
      next.fn();
    }
    this.time = until;
  }
}
