/**
 * Fleet provisioning answers go to the connection that asked, and to no other (issue 13, point 1).
 * "IoT Core Fleet Provisioning returns the device provisioning MQTT API results through the same MQTT
 * connection used to publish the API request" (AWS IoT developer guide, Device provisioning MQTT API).
 * A factory line provisions many devices at once with one claim certificate: every one of them subscribes
 * to the same reply topics, and each answer carries a private key.
 */

import type { webcrypto } from 'node:crypto';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { iotidentity, mqtt } from 'aws-iot-device-sdk-v2';
import mqttjs from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AwsIotEvents, type AwsIotHandle, start } from '../../simulators/aws-iot/index.js';
import { endpointOf } from '../../simulators/common/handle.js';
import { crypto, x509 } from '../../simulators/pki/crypto.js';
import type { CertificateAuthority, IssuedCertFiles, PkiHandle } from '../../simulators/pki/index.js';
import { start as startPki } from '../../simulators/pki/index.js';
import { within } from '../helpers/within.js';
import { deferred, sdkMtlsConnection } from './helpers.js';

const QOS = mqtt.QoS.AtLeastOnce;
const TEMPLATE = 'FleetTemplate';
const CREATE = '$aws/certificates/create/json';
const CREATE_CSR = '$aws/certificates/create-from-csr/json';
const PROVISION = `$aws/provisioning-templates/${TEMPLATE}/provision/json`;

let pki: PkiHandle;
let server: IssuedCertFiles;
let regionCa: CertificateAuthority;
let claim: IssuedCertFiles;
let aws: AwsIotHandle | undefined;
const sdkConnections: mqtt.MqttClientConnection[] = [];
const jsClients: mqttjs.MqttClient[] = [];

beforeAll(async () => {
  pki = await startPki({ name: 'pki' });
  server = await pki.issueServer(['localhost']);
  regionCa = await pki.createAuthority('fieldlab us-east-1 Device CA');
  claim = await pki.issueClient('factory-claim');
});
afterAll(() => pki.stop());
afterEach(async () => {
  await Promise.all([
    ...sdkConnections.splice(0).map((c) => within(c.disconnect(), 2000, 'disconnect').catch(() => undefined)),
    ...jsClients.splice(0).map((c) => c.endAsync(true)),
  ]);
  await aws?.stop();
  aws = undefined;
});

async function startAws(issuer: CertificateAuthority = regionCa): Promise<AwsIotHandle> {
  aws = await start({
    name: 'aws-us-east-1',
    tls: { certPem: server.chainPem, keyPem: server.keyPem },
    issuer,
    templates: { [TEMPLATE]: { thingNameTemplate: 'dev-${SerialNumber}' } },
  });
  aws.registerCertificate(claim.certPem, { claim: true });
  return aws;
}

/** A claim connection with aws-iot-device-sdk-v2 (MQTT 3.1.1, mTLS, the lab root as CA). */
async function sdkClaimConnection(port: number, clientId: string): Promise<mqtt.MqttClientConnection> {
  const conn = sdkMtlsConnection(pki.root.certPem, port, clientId, claim.chainPem, claim.keyPem);
  sdkConnections.push(conn);
  await within(conn.connect(), 10_000, `${clientId} connect`);
  return conn;
}

