import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { start as startHub } from '../../simulators/iot-hub/index.js';
import { CertificateAuthority } from '../../simulators/pki/index.js';
import {
  Client,
  configure,
  type DeviceClient,
  errors,
  HUB_HOST,
  type HubLab,
  hostFor,
  hubTestBench,
  Message,
  NoRetry,
  openAndSend,
  TRANSPORT_CTORS,
  TRANSPORTS,
  type TransportName,
  within,
} from './helpers.js';

/**
 * X.509 device authentication with the official Node SDK (`x509=true` connection string, `setOptions({ cert,
 * key })`): a thumbprint registered for the device (self-signed certificate), or a certificate signed by a
 * CA registered with the hub whose subject CN is the device id. Refusals are what the SDK reports for the
 * real hub: UnauthorizedError.
 */
const bench = hubTestBench();

/** A device client authenticating with a certificate (closed after the test). */
async function x509Client(
  l: HubLab,
  transport: TransportName,
  deviceId: string,
  cred: { certPem: string; keyPem: string },
): Promise<DeviceClient> {
  const cs = `HostName=${hostFor(l, transport)};DeviceId=${deviceId};x509=true`;
  const c = bench.own(Client.fromConnectionString(cs, TRANSPORT_CTORS[transport]));
  c.setRetryPolicy(new NoRetry());
  // One setOptions call: Http answers only a call that has its receive policy.
  await configure(c, l, 1, { cert: cred.certPem, key: cred.keyPem });
  return c;
}

async function sendsTelemetry(c: DeviceClient, l: HubLab, deviceId: string): Promise<void> {
  await within(c.open(), 8000, 'open');
  await within(c.sendEvent(new Message('hello')), 8000, 'sendEvent');
  expect(l.hub.messages(deviceId).map((m) => m.body.toString())).toEqual(['hello']);
}

const refused = (c: DeviceClient) => openAndSend(c, 'open with a refused certificate');

