import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type DpsHandle, normalizeThumbprint, registeredThumbprint } from '../../simulators/iot-hub/index.js';
import type { IssuedCertFiles } from '../../simulators/pki/index.js';
import { type DpsLab, type ProvisionTransport, startDpsLab } from './dps-helpers.js';
import {
  Client,
  configure,
  HUB_HOST,
  type HubLab,
  hostFor,
  hubTestBench,
  Message,
  NoRetry,
  TRANSPORT_CTORS,
  within,
} from './helpers.js';

/**
 * DPS X.509 attestation with the official Node provisioning SDK (`X509Security` from azure-iot-security-x509):
 * the registration id is the device certificate's CN; an individual enrollment names the certificate by
 * thumbprint, a group enrollment its signing certificate (here the lab intermediate, the device sending its
 * chain). The assigned device then connects to the hub with the same certificate.
 */
const bench = hubTestBench();
/** The test's DPS lab (stopped after it by the bench). */
let env: DpsLab | undefined;

async function startAll(): Promise<{ lab: HubLab; dps: DpsHandle }> {
  env = bench.own(await startDpsLab(bench.pki));
  return env;
}

/** Registers with the provisioning SDK in a child process, attesting with the certificate files. */
const provisionX509 = (transport: ProvisionTransport, regId: string, cert: IssuedCertFiles) =>
  env!.provision(transport, regId, { certFile: cert.chainPath, keyFile: cert.keyPath });

/** The provisioned device connects to the hub with its certificate and sends. */
async function connectsToHub(l: HubLab, deviceId: string, cert: IssuedCertFiles): Promise<void> {
  const cs = `HostName=${hostFor(l, 'Mqtt')};DeviceId=${deviceId};x509=true`;
  const c = bench.own(Client.fromConnectionString(cs, TRANSPORT_CTORS.Mqtt));
  c.setRetryPolicy(new NoRetry());
  await configure(c, l, 1, { cert: cert.chainPem, key: cert.keyPem });
  await within(c.open(), 8000, 'open with the provisioned certificate');
  await within(c.sendEvent(new Message('x509-provisioned')), 8000, 'sendEvent');
  expect(l.hub.messages(deviceId).map((m) => m.body.toString())).toEqual(['x509-provisioned']);
}

describe('dps X.509 attestation with the Azure IoT provisioning SDK', () => {
  for (const transport of ['Http', 'Mqtt', 'Amqp'] as const) {
    it(`${transport}: an individual enrollment (device certificate thumbprint) is assigned; the device connects with it`, async () => {
      const { lab: l, dps: d } = await startAll();
      const regId = `x509-ind-${transport.toLowerCase()}`;
      const cert = await bench.pki.issueClient(regId);
      d.addX509Enrollment(regId, new X509Certificate(cert.certPem).fingerprint);
      const out = await provisionX509(transport, regId, cert);
      expect(out.error).toBeUndefined();
      expect(out.result).toMatchObject({ assignedHub: HUB_HOST, deviceId: regId });
      await connectsToHub(l, regId, cert);
    });

    it(`${transport}: a group enrollment by the intermediate CA accepts a device whose chain leads to it`, async () => {
      const { lab: l, dps: d } = await startAll();
      d.addX509Group('fleet', bench.pki.intermediate.certPem);
      const regId = `x509-grp-${transport.toLowerCase()}`;
      const cert = await bench.pki.issueClient(regId);
      const out = await provisionX509(transport, regId, cert);
      expect(out.error).toBeUndefined();
      expect(out.result).toMatchObject({ assignedHub: HUB_HOST, deviceId: regId });
      await connectsToHub(l, regId, cert);
    });
  }

  it('Mqtt: a certificate from another CA is refused and nothing is assigned', async () => {
    const { dps: d } = await startAll();
    d.addX509Group('fleet', bench.pki.intermediate.certPem);
    const foreign = await bench.pki.createAuthority('Other Root', { intermediate: true });
    const leaf = await bench.pki.writeFiles(
      'foreign-dev',
      await foreign.issueLeaf({ commonName: 'dev-z', usage: 'client' }),
    );
    const rejected = new Promise<{ reason: string }>((resolve) =>
      d.events.onceEvent('auth-rejected', resolve),
    );
    const out = await provisionX509('Mqtt', 'dev-z', leaf);
    expect(out.error).toBeDefined();
    expect(await within(rejected, 2000, 'auth-rejected')).toMatchObject({ reason: 'untrusted-certificate' });
    expect(d.stats().assigned).toBe(0);
  });

  it('Http: a certificate whose CN is not the registration id is refused', async () => {
    const { dps: d } = await startAll();
    d.addX509Group('fleet', bench.pki.intermediate.certPem);
    const cert = await bench.pki.issueClient('dev-cn');
    const rejected = new Promise<{ reason: string }>((resolve) =>
      d.events.onceEvent('auth-rejected', resolve),
    );
    const out = await provisionX509('Http', 'dev-other', cert);
    expect(out.error).toBe('UnauthorizedError');
    expect(await within(rejected, 2000, 'auth-rejected')).toMatchObject({ reason: 'subject-mismatch' });
    expect(d.stats().assigned).toBe(0);
  });

  it('Mqtt: a hub in another process learns the assigned X.509 device through the shared registry directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fl-registry-x509-'));
    try {
      // The DPS assigns by host name only (no hub handle), as when DPS and hub run in different containers.
      env = bench.own(
        await startDpsLab(bench.pki, { hub: HUB_HOST, registryDir: dir }, { registryDir: dir }),
      );
      env.dps.addX509Group('fleet', bench.pki.intermediate.certPem);
      const cert = await bench.pki.issueClient('remote-x509');
      const out = await provisionX509('Mqtt', 'remote-x509', cert);
      expect(out.result).toMatchObject({ assignedHub: HUB_HOST, deviceId: 'remote-x509' });
      expect(registeredThumbprint(dir, 'remote-x509')).toBe(
        normalizeThumbprint(new X509Certificate(cert.certPem).fingerprint256),
      );
      await connectsToHub(env.lab, 'remote-x509', cert);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
