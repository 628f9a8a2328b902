import { execFile } from 'node:child_process';
import {
  IoTSecureTunnelingClient,
  IoTSecureTunnelingServiceException,
  ListTunnelsCommand,
  OpenTunnelCommand,
} from '@aws-sdk/client-iotsecuretunneling';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { LAB_ACCESS_KEY_ID, type TunnelServiceEvents } from '../../simulators/tunnel-service/index.js';
import { missing } from '../helpers/capability.js';
import { type Lab, startLab, stopLab, within } from './helpers.js';

/**
 * `auth: sigv4`: the management API verifies AWS Signature Version 4 like AWS does, so a client with the
 * wrong secret, key, region or clock fails in the lab with the error AWS gives. Clients: the AWS SDK for
 * JavaScript v3, the AWS CLI (botocore) and curl's own `--aws-sigv4`, three independent signers.
 */

const REGION = 'eu-west-1';
const CREDENTIALS = { accessKeyId: 'AKIAFIELDLABTEST0001', secretAccessKey: 'lab-secret/with+chars=' };

let lab: Lab | undefined;
const clients: IoTSecureTunnelingClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await stopLab(lab);
  lab = undefined;
});

function sdk(
  l: Lab,
  o: {
    region?: string;
    accessKeyId?: string;
    secretAccessKey?: string;
    systemClockOffset?: number;
    maxAttempts?: number;
  } = {},
): IoTSecureTunnelingClient {
  const client = new IoTSecureTunnelingClient({
    endpoint: endpointOf(l.svc, 'api').url as string,
    region: o.region ?? REGION,
    credentials: {
      accessKeyId: o.accessKeyId ?? CREDENTIALS.accessKeyId,
      secretAccessKey: o.secretAccessKey ?? CREDENTIALS.secretAccessKey,
    },
    maxAttempts: o.maxAttempts ?? 1,
    ...(o.systemClockOffset !== undefined ? { systemClockOffset: o.systemClockOffset } : {}),
  });
  clients.push(client);
  return client;
}

function authRejections(l: Lab): Array<TunnelServiceEvents['auth-rejected']> {
  const seen: Array<TunnelServiceEvents['auth-rejected']> = [];
  l.svc.events.onEvent('auth-rejected', (e) => seen.push(e));
  return seen;
}

async function rejection(p: Promise<unknown>): Promise<IoTSecureTunnelingServiceException> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(IoTSecureTunnelingServiceException);
    return err as IoTSecureTunnelingServiceException;
  }
  throw new Error('expected a rejection');
}

const startSigv4 = () => startLab({ auth: 'sigv4', region: REGION, credentials: CREDENTIALS });

