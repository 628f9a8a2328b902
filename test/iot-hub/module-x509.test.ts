import { execFile } from 'node:child_process';
import device from 'azure-iot-device';
import { beforeAll, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import type { IotHubEvents } from '../../simulators/iot-hub/index.js';
import type { CertificateAuthority, IssuedCert, IssuedCertFiles } from '../../simulators/pki/index.js';
import { missing } from '../helpers/capability.js';
import {
  configure,
  errors,
  HUB_HOST,
  type HubLab,
  hostFor,
  hubTestBench,
  Message,
  NoRetry,
  openAndSend,
  TRANSPORT_CTORS,
  type TransportName,
  within,
} from './helpers.js';

/**
 * CA-signed X.509 module identities (IoT Hub authentication type certificateAuthority): the module presents a
 * certificate that chains to a CA registered (and verified) in the hub, and its subject CN is the module
 * identity's name `<deviceId>/<moduleId>` (MicrosoftDocs/azure-docs#63273, #111494). Clients: the official
 * Node SDK's ModuleClient (its connection-string parser takes SAS only, azure-iot-sdk-node#1216, so the module
 * is given an X509AuthenticationProvider that names the module), mosquitto_pub on MQTT and curl on HTTPS.
 * Refusals are the hub's own on each transport: CONNACK 5, the link closed amqp:unauthorized-access, HTTP 401;
 * each leaves an `auth-rejected` event naming the module and the reason.
 */
const { ModuleClient, X509AuthenticationProvider } = device;
type Module = InstanceType<typeof ModuleClient>;
type Rejected = IotHubEvents['auth-rejected'];

const bench = hubTestBench();
let foreign: CertificateAuthority;
beforeAll(async () => {
  // A CA the hub has not registered (and so never verified), with its own intermediate.
  foreign = await bench.pki.createAuthority('Unregistered Root', { intermediate: true });
});

/** A hub whose verified CA is the lab root, with device `edge-ca` and its CA-signed module `filter`. */
async function caLab(): Promise<HubLab> {
  const l = await bench.hubLab({ caCertificates: [bench.pki.root.certPem] });
  l.hub.addDevice('edge-ca');
  l.hub.addModule('edge-ca', 'filter', { x509: { ca: true } });
  l.hub.addModule('edge-ca', 'other', { x509: { ca: true } });
  return l;
}

/**
 * A ModuleClient for `<deviceId>/<moduleId>` authenticating with `cert` (the chain it sends, and the key),
 * closed after the test.
 */
async function x509Module(
  l: HubLab,
  transport: TransportName,
  cert: { chainPem: string; keyPem: string },
): Promise<Module> {
  const provider = new X509AuthenticationProvider({
    host: hostFor(l, transport),
    deviceId: 'edge-ca',
    moduleId: 'filter',
    x509: { cert: cert.chainPem, key: cert.keyPem },
  });
  const c = bench.own(ModuleClient.fromAuthenticationProvider(provider, TRANSPORT_CTORS[transport]));
  c.setRetryPolicy(new NoRetry());
  await configure(c as never, l);
  return c;
}

function rejections(l: HubLab): Rejected[] {
  const seen: Rejected[] = [];
  l.hub.events.onEvent('auth-rejected', (e) => seen.push(e));
  return seen;
}

const refused = (c: Module) => openAndSend(c, 'open and send with a module certificate');

const TRANSPORTS = ['Mqtt', 'MqttWs', 'Amqp', 'AmqpWs'] as const;

describe('iot-hub CA-signed module certificates with the Azure IoT device SDK (ModuleClient)', () => {
  for (const transport of TRANSPORTS) {
    it(`${transport}: a module certificate with CN <device>/<module>, chained through the intermediate, connects and sends as the module`, async () => {
      const lab = await caLab();
      const authed = new Promise<IotHubEvents['device-authenticated']>((resolve) =>
        lab.hub.events.onceEvent('device-authenticated', resolve),
      );
      // The module sends leaf + lab intermediate; the hub has registered only the root.
      const cert = await bench.pki.issueClient('edge-ca/filter');
      const client = await x509Module(lab, transport, cert);
      await within(client.open(), 8000, 'module open');
      await within(client.sendEvent(new Message('from-x509-module')), 8000, 'module sendEvent');
      expect(lab.hub.messages('edge-ca/filter').map((m) => m.body.toString())).toEqual(['from-x509-module']);
      expect(lab.hub.messages('edge-ca')).toHaveLength(0);
      expect(await within(authed, 2000, 'device-authenticated')).toMatchObject({
        deviceId: 'edge-ca/filter',
        credential: 'x509',
      });
    });

    it(`${transport}: another module's certificate, the device's own, and one from an unregistered CA are refused`, async () => {
      const lab = await caLab();
      const seen = rejections(lab);
      const candidates: IssuedCert[] = [
        await bench.pki.issueClient('edge-ca/other'),
        await bench.pki.issueClient('edge-ca'),
        await foreign.issueLeaf({ commonName: 'edge-ca/filter', usage: 'client' }),
      ];
      for (const cert of candidates) {
        const client = await x509Module(lab, transport, cert);
        expect(await refused(client)).toBeInstanceOf(errors.UnauthorizedError);
        await client.close().catch(() => undefined);
      }
      expect(seen.map((e) => `${e.deviceId}:${e.reason}`)).toEqual([
        'edge-ca/filter:subject-mismatch',
        'edge-ca/filter:subject-mismatch',
        'edge-ca/filter:untrusted-certificate',
      ]);
      expect(lab.hub.messages('edge-ca/filter')).toHaveLength(0);
    });
  }

  it('a device certificate does not open its modules: a CA-signed device and module each need their own CN', async () => {
    const lab = await bench.hubLab({ caCertificates: [bench.pki.root.certPem] });
    lab.hub.addX509Device('edge-ca', { ca: true });
    lab.hub.addModule('edge-ca', 'filter', { x509: { ca: true } });
    const seen = rejections(lab);
    const client = await x509Module(lab, 'Mqtt', await bench.pki.issueClient('edge-ca'));
    expect(await refused(client)).toBeInstanceOf(errors.UnauthorizedError);
    expect(seen).toMatchObject([{ deviceId: 'edge-ca/filter', reason: 'subject-mismatch' }]);
  });
});

/** One command run (bounded by its own timeout); resolves with its exit status, stdout and stderr. */
function run(cmd: string, args: string[]) {
  return new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(cmd, args, { timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? (err as NodeJS.ErrnoException & { code?: unknown }).code : 0;
      resolve({
        status: typeof code === 'number' ? code : -1,
        stdout: String(stdout),
        stderr: String(stderr),
      });
    });
  });
}

