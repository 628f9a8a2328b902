import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveDeviceKey } from '../../simulators/iot-hub/index.js';
import { missing } from '../helpers/capability.js';
import { docker, ensureImage, IMAGE, labelled, ROOT } from './helpers.js';

/**
 * docker-compose.yml for real: the fieldlab image, every simulator service healthy, and Debian's clients
 * in the `device` service reaching them across the lab network (through the CONNECT proxy, the TLS
 * inspector, MQTT over TLS, the geo DNS); then `down -v` leaves no container, network or volume.
 */
const PROJECT = `fltest${process.pid}`;
const SERVICES = ['dns', 'proxy', 'inspector', 'mqtt', 'hub', 'dps', 'aws-iot', 'tunnel'];
/** The `fleet` group enrollment's key in docker-compose.yml. */
const FLEET_KEY = 'ZmllbGRsYWItZmxlZXQtZ3JvdXAta2V5LTAxMjM0NTY=';

function compose(args: string[], timeoutMs = 120_000) {
  return execa('docker-compose', ['-p', PROJECT, '-f', join(ROOT, 'docker-compose.yml'), ...args], {
    reject: false,
    timeout: timeoutMs,
    env: { FIELDLAB_IMAGE: IMAGE },
  });
}

/** Runs a shell command in a fresh `device` container on the lab network. */
async function onDevice(script: string) {
  const r = await compose(['--profile', 'device', 'run', '--rm', '-T', 'device', 'sh', '-c', script], 60_000);
  return { code: r.exitCode, out: String(r.stdout), err: String(r.stderr) };
}

describe.skipIf(missing('docker', 'cmd:docker-compose'))('docker-compose.yml', () => {
  beforeAll(async () => {
    await ensureImage();
    const up = await compose(['up', '-d']);
    expect(up.exitCode, String(up.stderr)).toBe(0);
  }, 900_000);

  afterAll(async () => {
    await compose(['--profile', 'device', 'down', '-v', '--remove-orphans']);
    // Nothing of the project is left.
    const project = `com.docker.compose.project=${PROJECT}`;
    expect(labelled(project)).toEqual({ containers: '', networks: '' });
    expect(docker(['volume', 'ls', '-q', '--filter', `label=${project}`])).toBe('');
  }, 120_000);

  it('every simulator service becomes healthy', { timeout: 120_000 }, async () => {
    const deadline = Date.now() + 90_000;
    let status: Record<string, string> = {};
    while (Date.now() < deadline) {
      status = {};
      for (const s of SERVICES) {
        const id = String((await compose(['ps', '-q', s])).stdout).trim();
        status[s] = id
          ? docker([
              'inspect',
              '--format',
              '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}',
              id,
            ])
          : 'missing';
      }
      if (Object.values(status).every((v) => v === 'healthy')) break;
      await new Promise((r) => setTimeout(r, 1000)); // polling Docker's health state, bounded above
    }
    expect(status).toEqual(Object.fromEntries(SERVICES.map((s) => [s, 'healthy'])));
    // The image runs as its non-root user.
    const hub = String((await compose(['ps', '-q', 'hub'])).stdout).trim();
    expect(docker(['inspect', '--format', '{{.Config.User}}', hub])).toBe('fieldlab');
  });

  it('curl reaches the hub through the CONNECT proxy, with the lab CA from the shared volume', async () => {
    const r = await onDevice(
      'curl -sS -o /dev/null -w "%{http_code}" --max-time 10 --cacert /lab/ca.pem ' +
        '-x http://proxy.lab.example.com:3128 https://hub.iot.example.com/',
    );
    // The hub's own answer to GET / (no such route): TLS to the hub, through the proxy, succeeded.
    expect(r, r.err).toMatchObject({ code: 0, out: '404' });
  });

  it('the TLS inspector re-signs the hub: a device without its root fails verification', async () => {
    const r = await onDevice(
      'curl -sS -o /dev/null --max-time 10 --cacert /lab/ca.pem -x http://inspector.lab.example.com:3129 ' +
        'https://hub.iot.example.com/',
    );
    expect(r.code).toBe(60); // curl: peer certificate cannot be authenticated with given CA certificates
    expect(r.err).toMatch(
      /unable to get local issuer certificate|self-signed certificate in certificate chain/,
    );
  });

  it('mosquitto clients publish and receive over MQTT/TLS', async () => {
    const r = await onDevice(
      'mosquitto_pub -h mqtt.iot.example.com -p 8883 --cafile /lab/ca.pem -t fl/test -m hello -r -q 1 && ' +
        'mosquitto_sub -h mqtt.iot.example.com -p 8883 --cafile /lab/ca.pem -t fl/test -C 1 -W 10',
    );
    expect(r, r.err).toMatchObject({ code: 0, out: 'hello' });
  });

  it('the geo DNS answers by the device’s network (its address is in the North America range)', async () => {
    const r = await onDevice('dig +short +time=2 +tries=2 global.iot.example.com A');
    expect(r.out.split('\n')).toEqual(['mqtt.iot.example.com.', '198.18.0.10']);
  });

  it('a device provisions itself at the DPS and its telemetry reaches the hub it was assigned', async () => {
    const key = deriveDeviceKey(FLEET_KEY, 'compose-device-1');
    const r = await onDevice(
      `DPS_HOST=global.dps.example.com ID_SCOPE=0ne00FAB001 REGISTRATION_ID=compose-device-1 DEVICE_KEY=${key} ` +
        'DEVICE_TIMEOUT_MS=15000 node /app/dist/examples/dps-device.js',
    );
    expect(r, r.err).toMatchObject({ code: 0 });
    expect(JSON.parse(r.out)).toEqual({ deviceId: 'compose-device-1', assignedHub: 'hub.iot.example.com' });
  });

  it('the AWS IoT persona takes the fleet claim certificate over mutual TLS', async () => {
    const r = await onDevice(
      'mosquitto_pub -h aws-iot.iot.example.com -p 8883 --cafile /lab/ca.pem -i claim-1 -q 1 ' +
        "--cert /lab/fleet-claim.pem --key /lab/fleet-claim-key.pem -t '$aws/certificates/create/json' -m '{}'",
    );
    expect(r, r.err).toMatchObject({ code: 0 });
    const without = await onDevice(
      "mosquitto_pub -h aws-iot.iot.example.com -p 8883 --cafile /lab/ca.pem -i anon -q 1 -t t -m '{}'",
    );
    expect(without.code).not.toBe(0);
  });
});