describe('tunnel-service management API with auth: sigv4 (AWS SDK v3)', () => {
  it('accepts a client signing with the lab credentials and region, and tells clients what they are', async () => {
    lab = await startSigv4();
    expect(lab.svc.apiClient).toEqual({ region: REGION, ...CREDENTIALS, auth: 'sigv4' });
    const seen = authRejections(lab);
    const out = await sdk(lab).send(new OpenTunnelCommand({ destinationConfig: { services: ['SSH'] } }));
    expect(out.tunnelId).toBeTruthy();
    const listed = await sdk(lab).send(new ListTunnelsCommand({}));
    expect(listed.tunnelSummaries).toHaveLength(1);
    expect(seen).toEqual([]);
  });

  it('refuses a wrong secret with InvalidSignatureException (403)', async () => {
    lab = await startSigv4();
    const seen = authRejections(lab);
    const err = await rejection(
      sdk(lab, { secretAccessKey: 'not-the-secret' }).send(new OpenTunnelCommand({})),
    );
    expect(err.name).toBe('InvalidSignatureException');
    expect(err.$metadata.httpStatusCode).toBe(403);
    expect(err.message).toMatch(
      /^The request signature we calculated does not match the signature you provided/,
    );
    expect(seen).toMatchObject([
      { operation: 'OpenTunnel', reason: 'signature', errorType: 'InvalidSignatureException', status: 403 },
    ]);
    expect(lab.svc.stats().registrySize).toBe(0);
  });

  it('refuses an unknown access key with UnrecognizedClientException (403)', async () => {
    lab = await startSigv4();
    const seen = authRejections(lab);
    const err = await rejection(
      sdk(lab, { accessKeyId: 'AKIAOTHERKEY00000000' }).send(new OpenTunnelCommand({})),
    );
    expect(err.name).toBe('UnrecognizedClientException');
    expect(err.$metadata.httpStatusCode).toBe(403);
    expect(err.message).toBe('The security token included in the request is invalid.');
    expect(seen).toMatchObject([{ reason: 'unknown-key', accessKeyId: 'AKIAOTHERKEY00000000' }]);
  });

  it('refuses a signature scoped to another region', async () => {
    lab = await startSigv4();
    const seen = authRejections(lab);
    const err = await rejection(sdk(lab, { region: 'us-west-2' }).send(new OpenTunnelCommand({})));
    expect(err.name).toBe('InvalidSignatureException');
    expect(err.$metadata.httpStatusCode).toBe(403);
    expect(err.message).toBe("Credential should be scoped to a valid region, not 'us-west-2'. ");
    expect(seen).toMatchObject([{ reason: 'region', errorType: 'InvalidSignatureException' }]);
  });

  it('refuses a clock more than 5 minutes behind or ahead (Signature expired / not yet current)', async () => {
    lab = await startSigv4();
    const seen = authRejections(lab);
    const behind = await rejection(
      sdk(lab, { systemClockOffset: -10 * 60_000 }).send(new OpenTunnelCommand({})),
    );
    expect(behind.name).toBe('InvalidSignatureException');
    expect(behind.message).toMatch(
      /^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)$/,
    );
    // AWS JSON services answer a stale signature with 400 (and a Date header the SDK corrects from).
    expect(behind.$metadata.httpStatusCode).toBe(400);
    const ahead = await rejection(
      sdk(lab, { systemClockOffset: 10 * 60_000 }).send(new OpenTunnelCommand({})),
    );
    expect(ahead.name).toBe('InvalidSignatureException');
    expect(ahead.message).toMatch(/^Signature not yet current: .* is still later than .* \+ 5 min\.\)$/);
    expect(seen.map((e) => e.reason)).toEqual(['expired', 'not-yet-valid']);
    // Four minutes off is within AWS's allowance.
    await expect(
      sdk(lab, { systemClockOffset: -4 * 60_000 }).send(new OpenTunnelCommand({})),
    ).resolves.toHaveProperty('tunnelId');
  });

  it('lets an SDK with retries correct its clock from the Date header, as it does against AWS', async () => {
    lab = await startSigv4();
    const seen = authRejections(lab);
    const client = sdk(lab, { systemClockOffset: -30 * 60_000, maxAttempts: 2 });
    await expect(client.send(new OpenTunnelCommand({}))).resolves.toHaveProperty('tunnelId');
    expect(seen.map((e) => e.reason)).toEqual(['expired']);
    expect(Math.abs(client.config.systemClockOffset ?? 0)).toBeLessThan(60_000);
  });

  it('refuses an unsigned request with MissingAuthenticationTokenException, before the operation', async () => {
    lab = await startSigv4();
    const seen = authRejections(lab);
    const res = await fetch(`${endpointOf(lab.svc, 'api').url}/`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': 'IoTSecuredTunneling.OpenTunnel',
      },
      body: '{}',
    });
    expect(res.status).toBe(403);
    expect(res.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException');
    expect(await res.json()).toEqual({
      __type: 'MissingAuthenticationTokenException',
      message: 'Missing Authentication Token',
    });
    expect(seen).toMatchObject([{ reason: 'missing' }]);
    expect(lab.svc.stats().registrySize).toBe(0);
  });

  it('refuses a malformed Authorization header or a credential date that is not the X-Amz-Date day', async () => {
    lab = await startSigv4();
    const seen = authRejections(lab);
    const post = (authorization: string, amzDate?: string) =>
      fetch(`${endpointOf(lab?.svc as Lab['svc'], 'api').url}/`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-amz-json-1.1',
          'x-amz-target': 'IoTSecuredTunneling.ListTunnels',
          authorization,
          ...(amzDate ? { 'x-amz-date': amzDate } : {}),
        },
        body: '{}',
      });
    const scope = `${CREDENTIALS.accessKeyId}/20260101/${REGION}/IoTSecuredTunneling/aws4_request`;
    const incomplete = await post(`AWS4-HMAC-SHA256 Credential=${scope}`);
    expect(incomplete.status).toBe(403);
    const body = (await incomplete.json()) as { __type: string; message: string };
    expect(body.__type).toBe('IncompleteSignatureException');
    expect(body.message).toContain("Authorization header requires 'Signature' parameter.");
    expect(body.message).toContain("requires existence of either a 'X-Amz-Date' or a 'Date' header");
    const otherDay = await post(
      `AWS4-HMAC-SHA256 Credential=${scope}, SignedHeaders=host;x-amz-date, Signature=${'0'.repeat(64)}`,
      '20260102T000000Z',
    );
    expect(otherDay.status).toBe(403);
    expect(((await otherDay.json()) as { message: string }).message).toBe(
      "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20260101' != '20260102', from '20260102T000000Z'.",
    );
    expect(seen.map((e) => e.reason)).toEqual(['incomplete', 'scope']);
  });

  it('defaults to the lab access key id and a random secret when none is given', async () => {
    lab = await startLab({ auth: 'sigv4' });
    const { accessKeyId, secretAccessKey, region } = lab.svc.apiClient;
    expect(accessKeyId).toBe(LAB_ACCESS_KEY_ID);
    expect(secretAccessKey.length).toBeGreaterThanOrEqual(32);
    await expect(
      sdk(lab, { region, accessKeyId, secretAccessKey }).send(new OpenTunnelCommand({})),
    ).resolves.toHaveProperty('tunnelId');
    // The shared test client (any credentials) now fails: auth is on.
    await expect(lab.sdk.send(new OpenTunnelCommand({}))).rejects.toMatchObject({
      name: 'UnrecognizedClientException',
    });
  });
});

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  return within(
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(cmd, args, { env, timeout: 20_000 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    }),
    25_000,
    `${cmd} to finish`,
  );
}