/** A claim connection with MQTT.js that records every message it receives. */
async function jsClaimClient(port: number, clientId: string) {
  const client = await mqttjs.connectAsync(`mqtts://localhost:${port}`, {
    ca: [pki.root.certPem],
    cert: claim.chainPem,
    key: claim.keyPem,
    clientId,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
  jsClients.push(client);
  const received: Array<{ topic: string; body: Record<string, unknown> }> = [];
  client.on('message', (topic, payload) => received.push({ topic, body: JSON.parse(payload.toString()) }));
  return { client, received };
}

/** Resolves with the first message matching `filter` (an exact topic) on an MQTT.js client; bounded. */
function nextMessage(client: mqttjs.MqttClient, topic: string, what: string) {
  return within(
    new Promise<Record<string, unknown>>((resolve) => {
      const onMessage = (t: string, p: Buffer) => {
        if (t !== topic) return;
        client.off('message', onMessage);
        resolve(JSON.parse(p.toString()));
      };
      client.on('message', onMessage);
    }),
    10_000,
    what,
  );
}

/** The first event of `type` matching `pick`; bounded. */
function nextEvent<K extends keyof AwsIotEvents & string>(
  a: AwsIotHandle,
  type: K,
  pick: (e: AwsIotEvents[K]) => boolean,
): Promise<AwsIotEvents[K]> {
  return within(
    new Promise<AwsIotEvents[K]>((resolve) =>
      a.events.onAny((e) => {
        if (e.type === type && pick(e.data as AwsIotEvents[K])) resolve(e.data as AwsIotEvents[K]);
      }),
    ),
    10_000,
    `event ${type}`,
  );
}

/**
 * A factory-line device with the SDK's IotIdentityClient: every answer its subscriptions receive is
 * recorded (the SDK calls the handler once per PUBLISH), the first one settles the step.
 */
async function factoryDevice(port: number, index: number) {
  const identity = new iotidentity.IotIdentityClient(await sdkClaimConnection(port, `factory-${index}`));
  const seen = {
    created: [] as iotidentity.model.CreateKeysAndCertificateResponse[],
    registered: [] as iotidentity.model.RegisterThingResponse[],
    refused: [] as iotidentity.model.ErrorResponse[],
    other: [] as string[],
  };
  const created = deferred<iotidentity.model.CreateKeysAndCertificateResponse>();
  const registered = deferred<iotidentity.model.RegisterThingResponse>();
  const refused = deferred<iotidentity.model.ErrorResponse>();
  // The subscribe calls resolve on SUBACK, so no request below can outrun its reply topics.
  await identity.subscribeToCreateKeysAndCertificateAccepted({}, QOS, (err, res) => {
    if (err || !res) return created.reject(err);
    seen.created.push(res);
    created.resolve(res);
  });
  await identity.subscribeToCreateKeysAndCertificateRejected({}, QOS, (_e, res) => {
    seen.other.push(`create rejected ${JSON.stringify(res)}`);
    created.reject(new Error(`create rejected: ${JSON.stringify(res)}`));
  });
  await identity.subscribeToRegisterThingAccepted({ templateName: TEMPLATE }, QOS, (err, res) => {
    if (err || !res) return registered.reject(err);
    seen.registered.push(res);
    registered.resolve(res);
  });
  await identity.subscribeToRegisterThingRejected({ templateName: TEMPLATE }, QOS, (_e, res) => {
    if (res) seen.refused.push(res);
    refused.resolve(res ?? {});
  });
  const serial = `f${index}`;
  return {
    serial,
    seen,
    /** CreateKeysAndCertificate then RegisterThing, as the SDK's fleet provisioning sample runs them. */
    async provision() {
      await identity.publishCreateKeysAndCertificate({}, QOS);
      const keys = await within(created.promise, 15_000, `${serial} CreateKeysAndCertificate`);
      await identity.publishRegisterThing(
        {
          templateName: TEMPLATE,
          certificateOwnershipToken: keys.certificateOwnershipToken!,
          parameters: { SerialNumber: serial },
        },
        QOS,
      );
      const thing = await within(registered.promise, 15_000, `${serial} RegisterThing`);
      return { keys, thing };
    },
    /**
     * A request that only this device's connection may see answered (a made-up ownership token): once its
     * rejection arrives, anything the service sent this connection before it has arrived too.
     */
    async barrier() {
      await identity.publishRegisterThing(
        { templateName: TEMPLATE, certificateOwnershipToken: `not-a-token-${serial}`, parameters: {} },
        QOS,
      );
      return within(refused.promise, 10_000, `${serial} barrier`);
    },
  };
}

/** A spy with the same claim, subscribed to every reply topic of the provisioning API. */
async function claimSpy(port: number) {
  const spy = await jsClaimClient(port, 'spy');
  await spy.client.subscribeAsync(
    [
      `${CREATE}/+`,
      `${CREATE_CSR}/+`,
      `${PROVISION}/+`,
      '$aws/provisioning-templates/Nope/provision/json/rejected',
    ],
    { qos: 1 },
  );
  return {
    received: spy.received,
    /** The spy's own request (an unknown template): its answer comes after anything sent to it before. */
    async barrier() {
      const answer = nextMessage(
        spy.client,
        '$aws/provisioning-templates/Nope/provision/json/rejected',
        'spy barrier',
      );
      await spy.client.publishAsync('$aws/provisioning-templates/Nope/provision/json', '{}', { qos: 1 });
      return answer;
    },
  };
}

describe('fleet provisioning answers go to the asking connection only', () => {
  it('four devices provisioning at once with one claim each get their own certificate, once; a spy with the claim sees none', async () => {
    const a = await startAws();
    const port = endpointOf(a, 'mqtts').port;
    const spy = await claimSpy(port);
    const devices = await Promise.all([0, 1, 2, 3].map((i) => factoryDevice(port, i)));

    const results = await Promise.all(devices.map((d) => d.provision()));
    await Promise.all(devices.map((d) => d.barrier()));
    await spy.barrier();

    // Every device got exactly one answer per request: its own.
    for (const d of devices) {
      expect(d.seen.created).toHaveLength(1);
      expect(d.seen.registered).toHaveLength(1);
      expect(d.seen.refused).toHaveLength(1);
      expect(d.seen.refused[0]).toMatchObject({ errorCode: 'InvalidCertificateOwnershipToken' });
      expect(d.seen.other).toEqual([]);
    }
    // Four distinct certificates and keys, each key the one of its certificate.
    const ids = results.map((r) => r.keys.certificateId);
    expect(new Set(ids).size).toBe(4);
    expect(new Set(results.map((r) => r.keys.privateKey)).size).toBe(4);
    for (const r of results) {
      expect(
        new X509Certificate(r.keys.certificatePem!).checkPrivateKey(createPrivateKey(r.keys.privateKey!)),
      ).toBe(true);
    }
    // Each device's thing is bound to the certificate that device received.
    expect(results.map((r) => r.thing.thingName)).toEqual(devices.map((d) => `dev-${d.serial}`));
    const things = new Map(a.things().map((t) => [t.thingName, t.certificateId]));
    expect(devices.map((d) => things.get(`dev-${d.serial}`))).toEqual(ids);

    // The spy, authenticated with the same claim and subscribed to every reply topic, saw only its own answer.
    expect(spy.received).toEqual([
      {
        topic: '$aws/provisioning-templates/Nope/provision/json/rejected',
        body: expect.objectContaining({ errorCode: 'ResourceNotFound' }),
      },
    ]);
  }, 60_000);

  it('create-from-csr: concurrent devices each get the certificate of their own CSR, the spy none', async () => {
    const a = await startAws();
    const port = endpointOf(a, 'mqtts').port;
    const spy = await claimSpy(port);
    const devices = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const identity = new iotidentity.IotIdentityClient(await sdkClaimConnection(port, `csr-${i}`));
        const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
          'sign',
          'verify',
        ])) as webcrypto.CryptoKeyPair;
        const csr = await x509.Pkcs10CertificateRequestGenerator.create({
          name: `CN=csr-device-${i}`,
          keys,
          signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
        });
        const answers: iotidentity.model.CreateCertificateFromCsrResponse[] = [];
        const first = deferred<iotidentity.model.CreateCertificateFromCsrResponse>();
        await identity.subscribeToCreateCertificateFromCsrAccepted({}, QOS, (err, res) => {
          if (err || !res) return first.reject(err);
          answers.push(res);
          first.resolve(res);
        });
        return { identity, csr, answers, first };
      }),
    );
    await Promise.all(
      devices.map((d) =>
        d.identity.publishCreateCertificateFromCsr({ certificateSigningRequest: d.csr.toString('pem') }, QOS),
      ),
    );
    const certs = await Promise.all(
      devices.map((d, i) => within(d.first.promise, 15_000, `csr-${i} answer`)),
    );
    await spy.barrier();

    certs.forEach((c, i) => {
      expect(devices[i]!.answers).toHaveLength(1);
      expect(new x509.X509Certificate(c.certificatePem!).publicKey.rawData).toEqual(
        devices[i]!.csr.publicKey.rawData,
      );
    });
    expect(new Set(certs.map((c) => c.certificateId)).size).toBe(4);
    expect(spy.received.map((m) => m.topic)).toEqual([
      '$aws/provisioning-templates/Nope/provision/json/rejected',
    ]);
  }, 60_000);

  it('an answer is lost with the connection that asked, never handed to a later connection with its client id', async () => {
    // The region's CA, its first issuance held until the asking connection has been replaced.
    const entered = deferred<void>();
    const release = deferred<void>();
    const issued = deferred<void>();
    let calls = 0;
    const held: CertificateAuthority = Object.assign(Object.create(regionCa) as CertificateAuthority, {
      issueLeaf: async (o: Parameters<CertificateAuthority['issueLeaf']>[0]) => {
        if (calls++ > 0) return regionCa.issueLeaf(o);
        entered.resolve();
        await release.promise;
        const cert = await regionCa.issueLeaf(o);
        issued.resolve();
        return cert;
      },
    });
    const a = await startAws(held);
    const port = endpointOf(a, 'mqtts').port;

    const first = await jsClaimClient(port, 'factory-7');
    await first.client.subscribeAsync(`${CREATE}/accepted`, { qos: 1 });
    const firstClosed = new Promise<void>((resolve) => first.client.once('close', () => resolve()));
    await first.client.publishAsync(CREATE, '{}', { qos: 1 });
    await within(entered.promise, 10_000, 'issuance of the first request');

    // The same client id connects again: the service closes the first connection (session takeover).
    const second = await jsClaimClient(port, 'factory-7');
    await within(firstClosed, 10_000, 'first connection closed by the takeover');
    await second.client.subscribeAsync(`${CREATE}/accepted`, { qos: 1 });
    const lost = nextEvent(a, 'provisioning-reply', (e) => e.delivery !== 'delivered');
    release.resolve();
    await within(issued.promise, 10_000, 'first certificate issued');
    const firstCertificateId = a.certificates().find((c) => c.origin === 'fleet-provisioning')?.certificateId;
    expect(firstCertificateId).toMatch(/^[0-9a-f]{64}$/);

    // The second connection's own request: its answer is the first and only message it receives.
    const own = nextMessage(second.client, `${CREATE}/accepted`, 'second connection answer');
    await second.client.publishAsync(CREATE, '{}', { qos: 1 });
    const answer = await own;
    expect(answer.certificateId).not.toBe(firstCertificateId);
    expect(second.received.map((m) => m.body.certificateId)).toEqual([answer.certificateId]);
    expect(first.received).toEqual([]);
    expect(await lost).toEqual({
      clientId: 'factory-7',
      topic: `${CREATE}/accepted`,
      delivery: 'not-connected',
    });
  }, 30_000);

  it('a device that publishes before subscribing to the reply topic gets no answer, and the lab says why', async () => {
    const a = await startAws();
    const port = endpointOf(a, 'mqtts').port;
    const early = await jsClaimClient(port, 'early-bird');
    const missed = nextEvent(a, 'provisioning-reply', (e) => e.clientId === 'early-bird');
    await early.client.publishAsync(CREATE, '{}', { qos: 1 });
    expect(await missed).toEqual({
      clientId: 'early-bird',
      topic: `${CREATE}/accepted`,
      delivery: 'not-subscribed',
    });

    // Subscribed with QoS 0: the answer comes at the granted QoS, not the service's QoS 1.
    await early.client.subscribeAsync(`${CREATE}/accepted`, { qos: 0 });
    const packet = within(
      new Promise<mqttjs.IPublishPacket>((resolve) =>
        early.client.once('message', (_t, _p, pk) => resolve(pk)),
      ),
      10_000,
      'answer after subscribing',
    );
    await early.client.publishAsync(CREATE, '{}', { qos: 1 });
    const got = await packet;
    expect(got.qos).toBe(0);
    expect(JSON.parse(got.payload.toString()).certificateId).toMatch(/^[0-9a-f]{64}$/);
    expect(early.received).toHaveLength(1);
  }, 30_000);
});