describe.skipIf(missing('cmd:mosquitto_pub'))(
  'iot-hub CA-signed module certificates with mosquitto_pub',
  () => {
    /** mosquitto_pub as the MQTT docs have a module connect: client id <d>/<m>, username with api-version. */
    const pub = (l: HubLab, cert: IssuedCertFiles) =>
      run('mosquitto_pub', [
        ...['-h', HUB_HOST, '-p', String(endpointOf(l.hub, 'mqtts').port), '-V', 'mqttv311'],
        ...['--cafile', bench.pki.trust.bundlePath, '--cert', cert.chainPath, '--key', cert.keyPath],
        ...['-i', 'edge-ca/filter', '-u', `${HUB_HOST}/edge-ca/filter/?api-version=2021-04-12`],
        ...['-t', 'devices/edge-ca/modules/filter/messages/events/', '-q', '1', '-m', 'from-mosquitto'],
      ]);

    it('the module publishes with its CA-signed certificate; another CN or an unregistered CA gets CONNACK 5', async () => {
      const lab = await caLab();
      const seen = rejections(lab);
      const ok = await pub(lab, await bench.pki.issueClient('edge-ca/filter'));
      expect(ok).toMatchObject({ status: 0 });
      expect(lab.hub.messages('edge-ca/filter').map((m) => m.body.toString())).toEqual(['from-mosquitto']);

      const otherCn = await pub(lab, await bench.pki.issueClient('edge-ca/other'));
      // MQTT 3.1.1 §3.2.2.3: return code 5, "Connection Refused, not authorized".
      expect(otherCn.status).not.toBe(0);
      expect(otherCn.stderr).toMatch(/not authori[sz]ed/i);
      const leaf = await foreign.issueLeaf({ commonName: 'edge-ca/filter', usage: 'client' });
      const unregistered = await pub(lab, await bench.pki.writeFiles('unregistered-filter', leaf));
      expect(unregistered.status).not.toBe(0);
      expect(unregistered.stderr).toMatch(/not authori[sz]ed/i);
      expect(seen.map((e) => `${e.deviceId}:${e.transport}:${e.reason}`)).toEqual([
        'edge-ca/filter:mqtt:subject-mismatch',
        'edge-ca/filter:mqtt:untrusted-certificate',
      ]);
      expect(lab.hub.messages('edge-ca/filter')).toHaveLength(1);
    });

    it('mosquitto_sub as the module takes its input messages on devices/<d>/modules/<m>/inputs/#', async () => {
      const lab = await caLab();
      const cert = await bench.pki.issueClient('edge-ca/filter');
      const listening = new Promise<void>((resolve) =>
        lab.hub.events.onEvent('listening', (e) => e.feature === 'inputs' && resolve()),
      );
      const sub = run('mosquitto_sub', [
        ...['-h', HUB_HOST, '-p', String(endpointOf(lab.hub, 'mqtts').port), '-V', 'mqttv311'],
        ...['--cafile', bench.pki.trust.bundlePath, '--cert', cert.chainPath, '--key', cert.keyPath],
        ...['-i', 'edge-ca/filter', '-u', `${HUB_HOST}/edge-ca/filter/?api-version=2021-04-12`],
        ...['-t', 'devices/edge-ca/modules/filter/inputs/#', '-q', '1', '-C', '1', '-v', '-W', '10'],
      ]);
      await within(listening, 8000, 'mosquitto_sub subscribed to the inputs');
      const { messageId } = lab.hub.sendToModuleInput('edge-ca', 'filter', 'input1', 'to-mosquitto', {
        k: 'v',
      });
      const out = await sub;
      expect(out).toMatchObject({ status: 0 });
      const [topic = '', payload] = out.stdout.trim().split(' ');
      expect(payload).toBe('to-mosquitto');
      expect(topic).toMatch(/^devices\/edge-ca\/modules\/filter\/inputs\/input1\//);
      const props = new URLSearchParams(topic.split('/inputs/input1/')[1]);
      expect(Object.fromEntries(props)).toEqual({ k: 'v', '$.mid': messageId });
    });
  },
);

describe.skipIf(missing('cmd:curl'))('iot-hub CA-signed module certificates over HTTPS with curl', () => {
  /** POST /devices/<d>/modules/<m>/messages/events with the module's certificate; resolves with the status. */
  const post = async (l: HubLab, cert: IssuedCertFiles) => {
    const port = endpointOf(l.hub, 'https').port;
    const r = await run('curl', [
      ...['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10'],
      ...['--cacert', bench.pki.trust.bundlePath, '--cert', cert.chainPath, '--key', cert.keyPath],
      ...['-X', 'POST', '-H', 'iothub-app-source: curl', '--data', 'from-curl'],
      `https://${HUB_HOST}:${port}/devices/edge-ca/modules/filter/messages/events?api-version=2021-04-12`,
    ]);
    return r.stdout;
  };

  it('the module posts telemetry with its CA-signed certificate (204); another CN or an unregistered CA gets 401', async () => {
    const lab = await caLab();
    const seen = rejections(lab);
    expect(await post(lab, await bench.pki.issueClient('edge-ca/filter'))).toBe('204');
    expect(lab.hub.messages('edge-ca/filter')).toMatchObject([
      { transport: 'https', properties: { source: 'curl' } },
    ]);
    expect(await post(lab, await bench.pki.issueClient('edge-ca/other'))).toBe('401');
    const leaf = await foreign.issueLeaf({ commonName: 'edge-ca/filter', usage: 'client' });
    expect(await post(lab, await bench.pki.writeFiles('unregistered-filter-https', leaf))).toBe('401');
    expect(seen.map((e) => `${e.deviceId}:${e.transport}:${e.reason}`)).toEqual([
      'edge-ca/filter:https:subject-mismatch',
      'edge-ca/filter:https:untrusted-certificate',
    ]);
  });
});