describe.skipIf(missing('cmd:aws'))('auth: sigv4 with the AWS CLI', () => {
  const cli = (l: Lab, secret: string, region = REGION) =>
    run(
      'aws',
      [
        'iotsecuretunneling',
        'open-tunnel',
        '--endpoint-url',
        endpointOf(l.svc, 'api').url as string,
        '--output',
        'json',
      ],
      {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
        AWS_SECRET_ACCESS_KEY: secret,
        AWS_DEFAULT_REGION: region,
        AWS_CONFIG_FILE: '/nonexistent/fieldlab-aws-config',
        AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/fieldlab-aws-credentials',
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_MAX_ATTEMPTS: '1',
      },
    );

  it('opens a tunnel with the lab credentials; a wrong secret or region fails as against AWS', async () => {
    lab = await startSigv4();
    const ok = await cli(lab, CREDENTIALS.secretAccessKey);
    expect(ok.stderr).toBe('');
    expect(JSON.parse(ok.stdout)).toHaveProperty('tunnelId');
    const bad = await cli(lab, 'wrong');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain(
      'An error occurred (InvalidSignatureException) when calling the OpenTunnel operation',
    );
    const region = await cli(lab, CREDENTIALS.secretAccessKey, 'ap-northeast-1');
    expect(region.stderr).toContain("Credential should be scoped to a valid region, not 'ap-northeast-1'.");
  }, 60_000);
});

describe.skipIf(missing('cmd:curl'))("auth: sigv4 with curl's --aws-sigv4", () => {
  const curl = (l: Lab, provider: string, secret = CREDENTIALS.secretAccessKey) =>
    run('curl', [
      '-sS',
      '--aws-sigv4',
      provider,
      '--user',
      `${CREDENTIALS.accessKeyId}:${secret}`,
      '-H',
      'content-type: application/x-amz-json-1.1',
      '-H',
      'x-amz-target: IoTSecuredTunneling.ListTunnels',
      '--data',
      '{"maxResults": 5}',
      '-w',
      '\n%{http_code}',
      `${endpointOf(l.svc, 'api').url}/`,
    ]);

  it('accepts curl signing for the service, refuses another service name', async () => {
    lab = await startSigv4();
    const seen = authRejections(lab);
    const ok = await curl(lab, `aws:amz:${REGION}:IoTSecuredTunneling`);
    const [okBody, okStatus] = ok.stdout.split('\n');
    expect(okStatus).toBe('200');
    expect(JSON.parse(okBody as string)).toEqual({ tunnelSummaries: [] });
    const other = await curl(lab, `aws:amz:${REGION}:iot`);
    const [body, status] = other.stdout.split('\n');
    expect(status).toBe('403');
    expect(JSON.parse(body as string)).toEqual({
      __type: 'InvalidSignatureException',
      message: "Credential should be scoped to correct service: 'IoTSecuredTunneling'. ",
    });
    expect(seen.map((e) => e.reason)).toEqual(['service']);
  });
});
