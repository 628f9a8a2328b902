import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqttjs from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type AwsIotHandle,
  type CertificateRegisteredMessage,
  certificateIdOf,
  registeredEventTopic,
  start,
} from '../../simulators/aws-iot/index.js';
import { endpointOf } from '../../simulators/common/handle.js';
import type { CertificateAuthority, IssuedCertFiles, PkiHandle } from '../../simulators/pki/index.js';
import { start as startPki } from '../../simulators/pki/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';

/**
 * JITP as AWS's JITR guide and the seed 003 workshop run it, with the real mosquitto_pub: the first
 * connection presents the device certificate followed by the CA certificate, is closed while the region
 * registers and provisions it, and the retry publishes.
 */

let pki: PkiHandle;
let server: IssuedCertFiles;
let jitpCa: CertificateAuthority;
const regions: AwsIotHandle[] = [];

beforeAll(async () => {
  pki = await startPki({ name: 'pki' });
  server = await pki.issueServer(['localhost']);
  jitpCa = await pki.createAuthority('fieldlab JITP CA');
});
afterAll(() => pki.stop());
afterEach(async () => {
  await Promise.all(regions.splice(0).map((r) => r.stop()));
});

async function region(name: string, registerCa: boolean): Promise<AwsIotHandle> {
  const r = await start({
    name,
    region: name,
    tls: { certPem: server.chainPem, keyPem: server.keyPem },
    awsAccountId: '210987654321',
  });
  regions.push(r);
  if (registerCa) {
    r.registerCa(jitpCa.certPem, {
      autoRegistration: true,
      thingNameTemplate: '${AWS::IoT::Certificate::CommonName}',
      templateName: 'SeedTemplate',
      policyName: 'SeedPolicy',
    });
  }
  return r;
}

/** Device files: the certificate alone, and followed by the CA certificate (`cat device.pem ca.pem`). */
async function device(cn: string, ca = jitpCa) {
  const leaf = await ca.issueLeaf({ commonName: cn, usage: 'client' });
  const base = join(pki.dir, cn);
  await Promise.all([
    writeFile(`${base}.pem`, leaf.certPem),
    writeFile(`${base}-with-ca.pem`, leaf.certPem + ca.certPem),
    writeFile(`${base}-key.pem`, leaf.keyPem, { mode: 0o600 }),
    writeFile(join(pki.dir, 'root.pem'), pki.root.certPem),
  ]);
  return { leaf, certOnly: `${base}.pem`, withCa: `${base}-with-ca.pem`, key: `${base}-key.pem` };
}

/** One mosquitto_pub run (bounded); resolves with its exit status and stderr. */
function mosquittoPub(port: number, cn: string, cert: string, key: string) {
  const args = ['-h', 'localhost', '-p', String(port), '--cafile', join(pki.dir, 'root.pem')];
  args.push('--cert', cert, '--key', key, '-i', cn, '-t', `things/${cn}/telemetry`, '-q', '1', '-m', '{}');
  return new Promise<{ status: number; stderr: string }>((resolve) => {
    execFile('mosquitto_pub', args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      const code = err ? (err as NodeJS.ErrnoException & { code?: unknown }).code : 0;
      resolve({ status: typeof code === 'number' ? code : -1, stderr: String(stderr) });
    });
  });
}

