/**
 * AWS IoT Core persona (one instance per lab "region") on the lab MQTT broker:
 *
 *   device ──mTLS (ALPN x-amzn-mqtt-ca)──▶ broker ──hooks──▶ registry (CAs, certificates, things)
 *                                                   ├── policy: things/<thing>/..., $aws/things/<thing>/...
 *                                                   └── fleet provisioning by claim, JITP
 *
 * A client certificate is accepted when it is registered and ACTIVE. One issued by a registered CA with
 * auto-registration is registered on first use (JITP) and that connection is dropped; the next succeeds.
 * Anything else is dropped without a CONNACK, as AWS IoT does.
 */
import { z } from 'zod';
import { FieldlabError } from '../common/errors.js';
import { SimulatorEvents } from '../common/events.js';
import type { Endpoint, SimulatorHandle } from '../common/handle.js';
import { hostPort } from '../common/net.js';
import { parseOptions } from '../common/options.js';
import { startTlsFront, type TlsFront, type TlsFrontEvents } from '../common/tls-front.js';
import {
  type ClientInfo,
  type ConnectRefusal,
  type DirectDelivery,
  type MqttBrokerEvents,
  type MqttBrokerHandle,
  start as startBroker,
} from '../mqtt-broker/index.js';
import type { CertificateAuthority } from '../pki/index.js';
import { type CertificateRegisteredMessage, JustInTimeProvisioning } from './jitp.js';
import { mayPublish, maySubscribe, type Principal } from './policy.js';
import { FleetProvisioning, type ProvisioningTemplate } from './provisioning.js';
import {
  type CertificateRecord,
  type CertificateStatus,
  certificateIdOf,
  Registry,
  type ThingRecord,
} from './registry.js';

export type { CertificateRegisteredMessage, JitpTemplate } from './jitp.js';
export { registeredEventTopic } from './jitp.js';
export type { ProvisioningTemplate } from './provisioning.js';
export type { CertificateRecord, CertificateStatus, ThingRecord } from './registry.js';

/**
 * AWS IoT Core's message broker limits as it documents them (AWS IoT Core endpoints and quotas, message
 * broker): 100 unacknowledged outbound QoS 1 messages per client (and 100 inbound, its CONNACK Receive
 * Maximum), and 8 topic aliases per connection.
 */
const AWS_MQTT_LIMITS = {
  receiveMaximum: 100,
  topicAliasMaximum: 8,
  outboundInflightMaximum: 100,
  outboundTopicAliasMaximum: 8,
};

const statusSchema = z.enum(['ACTIVE', 'INACTIVE', 'REVOKED', 'PENDING_ACTIVATION']);
const templateSchema = z
  .object({
    thingNameTemplate: z.string().min(1),
    deviceConfiguration: z.record(z.string(), z.string()).optional(),
  })
  .strict();

