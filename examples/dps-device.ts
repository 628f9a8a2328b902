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
import { registerAndSend } from './arc-device.js';

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
