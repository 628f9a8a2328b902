import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { provisionAndSend } from '../../examples/arc-device.js';
import { endpointOf } from '../../simulators/common/handle.js';
import { type DpsHandle, type IotHubHandle, startDps } from '../../simulators/iot-hub/index.js';
import {
  type KryptonEvents,
  type KryptonHandle,
  type KryptonOptions,
  REGISTER_PATH,
  REGISTRATIONS_PATH,
  start,
} from '../../simulators/krypton/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';
import {
  Client,
  configure,
  HUB_HOST,
  type HubLab,
  Message,
  NoRetry,
  startHubLab,
  TRANSPORT_CTORS,
} from '../iot-hub/helpers.js';

/**
 * SORACOM Krypton's Azure IoT provisioning (seed 002) against the lab DPS and hub: the device asks Krypton
 * (from the SIM network only), Krypton issues a certificate and registers it at DPS over HTTPS with X.509
 * attestation, and the device gets certificate, key and assigned hub and connects with them.
 */
let pki: PkiHandle;
let leaf: { chainPem: string; keyPem: string };
let krypton: KryptonHandle | undefined;
let hubLab: HubLab | undefined;
let dps: DpsHandle | undefined;

beforeAll(async () => {
  pki = await startPki();
  leaf = await pki.issueServer(['krypton.lab.test', '127.0.0.1']);
});
afterAll(async () => {
  await pki.stop();
});
afterEach(async () => {
  await krypton?.stop();
  krypton = undefined;
  await dps?.stop();
  dps = undefined;
  await hubLab?.stop();
  hubLab = undefined;
});

/**
 * A lab hub and a DPS with Krypton's X.509 group (the lab intermediate). The DPS assigns devices to the
 * hub by `localhost:<mqtts port>`, so a device reaches the hub Krypton names without a DNS entry.
 */
async function startCloud(): Promise<{ hub: IotHubHandle; dps: DpsHandle }> {
  hubLab = await startHubLab(pki);
  const hub = hubLab.hub;
  const cert = await pki.issueServer(['dps.lab.test', '127.0.0.1'], { file: 'krypton-dps' });
  dps = await startDps({
    name: 'dps',
    hostName: 'dps.lab.test',
    tls: { certPem: cert.chainPem, keyPem: cert.keyPem },
    hub: {
      hostName: `${HUB_HOST}:${endpointOf(hub, 'mqtts').port}`,
      addX509Device: (id, x509) => hub.addX509Device(id, x509),
    },
    retryAfterSeconds: 0,
    assigningPolls: 1,
  });
  dps.addX509Group('krypton', pki.intermediate.certPem);
  return { hub, dps };
}

async function startKrypton(extra: Partial<KryptonOptions> = {}): Promise<KryptonHandle> {
  const d = dps;
  krypton = await start({
    certPem: leaf.chainPem,
    keyPem: leaf.keyPem,
    allowedSources: ['127.0.0.0/8'],
    ...(d
      ? {
          dps: {
            host: '127.0.0.1',
            port: endpointOf(d, 'https').port,
            hostName: d.hostName,
            idScope: d.idScope,
            caPem: pki.root.certPem,
          },
          issueCertificate: async (registrationId: string) => {
            const c = await pki.issueClient(registrationId);
            return { certPem: c.chainPem, keyPem: c.keyPem };
          },
        }
      : {}),
    ...extra,
  });
  return krypton;
}

async function call(
  path = REGISTER_PATH,
  method = 'POST',
): Promise<{ status: number; headers: Record<string, unknown>; body: Record<string, unknown> }> {
  const ep = krypton!.endpoints[0]!;
  return new Promise((resolve, reject) => {
    const req = request(
      { host: ep.host, port: ep.port, path, method, ca: pki.root.certPem, servername: 'krypton.lab.test' },
      (res) => {
        let data = '';
        res.setEncoding('utf8').on('data', (d: string) => (data += d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(data || '{}') }),
        );
      },
    );
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
    req.end(method === 'POST' ? '{}' : undefined);
  });
}

function nextEvent<K extends keyof KryptonEvents & string>(
  h: KryptonHandle,
  type: K,
): Promise<KryptonEvents[K]> {
  return within(
    new Promise<KryptonEvents[K]>((resolve) => h.events.once(type, resolve)),
    10_000,
    `krypton ${type} event`,
  );
}

function nextDpsEvent(
  d: DpsHandle,
  type: 'registration-request' | 'registration-assigned',
): Promise<unknown> {
  return within(new Promise<unknown>((resolve) => d.events.once(type, resolve)), 10_000, `dps ${type} event`);
}

/** POST register, wait for Krypton's DPS registration to finish, then the status query's answer. */
async function provisionOnce(): Promise<Record<string, unknown>> {
  const done = nextEvent(krypton!, 'provisioned');
  const r = await call();
  expect(r.status).toBe(200);
  await done;
  const s = await call(`${REGISTRATIONS_PATH}${String(r.body.operationId)}`, 'GET');
  expect(s.status).toBe(200);
  return s.body;
}

