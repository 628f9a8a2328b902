import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { dnAttributes, dnLabel, peerChain } from '../common/x509.js';
import { expandTemplate } from './policy.js';
import type { CaRecord, CertificateRecord, Registry, ThingRecord } from './registry.js';

/**
 * Just-in-time provisioning (AWS IoT developer guide, "Just-in-time provisioning" and "Register a client
 * certificate when the client connects to AWS IoT just-in-time registration (JITR)"):
 *
 *   device ──TLS: device certificate + CA certificate──▶ region
 *     issued by a CA registered here with auto-registration?  no ─▶ unknown certificate (dropped)
 *     the CA certificate in the chain the device presented?   no ─▶ dropped, nothing registered
 *     certificate registered PENDING_ACTIVATION ─▶ $aws/events/certificates/registered/<caCertificateId>
 *     the CA's provisioning template: thing, policy, certificate ACTIVE ─▶ this connection dropped
 *   retry ──▶ an ACTIVE certificate of a thing: CONNACK
 */

/** The parts of a JITP provisioning template a lab needs (`registrationConfig` of RegisterCACertificate). */
export interface JitpTemplate {
  templateName: string;
  /**
   * The thing name, from the certificate: `${AWS::IoT::Certificate::CommonName}` (or the short
   * `${CommonName}`), `...::SerialNumber`, `...::Id` (the certificateId), `...::Country`, `...::Organization`.
   */
  thingNameTemplate: string;
  /** The policy the template creates and attaches (the persona enforces its fixed thing policy). */
  policyName: string;
}

/** The message AWS IoT publishes on `$aws/events/certificates/registered/<caCertificateId>`. */
export interface CertificateRegisteredMessage {
  certificateId: string;
  caCertificateId: string;
  /** Epoch milliseconds (a number in AWS's message). */
  timestamp: number;
  certificateStatus: 'PENDING_ACTIVATION';
  awsAccountId: string;
  /** Epoch milliseconds as a string, as in AWS's message. */
  certificateRegistrationTimestamp: string;
}

export function registeredEventTopic(caCertificateId: string): string {
  return `$aws/events/certificates/registered/${caCertificateId}`;
}

export interface JitpContext {
  registry: Registry;
  awsAccountId: string;
  /** Publishes an account event on the region's broker (QoS 0). */
  publish(topic: string, payload: string): Promise<void>;
  onCertificateCreated(record: CertificateRecord): void;
  onRegisteredEvent(topic: string, message: CertificateRegisteredMessage): void;
  onThingRegistered(thing: ThingRecord): void;
  onProvisioned(p: {
    certificateId: string;
    thingName: string;
    caCertificateId: string;
    policyName: string;
  }): void;
}

export type JitpOutcome =
  /** Registered and provisioned; the connection that triggered it is still dropped. */
  | { kind: 'provisioned'; record: CertificateRecord; thingName: string }
  /** Nothing provisioned: why (the connection is dropped). */
  | { kind: 'refused'; reason: string; certificateId?: string };

/** Whether the chain the client presented (leaf first) carries the CA certificate itself. */
export function presentedCa(peer: PeerCertificate, ca: CaRecord): boolean {
  return peerChain(peer)
    .slice(1)
    .some((c) => c.raw.equals(ca.x509.raw));
}

/** The template's certificate parameters (AWS::IoT::Certificate::*), with the short names the lab also takes. */
function certificateParameters(x509: X509Certificate, certificateId: string): Record<string, string> {
  const subject = dnAttributes(x509.subject);
  const short: Record<string, string | undefined> = {
    CommonName: subject.get('CN'),
    SerialNumber: x509.serialNumber,
    Id: certificateId,
    CertificateId: certificateId,
    Country: subject.get('C'),
    Organization: subject.get('O'),
    OrganizationalUnit: subject.get('OU'),
    StateName: subject.get('ST'),
    Locality: subject.get('L'),
  };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(short)) {
    if (v === undefined) continue;
    out[k] = v;
    out[`AWS::IoT::Certificate::${k}`] = v;
  }
  return out;
}

export class JustInTimeProvisioning {
  constructor(private readonly ctx: JitpContext) {}

  /**
   * The first connection of a certificate issued by `ca` (registered here with auto-registration):
   * registers it, publishes the registration event and runs the CA's template.
   */
  async provision(
    peer: PeerCertificate,
    pem: string,
    ca: CaRecord,
    template: JitpTemplate,
  ): Promise<JitpOutcome> {
    // JITR guide, "Configure the first connection by a client for automatic registration": the client must
    // present "both your registered CA certificate and the client certificate signed by your CA certificate".
    if (!presentedCa(peer, ca)) {
      return {
        kind: 'refused',
        reason:
          `issued by the registered CA ${dnLabel(ca.x509.subject)} but presented without it: the first connection ` +
          'must present the device certificate followed by the CA certificate (cat device.pem ca.pem)',
      };
    }
    const x509 = new X509Certificate(pem);
    const registeredAt = Date.now();
    const record = this.ctx.registry.addCertificate({
      certificatePem: pem,
      status: 'PENDING_ACTIVATION',
      claim: false,
      origin: 'jitp',
    });
    this.ctx.onCertificateCreated(record);
    const message: CertificateRegisteredMessage = {
      certificateId: record.certificateId,
      caCertificateId: ca.certificateId,
      timestamp: Date.now(),
      certificateStatus: 'PENDING_ACTIVATION',
      awsAccountId: this.ctx.awsAccountId,
      certificateRegistrationTimestamp: String(registeredAt),
    };
    const topic = registeredEventTopic(ca.certificateId);
    this.ctx.onRegisteredEvent(topic, message);
    await this.ctx.publish(topic, JSON.stringify(message));

    const thingName = expandTemplate(
      template.thingNameTemplate,
      certificateParameters(x509, record.certificateId),
    );
    if (thingName === undefined || thingName === '') {
      // The template failed: the certificate stays PENDING_ACTIVATION, as after a failed provisioning.
      return {
        kind: 'refused',
        certificateId: record.certificateId,
        reason: `the JITP template ${template.templateName} could not name the thing (${template.thingNameTemplate}) from this certificate`,
      };
    }
    record.status = 'ACTIVE';
    record.thingName = thingName;
    const thing: ThingRecord = {
      thingName,
      certificateId: record.certificateId,
      attributes: {},
      template: template.templateName,
    };
    this.ctx.registry.things.set(thingName, thing);
    this.ctx.onThingRegistered(thing);
    this.ctx.onProvisioned({
      certificateId: record.certificateId,
      thingName,
      caCertificateId: ca.certificateId,
      policyName: template.policyName,
    });
    return { kind: 'provisioned', record, thingName };
  }
}
