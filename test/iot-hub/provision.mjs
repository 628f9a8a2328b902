// Runs one DPS registration with the Azure IoT provisioning SDK, in its own process: the SDK has no `ca`
// option, so the lab root comes from NODE_EXTRA_CA_CERTS, which Node reads only at startup.
// Env: DPS_HOST (host[:port]), ID_SCOPE, REG_ID, KEY, TRANSPORT (Http | Mqtt | Amqp), PROXY (Http only);
// X.509 attestation instead of KEY: CERT_FILE (device certificate chain, PEM) and KEY_FILE (its key).
// Prints one JSON line: {"result": RegistrationResult} or {"error": <class name>, "message": ...}.

import { readFileSync } from 'node:fs';
import httpBase from 'azure-iot-http-base';
import provisioning from 'azure-iot-provisioning-device';
import pamqp from 'azure-iot-provisioning-device-amqp';
import phttp from 'azure-iot-provisioning-device-http';
import pmqtt from 'azure-iot-provisioning-device-mqtt';
import symkey from 'azure-iot-security-symmetric-key';
import x509 from 'azure-iot-security-x509';
import { HttpsProxyAgent } from 'https-proxy-agent';

const { DPS_HOST, ID_SCOPE, REG_ID, KEY, TRANSPORT, PROXY, CERT_FILE, KEY_FILE } = process.env;

function transport() {
  if (TRANSPORT === 'Http') {
    // The Http transport dials 443: give its HTTP layer the proxy agent (the lab maps 443 to the fake).
    const base = new httpBase.Http();
    if (PROXY) base.setOptions({ http: { agent: new HttpsProxyAgent(PROXY) } });
    return new phttp.Http(base);
  }
  if (TRANSPORT === 'Mqtt') return new pmqtt.Mqtt();
  if (TRANSPORT === 'Amqp') return new pamqp.Amqp();
  throw new Error(`unknown TRANSPORT ${TRANSPORT}`);
}

const timer = setTimeout(() => {
  process.stdout.write(`${JSON.stringify({ error: 'Timeout', message: 'no answer in 15 s' })}\n`);
  process.exit(3);
}, 15_000);

const security = CERT_FILE
  ? new x509.X509Security(REG_ID, {
      cert: readFileSync(CERT_FILE, 'utf8'),
      key: readFileSync(KEY_FILE, 'utf8'),
    })
  : new symkey.SymmetricKeySecurityClient(REG_ID, KEY);
const client = provisioning.ProvisioningDeviceClient.create(DPS_HOST, ID_SCOPE, transport(), security);
let code = 0;
try {
  const result = await client.register();
  process.stdout.write(`${JSON.stringify({ result })}\n`);
} catch (err) {
  process.stdout.write(
    `${JSON.stringify({ error: err?.constructor?.name, message: String(err?.message) })}\n`,
  );
  code = 2;
}
clearTimeout(timer);
process.exit(code);
