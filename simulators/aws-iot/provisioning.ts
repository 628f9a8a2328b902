import { randomBytes } from 'node:crypto';
import type { CertificateAuthority } from '../pki/index.js';
import { signCsr } from './csr.js';
import { expandTemplate } from './policy.js';
import type { CertificateRecord, Registry, ThingRecord } from './registry.js';

/**
 * Fleet provisioning by claim over MQTT (AWS IoT developer guide, "Device provisioning MQTT API"):
 *
 *   $aws/certificates/create/json                      {}  → /accepted {certificateId, certificatePem,
 *                                                                      privateKey, certificateOwnershipToken}
 *   $aws/provisioning-templates/<T>/provision/json     {certificateOwnershipToken, parameters}
 *                                                          → /accepted {thingName, deviceConfiguration}
 *   any error                                          → /rejected {statusCode, errorCode, errorMessage}
 */

/** A provisioning template, reduced to what a lab needs. */
export interface ProvisioningTemplate {
  /** e.g. `dev-${SerialNumber}`: placeholders come from the RegisterThing parameters. */
  thingNameTemplate: string;
  /** Returned as `deviceConfiguration` by RegisterThing. */
  deviceConfiguration?: Record<string, string>;
}

export interface ProvisioningReply {
  topic: string;
  payload: Record<string, unknown>;
}

export interface ProvisioningContext {
  registry: Registry;
  /** The region's CA: issues the certificates CreateKeysAndCertificate hands out. */
  issuer: CertificateAuthority | undefined;
  templates: Record<string, ProvisioningTemplate>;
  onCertificateCreated(record: CertificateRecord): void;
  onThingRegistered(thing: ThingRecord): void;
}

const CREATE = /^\$aws\/certificates\/create\/json$/;
const CREATE_FROM_CSR = /^\$aws\/certificates\/create-from-csr\/json$/;
const PROVISION = /^\$aws\/provisioning-templates\/([^/]+)\/provision\/json$/;

function rejected(base: string, statusCode: number, errorCode: string, errorMessage: string) {
  return { topic: `${base}/rejected`, payload: { statusCode, errorCode, errorMessage } };
}

/** Ownership tokens of certificates created and not yet provisioned: token → certificateId. */
export class FleetProvisioning {
  readonly #tokens = new Map<string, string>();

  constructor(private readonly ctx: ProvisioningContext) {}

  /** Whether `topic` is a provisioning request this handler answers. */
  static handles(topic: string): boolean {
    return CREATE.test(topic) || CREATE_FROM_CSR.test(topic) || PROVISION.test(topic);
  }

  async handle(topic: string, payload: Buffer): Promise<ProvisioningReply> {
    let body: Record<string, unknown>;
    try {
      const parsed: unknown = payload.length === 0 ? {} : JSON.parse(payload.toString());
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object');
      body = parsed as Record<string, unknown>;
    } catch {
      return rejected(topic, 400, 'InvalidPayload', 'the payload is not a JSON object');
    }
    if (CREATE.test(topic)) return this.#createKeysAndCertificate(topic);
    if (CREATE_FROM_CSR.test(topic)) return this.#createFromCsr(topic, body);
    const template = PROVISION.exec(topic)?.[1] ?? '';
    return this.#registerThing(topic, template, body);
  }

  async #createKeysAndCertificate(topic: string): Promise<ProvisioningReply> {
    const { issuer } = this.ctx;
    if (!issuer) return rejected(topic, 500, 'InternalFailure', 'this region has no issuing CA configured');
    const cert = await issuer.issueLeaf({ commonName: 'AWS IoT Certificate', usage: 'client' });
    const record = this.#created(cert.certPem);
    const token = this.#tokenFor(record);
    return {
      topic: `${topic}/accepted`,
      payload: {
        certificateId: record.certificateId,
        certificatePem: cert.certPem,
        privateKey: cert.keyPem,
        certificateOwnershipToken: token,
      },
    };
  }

  async #createFromCsr(topic: string, body: Record<string, unknown>): Promise<ProvisioningReply> {
    const { issuer } = this.ctx;
    if (!issuer) return rejected(topic, 500, 'InternalFailure', 'this region has no issuing CA configured');
    const csr = body.certificateSigningRequest;
    if (typeof csr !== 'string') {
      return rejected(topic, 400, 'InvalidPayload', 'certificateSigningRequest (PEM) is required');
    }
    let certificatePem: string;
    try {
      certificatePem = await signCsr(csr, issuer);
    } catch (err) {
      return rejected(topic, 400, 'InvalidCertificateSigningRequest', `bad CSR: ${(err as Error).message}`);
    }
    const record = this.#created(certificatePem);
    return {
      topic: `${topic}/accepted`,
      payload: {
        certificateId: record.certificateId,
        certificatePem,
        certificateOwnershipToken: this.#tokenFor(record),
      },
    };
  }

  #created(certificatePem: string): CertificateRecord {
    const record = this.ctx.registry.addCertificate({
      certificatePem,
      status: 'PENDING_ACTIVATION',
      claim: false,
      origin: 'fleet-provisioning',
    });
    this.ctx.onCertificateCreated(record);
    return record;
  }

  #tokenFor(record: CertificateRecord): string {
    const token = randomBytes(32).toString('base64url');
    this.#tokens.set(token, record.certificateId);
    return token;
  }

  #registerThing(topic: string, name: string, body: Record<string, unknown>): ProvisioningReply {
    const template = this.ctx.templates[name];
    if (!template) return rejected(topic, 404, 'ResourceNotFound', `provisioning template ${name} not found`);
    const token = body.certificateOwnershipToken;
    const certificateId = typeof token === 'string' ? this.#tokens.get(token) : undefined;
    const record = certificateId ? this.ctx.registry.certificates.get(certificateId) : undefined;
    if (!record || typeof token !== 'string') {
      return rejected(
        topic,
        400,
        'InvalidCertificateOwnershipToken',
        'unknown or used certificate ownership token',
      );
    }
    const raw = body.parameters ?? {};
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      return rejected(topic, 400, 'InvalidPayload', 'parameters must be an object of strings');
    }
    const parameters = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, String(v)]));
    const thingName = expandTemplate(template.thingNameTemplate, parameters);
    if (thingName === undefined || thingName === '') {
      return rejected(
        topic,
        400,
        'InvalidParameters',
        `the template ${name} needs parameters for ${template.thingNameTemplate}`,
      );
    }
    this.#tokens.delete(token);
    record.status = 'ACTIVE';
    record.thingName = thingName;
    const thing: ThingRecord = {
      thingName,
      certificateId: record.certificateId,
      attributes: parameters,
      template: name,
    };
    this.ctx.registry.things.set(thingName, thing);
    this.ctx.onThingRegistered(thing);
    return {
      topic: `${topic}/accepted`,
      payload: { thingName, deviceConfiguration: template.deviceConfiguration ?? {} },
    };
  }
}
