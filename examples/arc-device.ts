/**
 * An example SORACOM Arc device (seed 002): it asks Krypton for its Azure IoT credentials with curl, as
 * the article does (`POST /v1/provisioning/azure/iot/register`, then `GET .../registrations/{operationId}`
 * until `assigned`), and connects to the hub Krypton names with the certificate and key Krypton returns
 * (Azure's device SDK, MQTT, X.509): one telemetry message. No DPS code on the device: Krypton registered it.
 *
 *   KRYPTON_URL          https://krypton.../v1/provisioning/azure/iot/register
 *   KRYPTON_CA           PEM file curl trusts for Krypton (the SDK reads NODE_EXTRA_CA_CERTS)
 *   HUB_CA               PEM file the SDK trusts for the hub, besides Node's roots and NODE_EXTRA_CA_CERTS
 *   CONNECT_TIMEOUT_S    curl's --connect-timeout (default 5)
 *   DEVICE_TIMEOUT_MS    bound for provisioning + telemetry (default 30000)
 *
 * Exit 0 with one JSON line on stdout ({ deviceId, host }) when the hub acknowledged the message. When
 * Krypton cannot be reached it exits with curl's code and prints curl's message plus what it means
 * ("timed out", "refused"), which is what the seed's device saw; when Krypton refuses (403: not from the
 * SIM network) it exits 22 and prints Krypton's answer.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import common from 'azure-iot-common';
import device from 'azure-iot-device';
import mqtt from 'azure-iot-device-mqtt';

const run = promisify(execFile);

/** What Krypton's status query answers once the device is assigned (see simulators/krypton). */
export interface Credentials {
  operationId: string;
  status: 'assigning' | 'assigned' | 'failed';
  deviceId: string;
  /** The assigned IoT Hub's host name. */
  host: string;
  /** Device certificate (chain, PEM) and its private key. */
  certificate: string;
  privateKey: string;
  errorMessage?: string;
}

/** curl exit codes a device meets on the way to Krypton, in the words the report's classifier reads. */
const CURL_MEANING: Record<number, string> = {
  6: 'could not resolve host',
  7: 'connection failed',
  28: 'connection timed out',
  35: 'TLS handshake failed',
  60: 'unable to get local issuer certificate',
};

class StepError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** One curl request to Krypton; its JSON answer, or a StepError with curl's exit code and meaning. */
async function krypton(
  url: string,
  method: 'POST' | 'GET',
  env: NodeJS.ProcessEnv,
): Promise<Partial<Credentials>> {
  const args = ['-sS', '--fail-with-body', '--connect-timeout', env.CONNECT_TIMEOUT_S ?? '5', '-X', method];
  if (method === 'POST') args.push('-H', 'Content-Type: application/json', '--data', '{}');
  if (env.KRYPTON_CA) args.push('--cacert', env.KRYPTON_CA);
  try {
    const { stdout } = await run('curl', [...args, url], { timeout: 60_000 });
    // Krypton's answer: its fields arrive as the status says (all of them once `assigned`).
    return JSON.parse(stdout) as Partial<Credentials>;
  } catch (err) {
    const e = err as { code?: number | string; stderr?: string; stdout?: string; message: string };
    if (typeof e.code !== 'number') throw new StepError(`cannot run curl: ${e.message}`, 2);
    const said = [(e.stderr ?? '').trim(), (e.stdout ?? '').trim()].filter(Boolean).join(' ');
    const meaning = CURL_MEANING[e.code] ?? 'request failed';
    throw new StepError(`Krypton: ${meaning} (curl exit ${e.code}): ${said}`, e.code);
  }
}

/** Krypton's register call, then its status query until the device is assigned (bounded by `timeoutMs`). */
async function fetchCredentials(env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Credentials> {
  const url = env.KRYPTON_URL;
  if (!url) throw new StepError('KRYPTON_URL is not set', 2);
  const started = await krypton(url, 'POST', env);
  const id = typeof started.operationId === 'string' ? started.operationId : '';
  if (!id) throw new StepError(`Krypton: no operationId in ${JSON.stringify(started)}`, 1);
  const statusUrl = new URL(`registrations/${encodeURIComponent(id)}`, url).href;
  const deadline = Date.now() + timeoutMs;
  for (let answer = started; ; answer = await krypton(statusUrl, 'GET', env)) {
    if (answer.status === 'assigned') return answer as Credentials;
    if (answer.status === 'failed') {
      throw new StepError(`Krypton: provisioning failed: ${String(answer.errorMessage ?? '?')}`, 1);
    }
    if (Date.now() > deadline)
      throw new StepError(`Krypton: still ${String(answer.status)} after ${timeoutMs} ms`, 1);
    await sleep(500); // the device's polling interval, as SORACOM's example client polls
  }
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StepError(`${what}: timed out after ${ms} ms`, 1)), ms);
    }),
  ]);
}

/** Krypton (which registered the device at DPS) → hub over X.509; resolves with the identity, throws a StepError. */
export async function provisionAndSend(
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ deviceId: string; host: string }> {
  const timeoutMs = Number(env.DEVICE_TIMEOUT_MS ?? 30_000);
  const ca = env.HUB_CA ? await readFile(env.HUB_CA, 'utf8') : undefined;
  return sendWith(await fetchCredentials(env, timeoutMs), timeoutMs, ca);
}

/** One telemetry message to the assigned hub, authenticated by the certificate Krypton returned. */
export async function sendWith(
  creds: Credentials,
  timeoutMs: number,
  ca?: string,
): Promise<{ deviceId: string; host: string }> {
  const cs = `HostName=${creds.host};DeviceId=${creds.deviceId};x509=true`;
  const client = device.Client.fromConnectionString(cs, mqtt.Mqtt);
  client.setRetryPolicy(new common.NoRetry());
  try {
    await bounded(
      client.setOptions({ cert: creds.certificate, key: creds.privateKey, ...(ca ? { ca } : {}) }),
      timeoutMs,
      'setOptions',
    );
    await bounded(client.open(), timeoutMs, 'hub connect');
    const message = new device.Message(JSON.stringify({ hello: 'from arc', at: new Date().toISOString() }));
    await bounded(client.sendEvent(message), timeoutMs, 'telemetry');
  } finally {
    await bounded(client.close(), 1000, 'close').catch(() => undefined);
  }
  return { deviceId: creds.deviceId, host: creds.host };
}

async function main(): Promise<void> {
  try {
    const r = await provisionAndSend();
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  } catch (err) {
    const e = err as Error & { exitCode?: number };
    process.stderr.write(`arc-device: ${e.message}\n`);
    process.exit(e instanceof StepError ? e.exitCode : 1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
