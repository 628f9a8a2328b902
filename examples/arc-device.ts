/**
 * An example SORACOM Arc device (seed 002): it asks Krypton for its Azure IoT credentials with curl, as
 * the article does, registers with them at the Device Provisioning Service (Azure's provisioning SDK,
 * MQTT) and sends one telemetry message to the hub it was assigned (Azure's device SDK, MQTT).
 *
 *   KRYPTON_URL          https://krypton.../v1/provisioning/azure/iot/register
 *   KRYPTON_CA           PEM file curl trusts for Krypton (the SDKs read NODE_EXTRA_CA_CERTS)
 *   CONNECT_TIMEOUT_S    curl's --connect-timeout (default 5)
 *   DEVICE_TIMEOUT_MS    bound for registration + telemetry (default 30000)
 *
 * Exit 0 with one JSON line on stdout ({ deviceId, assignedHub }) when the hub acknowledged the message.
 * When Krypton cannot be reached it exits with curl's code and prints curl's message plus what it means
 * ("timed out", "refused"), which is what the seed's device saw.
 */
import { execFile } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import common from 'azure-iot-common';
import device from 'azure-iot-device';
import mqtt from 'azure-iot-device-mqtt';
import provisioning from 'azure-iot-provisioning-device';
import pmqtt from 'azure-iot-provisioning-device-mqtt';
import symkey from 'azure-iot-security-symmetric-key';

const run = promisify(execFile);

/** What Krypton answers (see simulators/krypton). */
export interface Credentials {
  registrationId: string;
  symmetricKey: string;
  idScope: string;
  provisioningHost: string;
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

async function fetchCredentials(env: NodeJS.ProcessEnv): Promise<Credentials> {
  const url = env.KRYPTON_URL;
  if (!url) throw new StepError('KRYPTON_URL is not set', 2);
  const args = ['-sS', '--fail-with-body', '--connect-timeout', env.CONNECT_TIMEOUT_S ?? '5', '-X', 'POST'];
  args.push('-H', 'Content-Type: application/json', '--data', '{}');
  if (env.KRYPTON_CA) args.push('--cacert', env.KRYPTON_CA);
  try {
    const { stdout } = await run('curl', [...args, url], { timeout: 60_000 });
    return JSON.parse(stdout) as Credentials;
  } catch (err) {
    const e = err as { code?: number | string; stderr?: string; stdout?: string; message: string };
    if (typeof e.code !== 'number') throw new StepError(`cannot run curl: ${e.message}`, 2);
    const said = (e.stderr ?? '').trim() || (e.stdout ?? '').trim();
    const meaning = CURL_MEANING[e.code] ?? 'request failed';
    throw new StepError(`Krypton: ${meaning} (curl exit ${e.code}): ${said}`, e.code);
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

/** Krypton → DPS → hub; resolves with the device's identity, throws a StepError. */
export async function provisionAndSend(
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ deviceId: string; assignedHub: string }> {
  return registerAndSend(await fetchCredentials(env), Number(env.DEVICE_TIMEOUT_MS ?? 30_000));
}

/** DPS registration with a symmetric key (MQTT), then one telemetry message to the assigned hub. */
export async function registerAndSend(
  creds: Credentials,
  timeoutMs: number,
): Promise<{ deviceId: string; assignedHub: string }> {
  const security = new symkey.SymmetricKeySecurityClient(creds.registrationId, creds.symmetricKey);
  // Each SDK package bundles its own copy of the security client's type: the instances are the same.
  const dps = provisioning.ProvisioningDeviceClient.create(
    creds.provisioningHost,
    creds.idScope,
    new pmqtt.Mqtt(),
    security as never,
  );
  // register() returns a promise when given no callback.
  const registered = dps.register() as Promise<{ assignedHub: string; deviceId: string }>;
  const reg = await bounded(registered, timeoutMs, 'DPS registration');
  const cs = `HostName=${reg.assignedHub};DeviceId=${reg.deviceId};SharedAccessKey=${creds.symmetricKey}`;
  const client = device.Client.fromConnectionString(cs, mqtt.Mqtt);
  client.setRetryPolicy(new common.NoRetry());
  try {
    await bounded(client.open(), timeoutMs, 'hub connect');
    const message = new device.Message(JSON.stringify({ hello: 'from arc', at: new Date().toISOString() }));
    await bounded(client.sendEvent(message), timeoutMs, 'telemetry');
  } finally {
    await bounded(client.close(), 1000, 'close').catch(() => undefined);
  }
  return { deviceId: reg.deviceId, assignedHub: reg.assignedHub };
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
