/**
 * A device that connects to AWS IoT Core with aws-iot-device-sdk-v2 (MQTT 3.1.1 over mutual TLS) and
 * publishes one message at QoS 1, as the SDK's pub/sub sample does. Exits 0 once the message is
 * acknowledged; otherwise prints the SDK's error (its CRT error name and message) and exits 1.
 *
 *   IOT_ENDPOINT   the AWS IoT endpoint's host name
 *   IOT_PORT       8883 (default), or 443 (the SDK then offers ALPN x-amzn-mqtt-ca)
 *   IOT_CA         the root the device trusts (PEM file)
 *   DEVICE_CERT, DEVICE_KEY   the device certificate (chain) and key (PEM files)
 *   CLIENT_ID      (default sensor-1); TOPIC (default things/<CLIENT_ID>/telemetry)
 *   IOT_PROXY      http://[user:pass@]host:port: tunnel through this HTTP proxy (the SDK's
 *                  HttpProxyOptions sends CONNECT endpoint:port; the SDK reads no proxy environment)
 *   CONNECT_TIMEOUT_MS        give up connecting after this long (default 10000)
 *   CRT_LOG        the CRT's log level on stderr (error, info, debug, trace)
 */
import { readFileSync } from 'node:fs';
import { http, io, iot, mqtt } from 'aws-iot-device-sdk-v2';

const env = process.env;
function fail(message: string): never {
  process.stderr.write(`aws-iot-publish: ${message}\n`);
  process.exit(1);
}
function need(name: string): string {
  return env[name] || fail(`${name} is not set`);
}
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_r, rej) => setTimeout(() => rej(new Error(`${what}: ETIMEDOUT after ${ms} ms`)), ms)),
  ]);
}

/** `http://[user:pass@]host:port` → the SDK's proxy options (tunnelling: CONNECT, then TLS inside). */
function proxyOptions(url: string): http.HttpProxyOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    fail(`IOT_PROXY ${JSON.stringify(url)} is not a URL: use http://host:port`);
  }
  if (u.protocol !== 'http:') fail(`IOT_PROXY ${JSON.stringify(url)}: only an http:// proxy is supported`);
  const port = Number(u.port || 80);
  const basic = u.username !== '';
  return new http.HttpProxyOptions(
    u.hostname,
    port,
    basic ? http.HttpProxyAuthenticationType.Basic : http.HttpProxyAuthenticationType.None,
    basic ? decodeURIComponent(u.username) : undefined,
    basic ? decodeURIComponent(u.password) : undefined,
    undefined,
    http.HttpProxyConnectionType.Tunneling,
  );
}

async function main(): Promise<void> {
  if (env.CRT_LOG) io.enable_logging(io.LogLevel[env.CRT_LOG.toUpperCase() as keyof typeof io.LogLevel]);
  const endpoint = need('IOT_ENDPOINT');
  const clientId = env.CLIENT_ID || 'sensor-1';
  const builder = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(
    readFileSync(need('DEVICE_CERT'), 'utf8'),
    readFileSync(need('DEVICE_KEY'), 'utf8'),
  )
    .with_certificate_authority(readFileSync(need('IOT_CA'), 'utf8'))
    .with_endpoint(endpoint)
    .with_port(Number(env.IOT_PORT ?? 8883))
    .with_client_id(clientId)
    .with_clean_session(true)
    .with_ping_timeout_ms(3000);
  if (env.IOT_PROXY) builder.with_http_proxy_options(proxyOptions(env.IOT_PROXY));
  const config = builder.build();
  const conn = new mqtt.MqttClient().new_connection(config);
  // The SDK reports a failed first connection here (CRT error name and message), not always as a rejection.
  const failed = new Promise<never>((_r, reject) => {
    conn.on('connection_failure', (e) => reject(e.error));
    conn.on('error', (e) => reject(e));
  });
  await within(Promise.race([conn.connect(), failed]), Number(env.CONNECT_TIMEOUT_MS ?? 10_000), 'connect');
  const topic = env.TOPIC || `things/${clientId}/telemetry`;
  await within(
    conn.publish(topic, JSON.stringify({ temperature: 21 }), mqtt.QoS.AtLeastOnce),
    5000,
    'publish',
  );
  process.stdout.write(`published to ${topic} via ${endpoint}\n`);
  await within(conn.disconnect(), 3000, 'disconnect').catch(() => undefined);
}

main().then(
  () => process.exit(0),
  (err: unknown) => fail(err instanceof Error ? `${err.name}: ${err.message}` : String(err)),
);