export const awsIotOptionsSchema = z
  .object({
    name: z.string().default('aws-iot'),
    region: z.string().default('us-east-1'),
    /** The account id in account-level messages (`awsAccountId` of the certificate registration event). */
    awsAccountId: z
      .string()
      .regex(/^\d{12}$/, 'an AWS account id is 12 digits')
      .default('123456789012'),
    host: z.string().default('127.0.0.1'),
    /** mqtts (8883- or 443-style) and wss (443) listeners. */
    listeners: z
      .array(
        z.object({ protocol: z.enum(['mqtts', 'wss']), port: z.number().int().min(0).max(65535).default(0) }),
      )
      .min(1)
      .default([{ protocol: 'mqtts', port: 0 }]),
    /** The endpoint's server certificate (chain) and key, e.g. from `pki.issueServer(['localhost'])`. */
    tls: z.object({ certPem: z.string(), keyPem: z.string() }).strict(),
    /**
     * This region's own endpoint name (the `iot:Data-ATS` endpoint a domain's DNS record points at), as
     * `domain-connection` events report it. Default: `host`.
     */
    endpoint: z.string().min(1).optional(),
    /**
     * Domain configurations (configurable endpoints with a custom domain): the server certificate for
     * each domain name, chosen by the name the device sends (SNI), as AWS IoT does. A device that sends
     * another name (or none) gets `tls`, the region's own certificate.
     */
    domainConfigurations: z
      .array(
        z
          .object({
            domainName: z.string().min(1),
            certPem: z.string().min(1),
            keyPem: z.string().min(1),
          })
          .strict(),
      )
      .default([]),
    /** Drop TLS connections that did not negotiate ALPN `x-amzn-mqtt-ca` (MQTT on port 443). */
    requireAlpn: z.boolean().default(false),
    /**
     * A client's TLS max_fragment_length extension (RFC 6066 §4) on the mqtts listeners: `honour` (Node's
     * TLS server: echoed, records kept to it) or `ignore`, as AWS IoT Core does (not echoed, records of up to
     * 16 KB; Device Advisor's "TLS Receive Maximum Size Fragments"). `ignore` serves them through
     * fieldlab-tls-front (Go's crypto/tls), which must be built (scripts/build-tls-front.sh).
     */
    maxFragmentLength: z.enum(['honour', 'ignore']).default('honour'),
    /** The region's CA: issues the certificates of fleet provisioning (CreateKeysAndCertificate). */
    issuer: z
      .custom<CertificateAuthority>(
        (v) => typeof v === 'object' && v !== null && 'issueLeaf' in v,
        'expected a CertificateAuthority (pki)',
      )
      .optional(),
    certificates: z
      .array(
        z
          .object({
            pem: z.string(),
            thingName: z.string().optional(),
            status: statusSchema.default('ACTIVE'),
            claim: z.boolean().default(false),
            /** May subscribe to `$aws/events/...` (e.g. the certificate registration events of JITP). */
            accountEvents: z.boolean().default(false),
          })
          .strict(),
      )
      .default([]),
    cas: z
      .array(
        z
          .object({
            pem: z.string(),
            autoRegistration: z.boolean().default(false),
            thingNameTemplate: z.string().default('${CommonName}'),
            templateName: z.string().min(1).default('JITPTemplate'),
            policyName: z.string().min(1).default('JITPPolicy'),
          })
          .strict(),
      )
      .default([]),
    /** Fleet provisioning templates by name. */
    templates: z.record(z.string(), templateSchema).default({}),
  })
  .strict();

export type AwsIotOptions = z.input<typeof awsIotOptionsSchema>;

export interface AwsIotEvents extends MqttBrokerEvents {
  /** A connection through the TLS front (`maxFragmentLength: ignore`) closed: the MFL asked, the records sent. */
  'tls-front': TlsFrontEvents['tls-front'];
  'tls-front-exit': TlsFrontEvents['tls-front-exit'];
  'certificate-created': {
    certificateId: string;
    origin: CertificateRecord['origin'];
    status: CertificateStatus;
  };
  'thing-registered': { thingName: string; certificateId: string; template?: string };
  /** JITP done: the template created the thing, attached the policy and activated the certificate. */
  'jitp-registered': {
    certificateId: string;
    thingName: string;
    caCertificateId: string;
    policyName: string;
  };
  /** The account event published on `topic` (`$aws/events/certificates/registered/<caCertificateId>`). */
  'certificate-registered': CertificateRegisteredMessage & { topic: string };
  'policy-denied': {
    clientId: string;
    thingName?: string;
    action: 'publish' | 'subscribe';
    topic: string;
  };
  /**
   * A device's CONNECT, with the name it asked for (TLS SNI): `domainName` is the domain configuration
   * that served it (undefined: the region's own certificate). With `endpoint` and `region` it says which
   * region a global name sent the device to.
   */
  'domain-connection': {
    clientId: string;
    servername?: string;
    domainName?: string;
    region: string;
    endpoint: string;
  };
  /** A connection refused at authentication (TLS kept, dropped before CONNACK). */
  'auth-denied': { clientId: string; certificateId?: string; reason: string };
  /**
   * A fleet provisioning answer, sent to the connection that asked only. `delivery` says whether it got
   * there: `not-subscribed` (the device published before subscribing to the reply topic, a classic field
   * bug) or `not-connected` (that connection closed first) mean the device never sees it.
   */
  'provisioning-reply': { clientId: string; topic: string; delivery: DirectDelivery };
}

