import type { webcrypto } from 'node:crypto';
import { iotidentity, mqtt } from 'aws-iot-device-sdk-v2';
import mqttjs from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AwsIotHandle, start } from '../../simulators/aws-iot/index.js';
import { endpointOf } from '../../simulators/common/handle.js';
import { crypto, x509 } from '../../simulators/pki/crypto.js';
import type { CertificateAuthority, IssuedCertFiles, PkiHandle } from '../../simulators/pki/index.js';
import { start as startPki } from '../../simulators/pki/index.js';
import { within } from '../helpers/within.js';
import { deferred, sdkMtlsConnection } from './helpers.js';

let pki: PkiHandle;
let server: IssuedCertFiles;
let regionCa: CertificateAuthority;
let aws: AwsIotHandle | undefined;
const connections: mqtt.MqttClientConnection[] = [];

beforeAll(async () => {
  pki = await startPki({ name: 'pki' });
  server = await pki.issueServer(['localhost']);
  regionCa = await pki.createAuthority('fieldlab us-east-1 Device CA');
});
afterAll(() => pki.stop());
afterEach(async () => {
  // An interrupted connection's disconnect() may never settle: bound it.
  await Promise.all(
    connections.splice(0).map((c) => within(c.disconnect(), 2000, 'disconnect').catch(() => undefined)),
  );
  await aws?.stop();
  aws = undefined;
});

async function startAws(extra: Partial<Parameters<typeof start>[0]> = {}): Promise<AwsIotHandle> {
  aws = await start({
    name: 'aws-us-east-1',
    tls: { certPem: server.chainPem, keyPem: server.keyPem },
    issuer: regionCa,
    templates: {
      FleetTemplate: {
        thingNameTemplate: 'dev-${SerialNumber}',
        deviceConfiguration: { region: 'us-east-1' },
      },
    },
    ...extra,
  });
  return aws;
}

/** A device connection with aws-iot-device-sdk-v2 (MQTT 3.1.1, mTLS from memory, the lab root as CA). */
function sdkConnection(port: number, clientId: string, certPem: string, keyPem: string) {
  const conn = sdkMtlsConnection(pki.root.certPem, port, clientId, certPem, keyPem);
  connections.push(conn);
  return conn;
}

/** The SDK's fleet provisioning flow, as the aws-iot-device-sdk-v2 fleet provisioning sample runs it. */
async function provisionByClaim(identity: iotidentity.IotIdentityClient, template: string, serial: string) {
  const QOS = mqtt.QoS.AtLeastOnce;
  const created = deferred<iotidentity.model.CreateKeysAndCertificateResponse>();
  // The subscribe calls resolve on SUBACK, so the request below cannot outrun its reply topics.
  await identity.subscribeToCreateKeysAndCertificateAccepted({}, QOS, (err, res) =>
    err || !res ? created.reject(err) : created.resolve(res),
  );
  await identity.subscribeToCreateKeysAndCertificateRejected({}, QOS, (_e, res) =>
    created.reject(new Error(`create rejected: ${JSON.stringify(res)}`)),
  );
  await identity.publishCreateKeysAndCertificate({}, QOS);
  const keys = await within(created.promise, 10_000, 'CreateKeysAndCertificate');

  const registered = deferred<iotidentity.model.RegisterThingResponse>();
  await identity.subscribeToRegisterThingAccepted({ templateName: template }, QOS, (err, res) =>
    err || !res ? registered.reject(err) : registered.resolve(res),
  );
  await identity.subscribeToRegisterThingRejected({ templateName: template }, QOS, (_e, res) =>
    registered.reject(new Error(`register rejected: ${JSON.stringify(res)}`)),
  );
  await identity.publishRegisterThing(
    {
      templateName: template,
      certificateOwnershipToken: keys.certificateOwnershipToken!,
      parameters: { SerialNumber: serial },
    },
    QOS,
  );
  const thing = await within(registered.promise, 10_000, 'RegisterThing');
  return { keys, thing };
}