describe('iot-hub X.509 device authentication with the Azure IoT device SDK', () => {
  for (const transport of TRANSPORTS) {
    it(`${transport}: a CA-signed device certificate (CN = device id, chain through the intermediate) connects`, async () => {
      const lab = await bench.hubLab({ caCertificates: [bench.pki.root.certPem] });
      lab.hub.addX509Device('dev-ca', { ca: true });
      const authed = new Promise((resolve) => lab.hub.events.onceEvent('device-authenticated', resolve));
      const cert = await bench.pki.issueClient('dev-ca');
      // The device sends its chain (leaf + lab intermediate): the hub knows only the root.
      const client = await x509Client(lab, transport, 'dev-ca', {
        certPem: cert.chainPem,
        keyPem: cert.keyPem,
      });
      await sendsTelemetry(client, lab, 'dev-ca');
      expect(await within(authed, 2000, 'device-authenticated')).toMatchObject({
        deviceId: 'dev-ca',
        credential: 'x509',
      });
    });

    it(`${transport}: a self-signed certificate with the registered thumbprint connects; another is refused`, async () => {
      const lab = await bench.hubLab();
      const own = await CertificateAuthority.createRoot({ commonName: 'dev-ss' });
      const other = await CertificateAuthority.createRoot({ commonName: 'dev-ss' });
      lab.hub.addX509Device('dev-ss', { thumbprint: new X509Certificate(own.certPem).fingerprint });
      const first = await x509Client(lab, transport, 'dev-ss', own);
      await sendsTelemetry(first, lab, 'dev-ss');
      await first.close();

      const rejected = new Promise<{ reason: string }>((resolve) =>
        lab.hub.events.onceEvent('auth-rejected', resolve),
      );
      expect(await refused(await x509Client(lab, transport, 'dev-ss', other))).toBeInstanceOf(
        errors.UnauthorizedError,
      );
      expect(await within(rejected, 2000, 'auth-rejected')).toMatchObject({ reason: 'thumbprint-mismatch' });
      expect(lab.hub.messages('dev-ss')).toHaveLength(1);
    });
  }

  it('Mqtt: a CA-signed certificate whose CN is another device is refused (subject-mismatch)', async () => {
    const lab = await bench.hubLab({ caCertificates: [bench.pki.root.certPem] });
    lab.hub.addX509Device('dev-a', { ca: true });
    const rejected = new Promise<{ reason: string }>((resolve) =>
      lab.hub.events.onceEvent('auth-rejected', resolve),
    );
    const cert = await bench.pki.issueClient('dev-b');
    const client = await x509Client(lab, 'Mqtt', 'dev-a', { certPem: cert.chainPem, keyPem: cert.keyPem });
    expect(await refused(client)).toBeInstanceOf(errors.UnauthorizedError);
    expect(await within(rejected, 2000, 'auth-rejected')).toMatchObject({ reason: 'subject-mismatch' });
  });

  it('Amqp: a certificate from a CA the hub has not registered is refused (untrusted-certificate)', async () => {
    const foreign = await bench.pki.createAuthority('Foreign Root', { intermediate: true });
    const lab = await bench.hubLab({ caCertificates: [bench.pki.root.certPem] });
    lab.hub.addX509Device('dev-f', { ca: true });
    const rejected = new Promise<{ reason: string }>((resolve) =>
      lab.hub.events.onceEvent('auth-rejected', resolve),
    );
    const leaf = await foreign.issueLeaf({ commonName: 'dev-f', usage: 'client' });
    const client = await x509Client(lab, 'Amqp', 'dev-f', { certPem: leaf.chainPem, keyPem: leaf.keyPem });
    expect(await refused(client)).toBeInstanceOf(errors.UnauthorizedError);
    expect(await within(rejected, 2000, 'auth-rejected')).toMatchObject({ reason: 'untrusted-certificate' });
    expect(lab.hub.messages('dev-f')).toHaveLength(0);
  });

  it('Mqtt: an X.509 device cannot connect with a SAS token, nor a SAS device with only a certificate', async () => {
    const lab = await bench.hubLab({ caCertificates: [bench.pki.root.certPem] });
    lab.hub.addX509Device('dev-x', { ca: true });
    const key = lab.hub.addDevice('dev-k');
    const reasons: string[] = [];
    lab.hub.events.onEvent('auth-rejected', (e) => reasons.push(`${e.deviceId}:${e.reason}`));
    const cs = `HostName=${HUB_HOST}:${endpointOf(lab.hub, 'mqtts').port};DeviceId=dev-x;SharedAccessKey=${key}`;
    const sas = bench.own(Client.fromConnectionString(cs, TRANSPORT_CTORS.Mqtt));
    sas.setRetryPolicy(new NoRetry());
    await configure(sas, lab);
    expect(await refused(sas)).toBeInstanceOf(errors.UnauthorizedError);
    await sas.close();
    const cert = await bench.pki.issueClient('dev-k');
    const client = await x509Client(lab, 'Mqtt', 'dev-k', { certPem: cert.chainPem, keyPem: cert.keyPem });
    expect(await refused(client)).toBeInstanceOf(errors.UnauthorizedError);
    expect(reasons).toEqual(['dev-x:auth-type-mismatch', 'dev-k:auth-type-mismatch']);
  });

  it('MqttWs: an expired CA-signed certificate is refused (certificate-expired)', async () => {
    const lab = await bench.hubLab({ caCertificates: [bench.pki.root.certPem] });
    lab.hub.addX509Device('dev-old', { ca: true });
    const rejected = new Promise<{ reason: string }>((resolve) =>
      lab.hub.events.onceEvent('auth-rejected', resolve),
    );
    const day = 24 * 3600 * 1000;
    const cert = await bench.pki.issueClient('dev-old', {
      notBefore: new Date(Date.now() - 10 * day),
      notAfter: new Date(Date.now() - day),
    });
    const client = await x509Client(lab, 'MqttWs', 'dev-old', {
      certPem: cert.chainPem,
      keyPem: cert.keyPem,
    });
    expect(await refused(client)).toBeInstanceOf(errors.UnauthorizedError);
    expect(await within(rejected, 2000, 'auth-rejected')).toMatchObject({ reason: 'certificate-expired' });
  });

  it('bad X.509 options are refused, naming the field and the fix', async () => {
    const cert = await bench.pki.issueServer([HUB_HOST]);
    const base = { hostName: HUB_HOST, tls: { certPem: cert.chainPem, keyPem: cert.keyPem } };
    const refused = (devices: unknown) => startHub({ ...base, devices } as never);
    await expect(refused([{ deviceId: 'd', x509: { thumbprint: 'not-hex' } }])).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
      message: expect.stringContaining('devices[0].x509.thumbprint'),
    });
    await expect(
      refused([{ deviceId: 'd', x509: { ca: true, thumbprint: 'AB'.repeat(20) } }]),
    ).rejects.toMatchObject({ code: 'E_BAD_OPTION', message: expect.stringContaining('not both') });
    await expect(
      refused([{ deviceId: 'd', primaryKey: Buffer.alloc(32).toString('base64'), x509: { ca: true } }]),
    ).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
      message: expect.stringContaining('primaryKey (SAS) or x509'),
    });
    await expect(
      refused([
        {
          deviceId: 'd',
          modules: [{ moduleId: 'm', primaryKey: Buffer.alloc(32).toString('base64'), x509: { ca: true } }],
        },
      ]),
    ).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
      message: expect.stringContaining('devices[0].modules[0]'),
    });
  });
});
