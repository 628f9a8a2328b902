import { iot, iotidentity, mqtt5 } from 'aws-iot-device-sdk-v2';
import mqttjs from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AwsIotHandle, start } from '../../simulators/aws-iot/index.js';
import { endpointOf } from '../../simulators/common/handle.js';
import type { CertificateAuthority, IssuedCertFiles, PkiHandle } from '../../simulators/pki/index.js';
import { start as startPki } from '../../simulators/pki/index.js';
import { within } from '../helpers/within.js';

/**
 * The aws-iot persona with MQTT 5 clients, as AWS IoT Core answers them: aws-iot-device-sdk-v2's
 * Mqtt5Client (CONNACK, SUBACK and PUBACK reason codes, user properties, 0x87 Not authorized for a policy
 * denial) and IotIdentityClientv2 (the request-response fleet provisioning client, MQTT 5 only in this
 * shape), whose answers reach the asking connection only.
 */

let pki: PkiHandle;
let server: IssuedCertFiles;
let regionCa: CertificateAuthority;
let aws: AwsIotHandle | undefined;
const cleanups: Array<() => Promise<void>> = [];

beforeAll(async () => {
  pki = await startPki({ name: 'pki' });
  server = await pki.issueServer(['localhost']);
  regionCa = await pki.createAuthority('fieldlab us-east-1 Device CA');
});
afterAll(() => pki.stop());
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c().catch(() => undefined)));
  await aws?.stop();
  aws = undefined;
});

async function startAws(): Promise<AwsIotHandle> {
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
  });
  return aws;
}

/** An SDK MQTT 5 client (mTLS from memory, the lab root as CA), started; resolves on connection success. */
async function mqtt5Client(port: number, clientId: string, certPem: string, keyPem: string) {
  const config = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromMemory(
    'localhost',
    certPem,
    keyPem,
  )
    .withCertificateAuthority(pki.root.certPem)
    .withPort(port)
    .withConnectProperties({ clientId, keepAliveIntervalSeconds: 30 })
    .withMinReconnectDelayMs(30_000)
    .withConnackTimeoutMs(5000)
    .build();
  const client = new mqtt5.Mqtt5Client(config);
  const stopped = new Promise<void>((resolve) => client.once('stopped', () => resolve()));
  cleanups.push(async () => {
    client.stop();
    await within(stopped, 5000, 'the MQTT 5 client to stop').catch(() => undefined);
    client.close();
  });
  const connected = new Promise<mqtt5.ConnectionSuccessEvent>((resolve, reject) => {
    client.once('connectionSuccess', resolve);
    client.once('connectionFailure', (e) => reject(e.error));
  });
  client.start();
  const success = await within(connected, 10_000, `${clientId} to connect over MQTT 5`);
  return { client, connack: success.connack };
}

