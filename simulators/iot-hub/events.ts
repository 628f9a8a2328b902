import type { FrontEvents } from './front.js';
import type { CertRejectReason } from './x509.js';

/** The hub transports, as the SDK names them (`Mqtt`/`MqttWs` are `mqtt`/`mqtt-ws` here). */
export type HubTransport = 'mqtt' | 'mqtt-ws' | 'amqp' | 'amqp-ws' | 'https';

/** Why a credential was refused (the SAS check, or an identity the hub does not know). */
export type AuthRejectReason =
  | 'malformed'
  | 'wrong-resource'
  | 'expired'
  | 'bad-signature'
  | 'unknown-identity'
  | 'wrong-client-id'
  /** A SAS token for an X.509 identity, or a bare certificate for a SAS one. */
  | 'auth-type-mismatch'
  | CertRejectReason;

/** Events of the IoT Hub simulator. */
export interface IotHubEvents extends FrontEvents {
  [key: string]: unknown;
  /** `deviceId` is `<deviceId>/<moduleId>` for a module identity. */
  'device-authenticated': { deviceId: string; transport: HubTransport; credential: 'sas' | 'x509' };
  'auth-rejected': { deviceId: string; transport: HubTransport; reason: AuthRejectReason };
  telemetry: {
    deviceId: string;
    transport: HubTransport;
    body: Buffer;
    properties: Record<string, string>;
  };
  /**
   * A connection of the identity now takes C2D messages, desired-property patches, method calls or (a
   * module) input messages.
   */
  listening: {
    deviceId: string;
    transport: HubTransport;
    feature: 'c2d' | 'desired' | 'methods' | 'inputs';
  };
  'c2d-sent': { deviceId: string; transport: string; messageId: string };
  'c2d-settled': { deviceId: string; transport: string; messageId: string; outcome: string };
  /** An input message went to the module `deviceId` (`<d>/<m>`) on `inputName`. */
  'input-sent': { deviceId: string; transport: string; messageId: string; inputName: string };
  /** An input message waited past its route's time-to-live and was dropped. */
  'input-expired': { deviceId: string; messageId: string; inputName: string };
  /** The module settled an input message (AMQP disposition). */
  'input-settled': { deviceId: string; transport: string; messageId: string; outcome: string };
  /**
   * An edge route took a module's message (`deviceId` the sender `<d>/<m>`, `output` its output, if any) to
   * `sink` (`$upstream` or `BrokeredEndpoint("/modules/<m>/inputs/<i>")`).
   */
  'message-routed': {
    deviceId: string;
    output?: string;
    route: string;
    sink: string;
    /** Not delivered: the target module already has the most input messages the lab keeps waiting. */
    dropped?: 'queue-full';
  };
  /** No edge route of the device matched a module's message: edgeHub drops it. */
  'message-unrouted': { deviceId: string; output?: string };
}

export interface IotHubStats {
  [key: string]: unknown;
  devices: number;
  telemetry: number;
  authRejected: number;
  c2dSent: number;
  inputsSent: number;
}

/** Events of the DPS simulator. */
export interface DpsEvents extends FrontEvents {
  [key: string]: unknown;
  'registration-request': { registrationId: string; transport: string; operationId: string };
  'registration-assigned': {
    registrationId: string;
    deviceId: string;
    assignedHub: string;
    transport: string;
    /** initialAssignment, or on reprovisioning to another hub deviceDataMigrated / deviceDataReset. */
    substatus: string;
  };
  'auth-rejected': { registrationId: string; transport: string; reason: AuthRejectReason };
}

export interface DpsStats {
  [key: string]: unknown;
  registrations: number;
  assigned: number;
  authRejected: number;
}