export interface AwsIotStats {
  [key: string]: unknown;
  things: number;
  certificates: number;
  policyDenied: number;
  authDenied: number;
  broker: ReturnType<MqttBrokerHandle['stats']>;
}

export interface AwsIotHandle extends SimulatorHandle<AwsIotEvents, AwsIotStats> {
  readonly region: string;
  /** The broker underneath (for faults, `publish`...). */
  readonly broker: MqttBrokerHandle;
  /** Registers a device certificate (RegisterCertificateWithoutCA); returns its certificateId. */
  registerCertificate(
    pem: string,
    opts?: { thingName?: string; status?: CertificateStatus; claim?: boolean; accountEvents?: boolean },
  ): string;
  /** Registers a CA certificate (RegisterCACertificate); with autoRegistration its devices get JITP. */
  registerCa(
    pem: string,
    opts?: {
      autoRegistration?: boolean;
      thingNameTemplate?: string;
      templateName?: string;
      policyName?: string;
    },
  ): string;
  /** UpdateCertificate: changes a certificate's status. */
  setCertificateStatus(certificateId: string, status: CertificateStatus): void;
  things(): ThingRecord[];
  certificates(): CertificateRecord[];
  /** The fieldlab-tls-front processes serving the mqtts listeners (`maxFragmentLength: ignore`). */
  readonly frontPids: readonly number[];
}