describe.skipIf(missing('cmd:mosquitto_pub'))('JITP with mosquitto_pub', () => {
  it('the first connection is closed while the certificate is registered, announced and provisioned; the retry publishes', async () => {
    const r = await region('us-east-1', true);
    const port = endpointOf(r, 'mqtts').port;
    const dev = await device('jitp-sensor-7');
    const announced = new Promise<CertificateRegisteredMessage & { topic: string }>((resolve) =>
      r.events.onceEvent('certificate-registered', resolve),
    );

    const first = await mosquittoPub(port, 'jitp-sensor-7', dev.withCa, dev.key);
    // MOSQ_ERR_CONN_LOST: TLS completed, the connection closed before any CONNACK.
    expect(first).toMatchObject({ status: 7 });
    expect(first.stderr).toMatch(/The connection was lost/);

    const event = await within(announced, 2000, 'certificate-registered');
    const certificateId = certificateIdOf(dev.leaf.certPem);
    const caCertificateId = certificateIdOf(jitpCa.certPem);
    // The JITR guide's message, field for field: timestamp a number, certificateRegistrationTimestamp a string.
    const { topic, ...message } = event;
    expect(topic).toBe(registeredEventTopic(caCertificateId));
    expect(topic).toBe(`$aws/events/certificates/registered/${caCertificateId}`);
    expect(Object.keys(message).sort()).toEqual(
      [
        'awsAccountId',
        'caCertificateId',
        'certificateId',
        'certificateRegistrationTimestamp',
        'certificateStatus',
        'timestamp',
      ].sort(),
    );
    expect(message).toMatchObject({
      certificateId,
      caCertificateId,
      certificateStatus: 'PENDING_ACTIVATION',
      awsAccountId: '210987654321',
    });
    expect(typeof message.timestamp).toBe('number');
    expect(message.certificateRegistrationTimestamp).toMatch(/^\d{13}$/);

    expect(r.certificates()).toEqual([
      expect.objectContaining({
        certificateId,
        origin: 'jitp',
        status: 'ACTIVE',
        thingName: 'jitp-sensor-7',
      }),
    ]);
    expect(r.things()).toEqual([
      expect.objectContaining({ thingName: 'jitp-sensor-7', certificateId, template: 'SeedTemplate' }),
    ]);

    const published = new Promise<{ topic: string }>((resolve) => r.events.onceEvent('publish', resolve));
    const retry = await mosquittoPub(port, 'jitp-sensor-7', dev.withCa, dev.key);
    expect(retry).toEqual({ status: 0, stderr: '' });
    expect((await within(published, 2000, 'publish')).topic).toBe('things/jitp-sensor-7/telemetry');
  }, 30_000);

  it('the registration event reaches a backend subscribed to $aws/events/certificates/registered/+, and only such a one', async () => {
    const r = await region('us-east-1', true);
    const port = endpointOf(r, 'mqtts').port;
    const backend = await pki.issueClient('jitr-backend');
    r.registerCertificate(backend.certPem, { accountEvents: true });
    const bystander = await pki.issueClient('bystander');
    r.registerCertificate(bystander.certPem, { thingName: 'bystander' });
    const tls = { ca: [pki.root.certPem], reconnectPeriod: 0, connectTimeout: 5000 };
    const url = `mqtts://localhost:${port}`;
    const watcher = await mqttjs.connectAsync(url, {
      ...tls,
      cert: backend.chainPem,
      key: backend.keyPem,
      clientId: 'jitr-backend',
    });
    const other = await mqttjs.connectAsync(url, {
      ...tls,
      cert: bystander.chainPem,
      key: bystander.keyPem,
      clientId: 'bystander',
    });
    try {
      await watcher.subscribeAsync('$aws/events/certificates/registered/+', { qos: 0 });
      // A thing's policy does not cover the account's event topics: SUBACK 0x80.
      await expect(other.subscribeAsync('$aws/events/certificates/registered/+', { qos: 0 })).rejects.toThrow(
        /Subscribe error/,
      );

      const received = new Promise<{ topic: string; body: unknown }>((resolve) =>
        watcher.once('message', (topic, payload) => resolve({ topic, body: JSON.parse(payload.toString()) })),
      );
      const labEvent = new Promise<CertificateRegisteredMessage & { topic: string }>((resolve) =>
        r.events.onceEvent('certificate-registered', resolve),
      );
      const dev = await device('jitp-sensor-10');
      expect((await mosquittoPub(port, 'jitp-sensor-10', dev.withCa, dev.key)).status).toBe(7);
      const { topic, ...message } = await within(labEvent, 2000, 'certificate-registered');
      const got = await within(received, 2000, 'the registration event over MQTT');
      expect(got.topic).toBe(topic);
      expect(got.body).toEqual(message);
      expect(got.body).toMatchObject({
        certificateId: certificateIdOf(dev.leaf.certPem),
        awsAccountId: '210987654321',
      });
    } finally {
      await Promise.all([watcher.endAsync(true), other.endAsync(true)]);
    }
  }, 30_000);

  it('a device certificate presented without its CA certificate registers nothing, and the lab says why', async () => {
    const r = await region('us-east-1', true);
    const dev = await device('jitp-sensor-8');
    const denied = new Promise<{ reason: string }>((resolve) => r.events.onceEvent('auth-denied', resolve));

    for (let attempt = 0; attempt < 2; attempt++) {
      const run = await mosquittoPub(endpointOf(r, 'mqtts').port, 'jitp-sensor-8', dev.certOnly, dev.key);
      expect(run.status).toBe(7);
    }
    expect((await within(denied, 2000, 'auth-denied')).reason).toMatch(/presented without it/);
    expect(r.certificates()).toEqual([]);
    expect(r.things()).toEqual([]);
  }, 30_000);

  it('a CA registered in one region only: the other region refuses every attempt and names the issuer', async () => {
    const east = await region('us-east-1', true);
    const west = await region('eu-west-1', false);
    const dev = await device('jitp-sensor-9');
    const denied = new Promise<{ reason: string }>((resolve) =>
      west.events.onceEvent('auth-denied', resolve),
    );
    let registeredInWest = false;
    west.events.onEvent('certificate-registered', () => {
      registeredInWest = true;
    });

    for (let attempt = 0; attempt < 2; attempt++) {
      const run = await mosquittoPub(endpointOf(west, 'mqtts').port, 'jitp-sensor-9', dev.withCa, dev.key);
      expect(run).toMatchObject({ status: 7 });
    }
    expect((await within(denied, 2000, 'auth-denied')).reason).toMatch(
      /issuer fieldlab JITP CA is not registered in this region/,
    );
    expect(registeredInWest).toBe(false);
    expect(west.certificates()).toEqual([]);

    // The same device provisions in the region that has its CA.
    await mosquittoPub(endpointOf(east, 'mqtts').port, 'jitp-sensor-9', dev.withCa, dev.key);
    expect(
      (await mosquittoPub(endpointOf(east, 'mqtts').port, 'jitp-sensor-9', dev.withCa, dev.key)).status,
    ).toBe(0);
  }, 30_000);

  it('a certificate from an unregistered CA is refused without registration', async () => {
    const r = await region('us-east-1', true);
    const rogueCa = await pki.createAuthority('fieldlab Rogue CA');
    const dev = await device('rogue-1', rogueCa);
    const run = await mosquittoPub(endpointOf(r, 'mqtts').port, 'rogue-1', dev.withCa, dev.key);
    expect(run.status).toBe(7);
    expect(r.certificates()).toEqual([]);
  }, 30_000);
});