describe('aws-iot persona with aws-iot-device-sdk-v2', () => {
  it('fleet provisioning by claim end to end, then the new certificate publishes only to its own topics', async () => {
    const claim = await pki.issueClient('claim-1');
    const a = await startAws();
    a.registerCertificate(claim.certPem, { claim: true });
    const port = endpointOf(a, 'mqtts').port;
    const seen: string[] = [];
    a.events.onAny((e) => seen.push(e.type));

    const claimConn = sdkConnection(port, 'claim-1', claim.chainPem, claim.keyPem);
    await within(claimConn.connect(), 10_000, 'claim connect');
    const identity = new iotidentity.IotIdentityClient(claimConn);
    const { keys, thing } = await provisionByClaim(identity, 'FleetTemplate', '0042');
    expect(keys.certificateId).toMatch(/^[0-9a-f]{64}$/);
    expect(keys.certificatePem).toContain('BEGIN CERTIFICATE');
    expect(thing.thingName).toBe('dev-0042');
    expect(thing.deviceConfiguration).toEqual({ region: 'us-east-1' });
    expect(a.things().map((t) => t.thingName)).toEqual(['dev-0042']);
    expect(a.certificates().find((c) => c.certificateId === keys.certificateId)?.status).toBe('ACTIVE');
    expect(seen).toContain('certificate-created');
    expect(seen).toContain('thing-registered');

    // A used ownership token is refused on /rejected with the service's error shape.
    const rejected = deferred<iotidentity.model.ErrorResponse | undefined>();
    await identity.subscribeToRegisterThingRejected(
      { templateName: 'FleetTemplate' },
      mqtt.QoS.AtLeastOnce,
      (_e, res) => rejected.resolve(res),
    );
    await identity.publishRegisterThing(
      {
        templateName: 'FleetTemplate',
        certificateOwnershipToken: keys.certificateOwnershipToken!,
        parameters: { SerialNumber: '0043' },
      },
      mqtt.QoS.AtLeastOnce,
    );
    expect(await within(rejected.promise, 5000, 'RegisterThing rejected')).toMatchObject({
      statusCode: 400,
      errorCode: 'InvalidCertificateOwnershipToken',
    });
    await claimConn.disconnect();

    const device = sdkConnection(port, 'dev-0042', keys.certificatePem!, keys.privateKey!);
    await within(device.connect(), 10_000, 'device connect');
    const echo = deferred<string>();
    await device.subscribe('things/dev-0042/echo', mqtt.QoS.AtLeastOnce, (_t, payload) =>
      echo.resolve(Buffer.from(payload).toString()),
    );
    await device.publish('things/dev-0042/echo', 'hello', mqtt.QoS.AtLeastOnce);
    expect(await within(echo.promise, 5000, 'echo')).toBe('hello');

    // Another thing's topic: the service disconnects the client.
    const denied = new Promise<{ topic: string; thingName?: string }>((resolve) =>
      a.events.onceEvent('policy-denied', resolve),
    );
    const interrupted = new Promise<void>((resolve) => device.once('interrupt', () => resolve()));
    void device.publish('things/dev-0099/cmd', 'nope', mqtt.QoS.AtLeastOnce).catch(() => undefined);
    expect(await within(denied, 5000, 'policy-denied')).toMatchObject({
      topic: 'things/dev-0099/cmd',
      thingName: 'dev-0042',
    });
    await within(interrupted, 5000, 'interrupt');
  }, 30_000);

  it('fleet provisioning from a CSR: the device keeps its own key', async () => {
    const claim = await pki.issueClient('claim-csr');
    const a = await startAws();
    a.registerCertificate(claim.certPem, { claim: true });
    const port = endpointOf(a, 'mqtts').port;
    const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=csr-device',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;

    const conn = sdkConnection(port, 'claim-csr', claim.chainPem, claim.keyPem);
    await within(conn.connect(), 10_000, 'claim connect');
    const identity = new iotidentity.IotIdentityClient(conn);
    const QOS = mqtt.QoS.AtLeastOnce;
    const created = deferred<iotidentity.model.CreateCertificateFromCsrResponse>();
    await identity.subscribeToCreateCertificateFromCsrAccepted({}, QOS, (err, res) =>
      err || !res ? created.reject(err) : created.resolve(res),
    );
    await identity.subscribeToCreateCertificateFromCsrRejected({}, QOS, (_e, res) =>
      created.reject(new Error(`rejected: ${JSON.stringify(res)}`)),
    );
    await identity.publishCreateCertificateFromCsr({ certificateSigningRequest: csr.toString('pem') }, QOS);
    const cert = await within(created.promise, 10_000, 'CreateCertificateFromCsr');
    expect(new x509.X509Certificate(cert.certificatePem!).publicKey.rawData).toEqual(csr.publicKey.rawData);
    const registered = deferred<iotidentity.model.RegisterThingResponse>();
    await identity.subscribeToRegisterThingAccepted({ templateName: 'FleetTemplate' }, QOS, (err, res) =>
      err || !res ? registered.reject(err) : registered.resolve(res),
    );
    await identity.publishRegisterThing(
      {
        templateName: 'FleetTemplate',
        certificateOwnershipToken: cert.certificateOwnershipToken!,
        parameters: { SerialNumber: 'csr-1' },
      },
      QOS,
    );
    expect((await within(registered.promise, 10_000, 'RegisterThing')).thingName).toBe('dev-csr-1');
    await conn.disconnect();

    const device = sdkConnection(port, 'dev-csr-1', cert.certificatePem!, keyPem);
    await within(device.connect(), 10_000, 'device connect');
    await device.publish('things/dev-csr-1/telemetry', '{}', QOS);
  }, 30_000);

  it('JITP: the first connection registers the certificate and is dropped; the next succeeds', async () => {
    const jitpCa = await pki.createAuthority('fieldlab JITP CA');
    const a = await startAws();
    a.registerCa(jitpCa.certPem, { autoRegistration: true, thingNameTemplate: '${CommonName}' });
    const device = await jitpCa.issueLeaf({ commonName: 'jitp-sensor-7', usage: 'client' });
    const port = endpointOf(a, 'mqtts').port;
    const registered = new Promise<{ thingName: string }>((resolve) =>
      a.events.onceEvent('jitp-registered', resolve),
    );

    // The first connection presents the device certificate followed by the CA's (JITR guide).
    const presented = device.certPem + jitpCa.certPem;
    const first = sdkConnection(port, 'jitp-sensor-7', presented, device.keyPem);
    await expect(within(first.connect(), 10_000, 'first connect')).rejects.toThrow();
    expect((await within(registered, 5000, 'jitp-registered')).thingName).toBe('jitp-sensor-7');
    expect(a.certificates()[0]).toMatchObject({
      origin: 'jitp',
      status: 'ACTIVE',
      thingName: 'jitp-sensor-7',
    });

    const second = sdkConnection(port, 'jitp-sensor-7', presented, device.keyPem);
    await within(second.connect(), 10_000, 'second connect');
    await second.publish('things/jitp-sensor-7/telemetry', '{"t":21}', mqtt.QoS.AtLeastOnce);
    expect(a.stats().broker.published).toBeGreaterThanOrEqual(1);
  }, 30_000);
});