export async function start(options: AwsIotOptions): Promise<AwsIotHandle> {
  const opts = parseOptions(awsIotOptionsSchema, options, 'aws-iot');
  const events = new SimulatorEvents<AwsIotEvents>(opts.name);
  const registry = new Registry();
  const counts = { policyDenied: 0, authDenied: 0 };

  const registerCertificate: AwsIotHandle['registerCertificate'] = (pem, o = {}) => {
    let rec: CertificateRecord;
    try {
      rec = registry.addCertificate({
        certificatePem: pem,
        status: o.status ?? 'ACTIVE',
        claim: o.claim ?? false,
        origin: 'registered',
        ...(o.accountEvents ? { accountEvents: true } : {}),
        ...(o.thingName !== undefined ? { thingName: o.thingName } : {}),
      });
    } catch (err) {
      throw new FieldlabError('E_BAD_CERTIFICATE', `${opts.name}: not a PEM certificate`, {
        hint: 'pass the device certificate PEM (certPem of a pki leaf)',
        cause: err,
      });
    }
    if (o.thingName !== undefined && !registry.things.has(o.thingName)) {
      registry.things.set(o.thingName, {
        thingName: o.thingName,
        certificateId: rec.certificateId,
        attributes: {},
      });
    }
    return rec.certificateId;
  };
  const registerCa: AwsIotHandle['registerCa'] = (pem, o = {}) => {
    try {
      return registry.addCa(pem, {
        autoRegistration: o.autoRegistration ?? false,
        thingNameTemplate: o.thingNameTemplate ?? '${CommonName}',
        templateName: o.templateName ?? 'JITPTemplate',
        policyName: o.policyName ?? 'JITPPolicy',
      }).certificateId;
    } catch (err) {
      throw new FieldlabError('E_BAD_CERTIFICATE', `${opts.name}: not a PEM CA certificate`, {
        hint: 'pass the CA certificate PEM (certPem of a pki CertificateAuthority)',
        cause: err,
      });
    }
  };
  for (const c of opts.certificates) registerCertificate(c.pem, c);
  for (const ca of opts.cas) registerCa(ca.pem, ca);

  const provisioning = new FleetProvisioning({
    registry,
    issuer: opts.issuer,
    templates: opts.templates as Record<string, ProvisioningTemplate>,
    onCertificateCreated: (r) =>
      events.emitEvent('certificate-created', {
        certificateId: r.certificateId,
        origin: r.origin,
        status: r.status,
      }),
    onThingRegistered: (t) =>
      events.emitEvent('thing-registered', {
        thingName: t.thingName,
        certificateId: t.certificateId,
        ...(t.template !== undefined ? { template: t.template } : {}),
      }),
  });

  let broker: MqttBrokerHandle | undefined;
  const jitp = new JustInTimeProvisioning({
    registry,
    awsAccountId: opts.awsAccountId,
    publish: async (topic, payload) => broker?.publish(topic, payload, 0),
    onCertificateCreated: (r) =>
      events.emitEvent('certificate-created', {
        certificateId: r.certificateId,
        origin: r.origin,
        status: r.status,
      }),
    onRegisteredEvent: (topic, message) => events.emitEvent('certificate-registered', { topic, ...message }),
    onThingRegistered: (t) =>
      events.emitEvent('thing-registered', {
        thingName: t.thingName,
        certificateId: t.certificateId,
        ...(t.template !== undefined ? { template: t.template } : {}),
      }),
    onProvisioned: (p) => events.emitEvent('jitp-registered', p),
  });

  const refuse = (client: ClientInfo, reason: string, certificateId?: string): ConnectRefusal => {
    counts.authDenied++;
    events.emitEvent('auth-denied', {
      clientId: client.clientId,
      reason,
      ...(certificateId !== undefined ? { certificateId } : {}),
    });
    return { returnCode: 5, reason, drop: true };
  };

  const domains = new Map(opts.domainConfigurations.map((d) => [d.domainName.toLowerCase(), d.domainName]));
  const authenticate = async (client: ClientInfo): Promise<true | ConnectRefusal> => {
    const domainName = client.servername ? domains.get(client.servername.toLowerCase()) : undefined;
    events.emitEvent('domain-connection', {
      clientId: client.clientId,
      ...(client.servername !== undefined ? { servername: client.servername } : {}),
      ...(domainName !== undefined ? { domainName } : {}),
      region: opts.region,
      endpoint: opts.endpoint ?? opts.host,
    });
    if (opts.requireAlpn && client.alpn !== 'x-amzn-mqtt-ca') {
      return refuse(client, `ALPN ${client.alpn ?? '(none)'} is not x-amzn-mqtt-ca`);
    }
    const peer = client.peerCertificate;
    if (!peer?.raw) return refuse(client, 'no client certificate');
    const verdict = registry.verify(peer);
    if (verdict.kind === 'unknown') return refuse(client, verdict.reason);
    if (verdict.kind === 'auto-register') {
      // "The first connection attempt fails": the connection that triggered JITP is dropped either way.
      const { ca } = verdict;
      const outcome = await jitp.provision(verdict.peer, verdict.pem, ca, ca);
      if (outcome.kind === 'refused') return refuse(client, outcome.reason, outcome.certificateId);
      return refuse(client, 'certificate registered by JITP: reconnect', outcome.record.certificateId);
    }
    const rec = verdict.record;
    if (rec.status !== 'ACTIVE') return refuse(client, `certificate is ${rec.status}`, rec.certificateId);
    return true;
  };

  // What the connection's certificate allows, looked up per packet (a status change applies at once).
  const principalOf = (client: ClientInfo): Principal => {
    const raw = client.peerCertificate?.raw;
    const rec = raw ? registry.certificates.get(certificateIdOf(raw)) : undefined;
    if (rec?.status !== 'ACTIVE') return { claim: false };
    return {
      claim: rec.claim,
      ...(rec.thingName !== undefined ? { thingName: rec.thingName } : {}),
      ...(rec.accountEvents ? { accountEvents: true } : {}),
    };
  };
  const denied = (client: ClientInfo, action: 'publish' | 'subscribe', topic: string) => {
    counts.policyDenied++;
    const p = principalOf(client);
    events.emitEvent('policy-denied', {
      clientId: client.clientId,
      action,
      topic,
      ...(p.thingName !== undefined ? { thingName: p.thingName } : {}),
    });
  };

  // maxFragmentLength ignore: each mqtts listener becomes a plain one behind a TLS front (see tls-front.ts).
  const fronted = opts.maxFragmentLength === 'ignore';
  broker = await startBroker({
    name: opts.name,
    host: opts.host,
    listeners: opts.listeners.map((l) =>
      fronted && l.protocol === 'mqtts' ? { protocol: 'mqtt' as const, port: 0, proxyProtocol: true } : l,
    ),
    limits: AWS_MQTT_LIMITS,
    tls: {
      certPem: opts.tls.certPem,
      keyPem: opts.tls.keyPem,
      requestCert: true,
      alpn: ['x-amzn-mqtt-ca', 'mqtt'],
      sni: opts.domainConfigurations.map((d) => ({
        servername: d.domainName,
        certPem: d.certPem,
        keyPem: d.keyPem,
      })),
    },
    hooks: {
      authenticate: (client) => authenticate(client),
      // A denied PUBLISH disconnects an MQTT 3.1.1 client, as AWS IoT does; an MQTT 5 client gets PUBACK
      // 0x87 Not authorized (QoS 1) and keeps its connection (see mqtt-broker/hooks.ts).
      authorizePublish: async (client, topic) => {
        const ok = mayPublish(principalOf(client), topic);
        if (!ok) denied(client, 'publish', topic);
        return ok;
      },
      authorizeSubscribe: async (client, topic) => {
        const ok = maySubscribe(principalOf(client), topic);
        if (!ok) denied(client, 'subscribe', topic);
        return ok;
      },
      onPublish: async (client, topic, payload) => {
        if (!FleetProvisioning.handles(topic) || !broker) return;
        const reply = await provisioning.handle(topic, payload);
        // "IoT Core Fleet Provisioning returns the device provisioning MQTT API results through the same
        // MQTT connection used to publish the API request" (developer guide, Device provisioning MQTT API):
        // never to the other devices subscribed to the reply topic with the same claim, nor to a later
        // connection with this client id. QoS 1, downgraded to the subscription's granted QoS.
        const delivery = await broker.publishTo(
          client.connection,
          reply.topic,
          JSON.stringify(reply.payload),
          1,
        );
        events.emitEvent('provisioning-reply', { clientId: client.clientId, topic: reply.topic, delivery });
      },
    },
  });
  const b = broker;
  // Relay the broker's events (connection, closed, tls-client-error, publish...) under this persona.
  b.events.onAny((e) => events.emitEvent(e.type as keyof AwsIotEvents & string, e.data as never));

  const fronts: TlsFront[] = [];
  const endpoints: Endpoint[] = [];
  try {
    for (const [i, l] of opts.listeners.entries()) {
      const inner = b.endpoints[i]!;
      if (!fronted || l.protocol !== 'mqtts') {
        endpoints.push({ ...inner });
        continue;
      }
      const front = await startTlsFront(opts.name, events, {
        host: opts.host,
        port: l.port,
        upstream: { host: inner.host, port: inner.port },
        certPem: opts.tls.certPem,
        keyPem: opts.tls.keyPem,
        sni: opts.domainConfigurations.map((d) => ({
          servername: d.domainName,
          certPem: d.certPem,
          keyPem: d.keyPem,
        })),
        alpn: ['x-amzn-mqtt-ca', 'mqtt'],
        transport: 'mqtts',
      });
      fronts.push(front);
      endpoints.push({
        name: 'mqtts',
        host: opts.host,
        port: front.port,
        protocol: 'mqtts',
        url: `mqtts://${hostPort(opts.host, front.port)}`,
      });
    }
  } catch (err) {
    await Promise.all(fronts.map((f) => f.stop()));
    await b.stop();
    throw err;
  }
  return {
    name: opts.name,
    region: opts.region,
    endpoints,
    events,
    broker: b,
    frontPids: fronts.map((f) => f.pid),
    registerCertificate,
    registerCa,
    setCertificateStatus(certificateId, status) {
      const rec = registry.certificates.get(certificateId);
      if (!rec) {
        throw new FieldlabError('E_NOT_FOUND', `${opts.name}: no certificate ${certificateId}`, {
          hint: 'use a certificateId returned by registerCertificate() or listed by certificates()',
        });
      }
      rec.status = statusSchema.parse(status);
    },
    things: () => [...registry.things.values()].map((t) => ({ ...t, attributes: { ...t.attributes } })),
    certificates: () => [...registry.certificates.values()].map((c) => ({ ...c })),
    stats: () => ({
      things: registry.things.size,
      certificates: registry.certificates.size,
      ...counts,
      broker: b.stats(),
    }),
    stop: async () => {
      await Promise.all(fronts.map((f) => f.stop()));
      await b.stop();
    },
  };
}

export { certificateIdOf };
