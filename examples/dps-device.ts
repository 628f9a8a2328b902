/**
 * An example Azure device that provisions itself: registers at the Device Provisioning Service with a
 * symmetric key (Azure's provisioning SDK, MQTT on 8883) and sends one telemetry message to the hub it
 * was assigned (Azure's device SDK, MQTT). The lab root comes from NODE_EXTRA_CA_CERTS.
 *
 *   DPS_HOST (the provisioning host name), ID_SCOPE, REGISTRATION_ID, DEVICE_KEY (the device's key: for
 *   a group enrollment, HMAC-SHA256(group key, registration id), base64), DEVICE_TIMEOUT_MS (30000)
 *
 * Exit 0 with `{ deviceId, assignedHub }` on stdout once the hub acknowledged the message.
 */
import { pathToFileURL } from 'node:url';
import common from 'azure-iot-common';
import device from 'azure-iot-device';
import mqtt from 'azure-iot-device-mqtt';
import provisioning from 'azure-iot-provisioning-device';
import pmqtt from 'azure-iot-provisioning-device-mqtt';
import symkey from 'azure-iot-security-symmetric-key';

/** What the device knows before it registers. */
export interface Credentials {
  registrationId: string;
  symmetricKey: string;
  idScope: string;
  provisioningHost: string;
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    }),
  ]);
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
    const message = new device.Message(
      JSON.stringify({ hello: 'from dps-device', at: new Date().toISOString() }),
    );
    await bounded(client.sendEvent(message), timeoutMs, 'telemetry');
  } finally {
    await bounded(client.close(), 1000, 'close').catch(() => undefined);
  }
  return { deviceId: reg.deviceId, assignedHub: reg.assignedHub };
}

async function main(): Promise<void> {
  const env = process.env;
  const missing = ['DPS_HOST', 'ID_SCOPE', 'REGISTRATION_ID', 'DEVICE_KEY'].filter((k) => !env[k]);
  if (missing.length > 0) {
    process.stderr.write(`dps-device: set ${missing.join(', ')}\n`);
    process.exit(2);
  }
  try {
    const r = await registerAndSend(
      {
        provisioningHost: env.DPS_HOST ?? '',
        idScope: env.ID_SCOPE ?? '',
        registrationId: env.REGISTRATION_ID ?? '',
        symmetricKey: env.DEVICE_KEY ?? '',
      },
      Number(env.DEVICE_TIMEOUT_MS ?? 30_000),
    );
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  } catch (err) {
    process.stderr.write(`dps-device: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