describe('krypton: Azure IoT provisioning by X.509 through DPS', () => {
  it('answers register with an operationId and the status query with certificate, privateKey, host and deviceId', async () => {
    await startCloud();
    await startKrypton();
    const r = await call();
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^application\/json/);
    expect(r.body).toMatchObject({ operationId: expect.any(String), status: 'assigning' });
    expect(r.body).not.toHaveProperty('certificate');
    const assigned = nextEvent(krypton!, 'provisioned');
    await assigned;
    const s = await call(`${REGISTRATIONS_PATH}${String(r.body.operationId)}`, 'GET');
    expect(s.status).toBe(200);
    expect(s.body).toMatchObject({
      operationId: r.body.operationId,
      status: 'assigned',
      deviceId: 'krypton-127-0-0-1',
      host: `${HUB_HOST}:${endpointOf(hubLab!.hub, 'mqtts').port}`,
      certificate: expect.stringContaining('-----BEGIN CERTIFICATE-----'),
      privateKey: expect.stringContaining('PRIVATE KEY-----'),
    });
    // The certificate is the device's: CN = device id, issued by the CA the DPS group enrollment names.
    const cert = new X509Certificate(String(s.body.certificate));
    expect(cert.subject).toContain('CN=krypton-127-0-0-1');
    expect(cert.checkIssued(new X509Certificate(pki.intermediate.certPem))).toBe(true);
    expect(
      cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(String(s.body.privateKey))),
    ).toBe(true);
  });

  it('registers the device at DPS itself, over HTTPS with X.509 attestation', async () => {
    const { dps: d } = await startCloud();
    await startKrypton();
    const requested = nextDpsEvent(d, 'registration-request');
    const assigned = nextDpsEvent(d, 'registration-assigned');
    await provisionOnce();
    expect(await requested).toMatchObject({ registrationId: 'krypton-127-0-0-1', transport: 'https' });
    expect(await assigned).toMatchObject({ deviceId: 'krypton-127-0-0-1', transport: 'https' });
    expect(d.stats()).toMatchObject({ registrations: 1, assigned: 1, authRejected: 0 });
    expect(krypton!.stats()).toMatchObject({ registrations: 1, assigned: 1, failed: 0 });
  });

  it('the device connects to the assigned hub with the returned certificate (X.509) and sends', async () => {
    const { hub } = await startCloud();
    await startKrypton();
    const creds = await provisionOnce();
    const authenticated = within(
      new Promise<unknown>((resolve) => hub.events.once('device-authenticated', resolve)),
      10_000,
      'device-authenticated',
    );
    const c = Client.fromConnectionString(
      `HostName=${String(creds.host)};DeviceId=${String(creds.deviceId)};x509=true`,
      TRANSPORT_CTORS.Mqtt,
    );
    c.setRetryPolicy(new NoRetry());
    try {
      await configure(c, hubLab!, 1, { cert: String(creds.certificate), key: String(creds.privateKey) });
      await within(c.open(), 8000, 'open with the certificate from Krypton');
      await within(c.sendEvent(new Message('via krypton')), 8000, 'sendEvent');
    } finally {
      await c.close().catch(() => undefined);
    }
    expect(await authenticated).toMatchObject({
      deviceId: 'krypton-127-0-0-1',
      credential: 'x509',
      transport: 'mqtt',
    });
    expect(hub.messages('krypton-127-0-0-1').map((m) => m.body.toString())).toEqual(['via krypton']);
  });

  it('reports a DPS refusal as status failed with what DPS said (certificate from a CA DPS does not trust)', async () => {
    await startCloud();
    const foreign = await pki.createAuthority('Not The Krypton CA');
    await startKrypton({
      issueCertificate: async (registrationId) => {
        const c = await foreign.issueLeaf({ commonName: registrationId, usage: 'client' });
        return { certPem: c.certPem, keyPem: c.keyPem };
      },
    });
    const s = await provisionOnce();
    expect(s).toMatchObject({
      status: 'failed',
      errorMessage: expect.stringContaining('DPS register: HTTP 401'),
    });
    expect(s).not.toHaveProperty('certificate');
    expect(dps!.stats()).toMatchObject({ assigned: 0, authRejected: 1 });
  });

  it('refuses a request from outside the SIM network with 403, naming the source and the SIM ranges', async () => {
    krypton = await start({ certPem: leaf.chainPem, keyPem: leaf.keyPem });
    const denied = nextEvent(krypton, 'source-denied');
    const register = nextEvent(krypton, 'register');
    const r = await call();
    expect(r.status).toBe(403);
    expect(r.body).toEqual({
      code: 'FORBIDDEN',
      message: expect.stringMatching(/127\.0\.0\.1.*100\.64\.0\.0\/10/),
    });
    expect(await denied).toEqual({
      source: '127.0.0.1',
      path: REGISTER_PATH,
      allowedSources: ['100.64.0.0/10'],
      status: 403,
    });
    expect(await register).toEqual({ source: '127.0.0.1', allowed: false, status: 403 });
    // The status query is guarded the same way.
    expect((await call(`${REGISTRATIONS_PATH}x`, 'GET')).status).toBe(403);
    expect(krypton.stats()).toMatchObject({ denied: 2, registrations: 0 });
  });

  it('404 for an unknown operation, other paths; 405 (with Allow) for other methods; 500 with no DPS configured', async () => {
    krypton = await start({ certPem: leaf.chainPem, keyPem: leaf.keyPem, allowedSources: ['127.0.0.1'] });
    expect((await call(`${REGISTRATIONS_PATH}nope`, 'GET')).status).toBe(404);
    expect((await call('/v1/provisioning/aws/iot/bootstrap')).status).toBe(404);
    const wrong = await call(REGISTER_PATH, 'GET');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe('POST');
    expect((await call(`${REGISTRATIONS_PATH}x`, 'POST')).headers.allow).toBe('GET');
    const unconfigured = await call();
    expect(unconfigured.status).toBe(500);
    expect(unconfigured.body.code).toBe('NOT_CONFIGURED');
  });

  it('rejects bad options with E_BAD_OPTION naming the field', async () => {
    await expect(
      start({ certPem: leaf.chainPem, keyPem: leaf.keyPem, allowedSources: ['not-a-net'] }),
    ).rejects.toMatchObject({ code: 'E_BAD_OPTION', message: expect.stringContaining('allowedSources') });
    await expect(start({ certPem: '', keyPem: leaf.keyPem })).rejects.toMatchObject({ code: 'E_BAD_OPTION' });
    await expect(
      start({
        certPem: leaf.chainPem,
        keyPem: leaf.keyPem,
        dps: { host: '127.0.0.1', port: 1, hostName: 'd', idScope: 's', caPem: 'x' },
      }),
    ).rejects.toMatchObject({ code: 'E_BAD_OPTION', message: expect.stringContaining('issueCertificate') });
  });

  it('stops idempotently with no open connections', async () => {
    krypton = await start({ certPem: leaf.chainPem, keyPem: leaf.keyPem });
    await call();
    await Promise.all([krypton.stop(), krypton.stop()]);
    await expect(call()).rejects.toThrow();
  });

  describe.skipIf(missing('cmd:curl'))('with curl and the example device, as in the seed', () => {
    it('curl POSTs as the seed does and reads the operationId', async () => {
      await startCloud();
      await startKrypton();
      const ep = krypton!.endpoints[0]!;
      const r = await execa(
        'curl',
        [
          '-sS',
          '--max-time',
          '5',
          '-X',
          'POST',
          '-H',
          'Content-Type: application/json',
          '--resolve',
          `krypton.lab.test:${ep.port}:127.0.0.1`,
          '--cacert',
          pki.trust.bundlePath,
          `https://krypton.lab.test:${ep.port}${REGISTER_PATH}`,
        ],
        { reject: false, timeout: 10_000 },
      );
      expect(r.exitCode).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ operationId: expect.any(String), status: 'assigning' });
    });

    it('examples/arc-device provisions through Krypton and sends over X.509, with no DPS code', async () => {
      const { hub } = await startCloud();
      await startKrypton();
      const ep = krypton!.endpoints[0]!;
      const r = await within(
        provisionAndSend({
          KRYPTON_URL: `https://127.0.0.1:${ep.port}${REGISTER_PATH}`,
          KRYPTON_CA: pki.trust.bundlePath,
          HUB_CA: pki.trust.bundlePath,
          DEVICE_TIMEOUT_MS: '10000',
        }),
        20_000,
        'arc-device',
      );
      expect(r).toEqual({
        deviceId: 'krypton-127-0-0-1',
        host: `${HUB_HOST}:${endpointOf(hub, 'mqtts').port}`,
      });
      expect(hub.messages('krypton-127-0-0-1')).toHaveLength(1);
    });

    it("examples/arc-device reports Krypton's 403 with its body (exit 22)", async () => {
      krypton = await start({ certPem: leaf.chainPem, keyPem: leaf.keyPem });
      const ep = krypton.endpoints[0]!;
      await expect(
        provisionAndSend({
          KRYPTON_URL: `https://127.0.0.1:${ep.port}${REGISTER_PATH}`,
          KRYPTON_CA: pki.trust.bundlePath,
        }),
      ).rejects.toMatchObject({
        exitCode: 22,
        message: expect.stringMatching(/403.*FORBIDDEN.*127\.0\.0\.1/),
      });
    });
  });
});
