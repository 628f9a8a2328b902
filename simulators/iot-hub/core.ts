import type { SimulatorEvents } from '../common/events.js';
import type { C2dQueues } from './c2d.js';
import type { AuthRejectReason, HubTransport, IotHubEvents } from './events.js';

/** What the hub's transport handlers share: identity checks, telemetry intake, C2D queues. */
export interface HubCore {
  readonly hostName: string;
  readonly events: SimulatorEvents<IotHubEvents>;
  readonly c2d: C2dQueues;
  /**
   * Checks a device's SAS token (resource `<hostName>/devices/<deviceId>`, expiry, signature with the
   * device's key). Emits `device-authenticated` or `auth-rejected`.
   */
  authenticate(deviceId: string, token: string | undefined, transport: HubTransport): boolean;
  /** Records a refusal decided before the SAS check (counted in `authRejected`, event `auth-rejected`). */
  reject(deviceId: string, transport: HubTransport, reason: AuthRejectReason): void;
  telemetry(
    deviceId: string,
    transport: HubTransport,
    body: Buffer,
    properties: Record<string, string>,
  ): void;
  settled(deviceId: string, transport: string, messageId: string, outcome: string): void;
}
