import type { PeerCertificate } from 'node:tls';
import type { SimulatorEvents } from '../common/events.js';
import type { C2dQueues } from './c2d.js';
import type { AuthRejectReason, HubTransport, IotHubEvents } from './events.js';
import type { TwinStore } from './twin.js';

/** What a device presented: a SAS token, a TLS client certificate (with the chain it sent), or both. */
export interface Credentials {
  token?: string | undefined;
  peer?: PeerCertificate | undefined;
}

/** What the hub's transport handlers share: identity checks, telemetry intake, C2D queues, twins. */
export interface HubCore {
  readonly hostName: string;
  readonly events: SimulatorEvents<IotHubEvents>;
  readonly c2d: C2dQueues;
  /** Module input messages, per module identity `<deviceId>/<moduleId>` (each message has its input). */
  readonly inputs: C2dQueues;
  readonly twins: TwinStore;
  /**
   * Checks a device's (`<deviceId>`) or module's (`<deviceId>/<moduleId>`) credentials: a SAS token
   * (resource `<hostName>/devices/<deviceId>[/modules/<moduleId>]`, expiry, signature with the identity's
   * key), or for an X.509 identity its client certificate. Emits `device-authenticated` or `auth-rejected`.
   */
  authenticate(identity: string, credentials: Credentials, transport: HubTransport): boolean;
  /** Records a refusal decided before the credential check (counted in `authRejected`, event `auth-rejected`). */
  reject(deviceId: string, transport: HubTransport, reason: AuthRejectReason): void;
  telemetry(
    deviceId: string,
    transport: HubTransport,
    body: Buffer,
    properties: Record<string, string>,
  ): void;
  /** A C2D message (or, `input` true, a module input message) was settled by the device or module. */
  settled(deviceId: string, transport: string, messageId: string, outcome: string, input?: boolean): void;
}

/** `<deviceId>` or `<deviceId>/<moduleId>` → its SAS resource path under the host name. */
export function sasResourcePath(identity: string): string {
  const slash = identity.indexOf('/');
  return slash < 0
    ? `devices/${identity}`
    : `devices/${identity.slice(0, slash)}/modules/${identity.slice(slash + 1)}`;
}