/** Resolves when MQTT.js's connection closes before any CONNACK (the service dropped it); bounded. */
function dropped(url: string, opts: mqttjs.IClientOptions): Promise<void> {
  const c = mqttjs.connect(url, opts);
  return within(
    new Promise<void>((resolve, reject) => {
      c.once('connect', () => reject(new Error('connected')));
      c.once('close', () => resolve());
      c.on('error', () => undefined);
    }),
    8000,
    'drop',
  ).finally(() => c.end(true));
}

describe('aws-iot persona with MQTT.js', () => {
  const connectOpts = (cert: IssuedCertFiles) => ({
    ca: [pki.root.certPem],
    cert: cert.chainPem,
    key: cert.keyPem,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });

  it('refuses a certificate neither registered nor issued by a registered CA, and a revoked one', async () => {
    const a = await startAws();
    const url = endpointOf(a, 'mqtts').url!.replace('127.0.0.1', 'localhost');
    const stranger = await pki.issueClient('stranger');
    const denied = new Promise<{ reason: string }>((resolve) => a.events.onceEvent('auth-denied', resolve));
    await dropped(url, { ...connectOpts(stranger), clientId: 'stranger' });
    expect((await denied).reason).toMatch(/neither registered/);

    const revoked = await pki.issueClient('revoked');
    const id = a.registerCertificate(revoked.certPem, { thingName: 'revoked' });
    a.setCertificateStatus(id, 'REVOKED');
    await dropped(url, { ...connectOpts(revoked), clientId: 'revoked' });
    expect(a.stats().authDenied).toBe(2);
  });

  it('a claim certificate may use only the provisioning topics; errors come back on /rejected', async () => {
    const claim = await pki.issueClient('claim-2');
    const a = await startAws();
    a.registerCertificate(claim.certPem, { claim: true });
    const url = endpointOf(a, 'mqtts').url!.replace('127.0.0.1', 'localhost');
    const c = await mqttjs.connectAsync(url, { ...connectOpts(claim), clientId: 'claim-2' });
    await expect(c.subscribeAsync('things/x/#', { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await c.subscribeAsync('$aws/provisioning-templates/Nope/provision/json/rejected', { qos: 1 });
    const rejected = new Promise<unknown>((resolve) =>
      c.once('message', (_t, p) => resolve(JSON.parse(p.toString()))),
    );
    await c.publishAsync('$aws/provisioning-templates/Nope/provision/json', '{}', { qos: 1 });
    expect(await within(rejected, 5000, 'rejected')).toEqual({
      statusCode: 404,
      errorCode: 'ResourceNotFound',
      errorMessage: 'provisioning template Nope not found',
    });
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    c.publish('things/claim-2/x', 'nope', { qos: 0 });
    await within(closed, 5000, 'disconnect on denied publish');
    await c.endAsync(true);
  });

  it('takes the device certificate over wss as well (MQTT over WebSocket, mutual TLS)', async () => {
    const dev = await pki.issueClient('ws-dev');
    const a = await startAws({ listeners: [{ protocol: 'mqtts' }, { protocol: 'wss' }] });
    a.registerCertificate(dev.certPem, { thingName: 'ws-dev' });
    const url = endpointOf(a, 'wss').url!.replace('127.0.0.1', 'localhost');
    const c = await mqttjs.connectAsync(url, { ...connectOpts(dev), clientId: 'ws-dev' });
    await c.subscribeAsync('things/ws-dev/#', { qos: 1 });
    const got = new Promise<string>((resolve) => c.once('message', (t) => resolve(t)));
    await c.publishAsync('things/ws-dev/up', 'x', { qos: 1 });
    expect(await within(got, 5000, 'message')).toBe('things/ws-dev/up');
    await c.endAsync();
    const stranger = await pki.issueClient('ws-stranger');
    await dropped(url, { ...connectOpts(stranger), clientId: 'ws-stranger' });
  });

  it('negotiates ALPN x-amzn-mqtt-ca and, with requireAlpn, drops clients without it', async () => {
    const dev = await pki.issueClient('alpn-dev');
    const a = await startAws({ requireAlpn: true });
    a.registerCertificate(dev.certPem, { thingName: 'alpn-dev' });
    const url = endpointOf(a, 'mqtts').url!.replace('127.0.0.1', 'localhost');
    const ok = await mqttjs.connectAsync(url, {
      ...connectOpts(dev),
      clientId: 'alpn-dev',
      ALPNProtocols: ['x-amzn-mqtt-ca'],
    });
    expect((ok.stream as unknown as { alpnProtocol?: string }).alpnProtocol).toBe('x-amzn-mqtt-ca');
    await ok.endAsync();
    const denied = new Promise<{ reason: string }>((resolve) => a.events.onceEvent('auth-denied', resolve));
    await dropped(url, { ...connectOpts(dev), clientId: 'alpn-dev' });
    expect((await denied).reason).toMatch(/ALPN \(none\)/);
  });
});
