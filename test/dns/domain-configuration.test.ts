import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mqttjs from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AwsIotEvents, type AwsIotHandle, start } from '../../simulators/aws-iot/index.js';
import { endpointOf } from '../../simulators/common/handle.js';
import type { IssuedCertFiles, PkiHandle } from '../../simulators/pki/index.js';
import { start as startPki } from '../../simulators/pki/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';

const run = promisify(execFile);

/**
 * AWS IoT configurable endpoints with a custom domain: each region holds a domain configuration for the
 * global name with its own server certificate, chosen by SNI; other names get the region's own
 * certificate. Each CONNECT says which name the device asked for (domain-connection).
 */
let pki: PkiHandle;
let regional: IssuedCertFiles;
let global: IssuedCertFiles;
let claim: IssuedCertFiles;
let aws: AwsIotHandle | undefined;
beforeAll(async () => {
  pki = await startPki({ name: 'pki' });
  regional = await pki.issueServer(['us-east-1.iot.example.com']);
  global = await pki.issueServer(['global.iot.example.com']);
  claim = await pki.issueClient('claim');
});
afterAll(() => pki.stop());
afterEach(async () => {
  await aws?.stop();
  aws = undefined;
});

async function startRegion(): Promise<AwsIotHandle> {
  aws = await start({
    name: 'us-east-1',
    region: 'us-east-1',
    endpoint: 'us-east-1.iot.example.com',
    tls: { certPem: regional.chainPem, keyPem: regional.keyPem },
    domainConfigurations: [
      { domainName: 'global.iot.example.com', certPem: global.chainPem, keyPem: global.keyPem },
    ],
    certificates: [{ pem: claim.certPem, claim: true }],
  });
  return aws;
}

/** The subjectAltName of the certificate the server shows for `servername` (openssl s_client). */
async function sanFor(port: number, servername: string | undefined): Promise<string> {
  const sni = servername ? ['-servername', servername] : ['-noservername'];
  const { stdout } = await run(
    'sh',
    [
      '-c',
      'openssl s_client -connect "$0" "$@" </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName',
      `127.0.0.1:${port}`,
      ...sni,
    ],
    { timeout: 10_000 },
  );
  return stdout;
}

describe.skipIf(missing('cmd:openssl'))('aws-iot domain configurations', () => {
  it('serves the custom domain’s certificate to a client asking for it by SNI, its own to the others', async () => {
    const port = endpointOf(await startRegion(), 'mqtts').port;
    expect(await sanFor(port, 'global.iot.example.com')).toMatch(/DNS:global\.iot\.example\.com/);
    expect(await sanFor(port, 'GLOBAL.iot.example.com')).toMatch(/DNS:global\.iot\.example\.com/);
    expect(await sanFor(port, 'us-east-1.iot.example.com')).toMatch(/DNS:us-east-1\.iot\.example\.com/);
    expect(await sanFor(port, undefined)).toMatch(/DNS:us-east-1\.iot\.example\.com/);
  });

  it('reports the name a device asked for, the domain that served it, and the region’s endpoint', async () => {
    const r = await startRegion();
    const seen: AwsIotEvents['domain-connection'][] = [];
    r.events.onEvent('domain-connection', (e) => seen.push(e));
    const client = mqttjs.connect({
      protocol: 'mqtts',
      host: '127.0.0.1',
      port: endpointOf(r, 'mqtts').port,
      servername: 'global.iot.example.com',
      ca: pki.root.certPem,
      cert: claim.chainPem,
      key: claim.keyPem,
      clientId: 'claim-1',
      reconnectPeriod: 0,
    });
    try {
      await within(
        new Promise<void>((resolve, reject) => {
          client.once('connect', () => resolve());
          client.once('error', reject);
        }),
        10_000,
        'CONNACK from the region',
      );
    } finally {
      client.end(true);
    }
    expect(seen).toEqual([
      {
        clientId: 'claim-1',
        servername: 'global.iot.example.com',
        domainName: 'global.iot.example.com',
        region: 'us-east-1',
        endpoint: 'us-east-1.iot.example.com',
      },
    ]);
  });
});