describe('aws-iot persona with the aws-iot-device-sdk-v2 MQTT 5 client', () => {
  it('connects, subscribes, publishes with user properties; a policy denial is 0x87 and the connection stays', async () => {
    const device = await pki.issueClient('dev-5');
    const a = await startAws();
    a.registerCertificate(device.certPem, { thingName: 'dev-5' });
    const port = endpointOf(a, 'mqtts').port;

    const { client, connack } = await mqtt5Client(port, 'dev-5', device.chainPem, device.keyPem);
    expect(connack.reasonCode).toBe(mqtt5.ConnectReasonCode.Success);
    // AWS IoT Core's documented broker limits: 100 unacknowledged QoS 1 messages, 8 topic aliases; shared
    // subscriptions available
    expect(connack.receiveMaximum).toBe(100);
    expect(connack.topicAliasMaximum).toBe(8);
    expect(connack.sharedSubscriptionsAvailable).toBe(true);

    // One SUBSCRIBE, a reason code per filter (MQTT 5 §3.9.3): the thing's own topic granted at QoS 1,
    // another thing's refused with 0x87 Not authorized, as AWS IoT answers a policy denial.
    const suback = await client.subscribe({
      subscriptions: [
        { topicFilter: 'things/dev-5/echo', qos: mqtt5.QoS.AtLeastOnce },
        { topicFilter: 'things/dev-99/echo', qos: mqtt5.QoS.AtLeastOnce },
      ],
    });
    expect(suback.reasonCodes).toEqual([
      mqtt5.SubackReasonCode.GrantedQoS1,
      mqtt5.SubackReasonCode.NotAuthorized,
    ]);

    const received = new Promise<mqtt5.MessageReceivedEvent>((resolve) =>
      client.once('messageReceived', resolve),
    );
    const puback = await client.publish({
      topicName: 'things/dev-5/echo',
      qos: mqtt5.QoS.AtLeastOnce,
      payload: 'hello v5',
      userProperties: [
        { name: 'firmware', value: '1.2.3' },
        { name: 'site', value: 'lab' },
      ],
    });
    expect(puback?.reasonCode).toBe(mqtt5.PubackReasonCode.Success);
    const { message } = await within(received, 5000, 'the echo');
    expect(message.topicName).toBe('things/dev-5/echo');
    expect(Buffer.from(message.payload as ArrayBuffer).toString()).toBe('hello v5');
    expect(message.userProperties).toEqual([
      { name: 'firmware', value: '1.2.3' },
      { name: 'site', value: 'lab' },
    ]);

    // Another thing's topic: PUBACK 0x87 Not authorized, the persona reports the denial, and the MQTT 5
    // connection carries on (a 3.1.1 client is disconnected instead: aws-iot.test.ts).
    const denied = new Promise<{ topic: string }>((resolve) => a.events.onceEvent('policy-denied', resolve));
    const refused = await client.publish({
      topicName: 'things/dev-99/cmd',
      qos: mqtt5.QoS.AtLeastOnce,
      payload: 'nope',
    });
    expect(refused?.reasonCode).toBe(mqtt5.PubackReasonCode.NotAuthorized);
    expect(await within(denied, 5000, 'policy-denied')).toMatchObject({ topic: 'things/dev-99/cmd' });
    const after = await client.publish({
      topicName: 'things/dev-5/up',
      qos: mqtt5.QoS.AtLeastOnce,
      payload: 'x',
    });
    expect(after?.reasonCode).toBe(mqtt5.PubackReasonCode.Success);
  }, 30_000);

  it('IotIdentityClientv2 over MQTT 5: CreateKeysAndCertificate and RegisterThing; a spy with the claim sees neither', async () => {
    const claim = await pki.issueClient('claim-v5');
    const a = await startAws();
    a.registerCertificate(claim.certPem, { claim: true });
    const port = endpointOf(a, 'mqtts').port;

    // A second connection with the same claim, subscribed to every reply topic (MQTT.js, MQTT 5).
    const spy = await mqttjs.connectAsync(`mqtts://localhost:${port}`, {
      protocolVersion: 5,
      clientId: 'claim-spy',
      ca: [pki.root.certPem],
      cert: claim.chainPem,
      key: claim.keyPem,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    cleanups.push(() => spy.endAsync(true));
    const spied: string[] = [];
    spy.on('message', (topic) => spied.push(topic));
    await spy.subscribeAsync(
      [
        '$aws/certificates/create/json/+',
        '$aws/provisioning-templates/FleetTemplate/provision/json/+',
        '$aws/provisioning-templates/Nope/provision/json/+',
      ],
      { qos: 1 },
    );

    const { client } = await mqtt5Client(port, 'claim-v5', claim.chainPem, claim.keyPem);
    const identity = iotidentity.IotIdentityClientv2.newFromMqtt5(client, {
      maxRequestResponseSubscriptions: 2,
      maxStreamingSubscriptions: 2,
      operationTimeoutInSeconds: 10,
    });
    cleanups.push(async () => identity.close());

    const keys = await within(identity.createKeysAndCertificate({}), 15_000, 'CreateKeysAndCertificate');
    expect(keys.certificateId).toMatch(/^[0-9a-f]{64}$/);
    expect(keys.certificatePem).toContain('BEGIN CERTIFICATE');
    expect(keys.privateKey).toContain('PRIVATE KEY');
    const thing = await within(
      identity.registerThing({
        templateName: 'FleetTemplate',
        certificateOwnershipToken: keys.certificateOwnershipToken!,
        parameters: { SerialNumber: '0500' },
      }),
      15_000,
      'RegisterThing',
    );
    expect(thing.thingName).toBe('dev-0500');
    expect(thing.deviceConfiguration).toEqual({ region: 'us-east-1' });
    expect(a.certificates().find((c) => c.certificateId === keys.certificateId)?.status).toBe('ACTIVE');

    // Barrier: the spy's own request is answered on its own connection after the device's answers.
    const own = new Promise<void>((resolve) =>
      spy.on('message', (topic) => {
        if (topic === '$aws/provisioning-templates/Nope/provision/json/rejected') resolve();
      }),
    );
    await spy.publishAsync('$aws/provisioning-templates/Nope/provision/json', '{}', { qos: 1 });
    await within(own, 5000, 'the spy barrier');
    expect(spied).toEqual(['$aws/provisioning-templates/Nope/provision/json/rejected']);

    // The new certificate connects over MQTT 5 as the thing.
    const { connack } = await mqtt5Client(port, 'dev-0500', keys.certificatePem!, keys.privateKey!);
    expect(connack.reasonCode).toBe(mqtt5.ConnectReasonCode.Success);
  }, 60_000);

  it('shared subscription: two Mqtt5Clients in $share/workers/... split a QoS 1 stream, each message to exactly one', async () => {
    const device = await pki.issueClient('dev-s');
    const a = await startAws();
    a.registerCertificate(device.certPem, { thingName: 'dev-s' });
    const port = endpointOf(a, 'mqtts').port;
    const got: Record<string, string[]> = { 'worker-1': [], 'worker-2': [] };
    for (const id of ['worker-1', 'worker-2']) {
      const { client } = await mqtt5Client(port, id, device.chainPem, device.keyPem);
      client.on('messageReceived', ({ message }) =>
        got[id]!.push(`${message.topicName}|${Buffer.from(message.payload as ArrayBuffer).toString()}`),
      );
      const suback = await client.subscribe({
        subscriptions: [{ topicFilter: '$share/workers/things/dev-s/jobs', qos: mqtt5.QoS.AtLeastOnce }],
      });
      expect(suback.reasonCodes).toEqual([mqtt5.SubackReasonCode.GrantedQoS1]);
    }
    const pub = await mqttjs.connectAsync(`mqtts://localhost:${port}`, {
      protocolVersion: 5,
      clientId: 'dev-s-pub',
      ca: [pki.root.certPem],
      cert: device.chainPem,
      key: device.keyPem,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    cleanups.push(() => pub.endAsync(true));
    const n = 30;
    for (let i = 0; i < n; i++) await pub.publishAsync('things/dev-s/jobs', `j${i}`, { qos: 1 });
    const all = () => [...got['worker-1']!, ...got['worker-2']!];
    await within(
      new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          if (all().length < n) return;
          clearInterval(timer);
          resolve();
        }, 20);
        cleanups.push(async () => clearInterval(timer));
      }),
      10_000,
      `${n} messages across the group`,
    );
    expect(all().sort()).toEqual(Array.from({ length: n }, (_, i) => `things/dev-s/jobs|j${i}`).sort());
    expect(got['worker-1']!.length).toBeGreaterThan(0);
    expect(got['worker-2']!.length).toBeGreaterThan(0);
  }, 60_000);

  it('enhanced authentication is not offered: a CONNECT with an Authentication Method gets CONNACK 0x8C (MQTT.js, mTLS)', async () => {
    const device = await pki.issueClient('dev-auth');
    const a = await startAws();
    a.registerCertificate(device.certPem, { thingName: 'dev-auth' });
    const port = endpointOf(a, 'mqtts').port;
    await expect(
      mqttjs.connectAsync(`mqtts://localhost:${port}`, {
        protocolVersion: 5,
        clientId: 'dev-auth',
        ca: [pki.root.certPem],
        cert: device.chainPem,
        key: device.keyPem,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        properties: { authenticationMethod: 'SCRAM-SHA-256' },
      }),
    ).rejects.toMatchObject({ code: 0x8c }); // MQTT 5 §3.2.2.2 Bad authentication method
  }, 30_000);
});
