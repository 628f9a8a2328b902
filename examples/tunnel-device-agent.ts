/**
 * The device's program for AWS IoT Secure Tunneling, as AWS IoT Device Client's secure tunneling feature
 * does it: connect to AWS IoT Core with the device certificate (aws-iot-device-sdk-v2, MQTT over mutual
 * TLS), subscribe to `$aws/things/<thing>/tunnels/notify`, and on each notification start a destination
 * localproxy with the delivered access token for the delivered services. A later notification (the
 * operator rotated the destination token) stops the running localproxy and starts one with the new token.
 * Runs until SIGTERM/SIGINT. Prints what it does on standard output, one line each:
 *   tunnel-device-agent: subscribed to <topic>
 *   tunnel-device-agent: token for services SSH: starting destination localproxy (#n)
 *   tunnel-device-agent: localproxy #n connected
 *   tunnel-device-agent: localproxy #n ended: <how>
 *
 *   IOT_ENDPOINT, IOT_PORT (8883)   the AWS IoT endpoint
 *   IOT_CA                          the root the device trusts (PEM file), also for the tunneling endpoint
 *   DEVICE_CERT, DEVICE_KEY         the device certificate (chain) and key (PEM files)
 *   THING                           the thing name (also the MQTT client id)
 *   TUNNEL_DATA                     the tunneling data endpoint host:port (Device Client's
 *                                   `tunneling.endpoint`; AWS: data.tunneling.iot.<region>.amazonaws.com)
 *   SERVICES                        where each service goes: `SSH=127.0.0.1:22[,VNC=...]` (Device Client maps
 *                                   SSH to port 22 of the device)
 */
import { readFileSync } from 'node:fs';
import { iot, mqtt } from 'aws-iot-device-sdk-v2';
import {
  type LocalProxyExit,
  type LocalProxyHandle,
  parseDestinationApps,
  startLocalProxy,
} from '../harness/localproxy/index.js';
import { hostPort } from '../simulators/common/net.js';

const NAME = 'tunnel-device-agent';
const env = process.env;
function fail(message: string): never {
  process.stderr.write(`${NAME}: ${message}\n`);
  process.exit(1);
}
function need(name: string): string {
  return env[name] || fail(`${name} is not set`);
}
function say(line: string): void {
  process.stdout.write(`${NAME}: ${line}\n`);
}
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_r, rej) => setTimeout(() => rej(new Error(`${what}: no answer after ${ms} ms`)), ms)),
  ]);
}

/** The notify message (AWS IoT developer guide, "IoT agent snippet"). */
interface Notification {
  clientAccessToken: string;
  clientMode: string;
  region?: string;
  services: string[];
}

function parseNotification(payload: ArrayBuffer): Notification | string {
  let m: unknown;
  try {
    m = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    return 'the notification is not JSON';
  }
  const n = m as Partial<Notification>;
  if (typeof n.clientAccessToken !== 'string' || n.clientAccessToken === '') return 'no clientAccessToken';
  if (n.clientMode !== 'destination')
    return `clientMode ${String(n.clientMode)} (the device is the destination)`;
  if (!Array.isArray(n.services) || n.services.some((s) => typeof s !== 'string'))
    return 'services is not a list of names';
  return n as Notification;
}

async function main(): Promise<void> {
  const thing = need('THING');
  const ca = readFileSync(need('IOT_CA'), 'utf8');
  const endpoint = need('TUNNEL_DATA');
  // Checked now: a wrong SERVICES is the device's configuration error, not the tunnel's.
  const apps = parseDestinationApps(need('SERVICES'));
  const config = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(
    readFileSync(need('DEVICE_CERT'), 'utf8'),
    readFileSync(need('DEVICE_KEY'), 'utf8'),
  )
    .with_certificate_authority(ca)
    .with_endpoint(need('IOT_ENDPOINT'))
    .with_port(Number(env.IOT_PORT ?? 8883))
    .with_client_id(thing)
    .with_clean_session(true)
    .build();
  const conn = new mqtt.MqttClient().new_connection(config);
  const failed = new Promise<never>((_r, reject) => {
    conn.on('connection_failure', (e) => reject(e.error));
    conn.on('error', (e) => reject(e));
  });
  await within(Promise.race([conn.connect(), failed]), 15_000, 'MQTT connect');

  let proxy: LocalProxyHandle | undefined;
  let generation = 0;
  // Notifications are handled one after another: a rotation replaces the localproxy the previous one started.
  let queue = Promise.resolve();
  const onNotify = (payload: ArrayBuffer) => {
    queue = queue.then(async () => {
      const n = parseNotification(payload);
      if (typeof n === 'string') {
        say(`ignored a notification: ${n}`);
        return;
      }
      const services = n.services.filter((s) => apps.has(s));
      if (services.length === 0) {
        say(`ignored a notification for services ${n.services.join(',')}: none is configured in SERVICES`);
        return;
      }
      if (proxy) {
        await proxy.stop();
        proxy = undefined;
      }
      const id = ++generation;
      say(`token for services ${services.join(',')}: starting destination localproxy (#${id})`);
      const p = await startLocalProxy(
        {
          mode: 'destination',
          endpoint,
          ca: [ca],
          accessToken: n.clientAccessToken,
          destinationApp: Object.fromEntries(
            services.map((s) => {
              const app = apps.get(s)!;
              return [s, hostPort(app.host, app.port)];
            }),
          ),
          maxRetries: 3,
          retryDelayMs: 500,
        },
        { waitReady: false },
      );
      proxy = p;
      p.ready.then(
        () => say(`localproxy #${id} connected`),
        () => undefined,
      );
      void p.done.then((exit) => {
        say(`localproxy #${id} ended: ${describeExit(exit)}`);
        if (proxy === p) proxy = undefined;
      });
    });
  };
  const topic = `$aws/things/${thing}/tunnels/notify`;
  await within(
    conn.subscribe(topic, mqtt.QoS.AtLeastOnce, (_t, payload) => onNotify(payload)),
    10_000,
    'subscribe',
  );
  say(`subscribed to ${topic}`);

  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  await queue.catch(() => undefined);
  await proxy?.stop();
  await within(conn.disconnect(), 3000, 'disconnect').catch(() => undefined);
}

function describeExit(exit: LocalProxyExit): string {
  return exit.message && exit.message !== exit.reason ? `${exit.reason} (${exit.message})` : exit.reason;
}

main().then(
  () => process.exit(0),
  (err: unknown) => fail(err instanceof Error ? `${err.name}: ${err.message}` : String(err)),
);
