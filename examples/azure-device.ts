/**
 * An example device connectivity module for Azure IoT Hub, configured the way IoT Edge configures its
 * runtime (see the seed "IoT Edge behind a proxy"): it reads
 *
 *   UpstreamProtocol                   Amqp (default, 5671) | AmqpWs | Mqtt (8883) | MqttWs | Http (443)
 *   https_proxy / HTTPS_PROXY          http://[user:pass@]proxy:port — used by AmqpWs, MqttWs and Http only
 *   IOTHUB_DEVICE_CONNECTION_STRING    HostName=...;DeviceId=...;SharedAccessKey=...
 *   IOTHUB_CA                          PEM file of the root the device trusts (optional)
 *   IOTHUB_TIMEOUT_MS                  overall bound for connect + send (default 30000)
 *
 * or, instead of the connection string, provisions itself first at the Device Provisioning Service with
 * a symmetric key, through the same proxy (as the runtime's identity service does):
 *
 *   DPS_HOST, ID_SCOPE, REGISTRATION_ID, DEVICE_KEY   the global endpoint, scope and enrollment
 *   DPS over AmqpWs (UpstreamProtocol AmqpWs, MqttWs) or HTTPS (Http); Amqp and Mqtt register over Amqp.
 *   The provisioning SDK takes no CA option: it trusts Node's roots plus NODE_EXTRA_CA_CERTS.
 *
 * and sends one telemetry message. Exit 0 when the hub acknowledged it; otherwise exit 1 with the error
 * class it saw on stderr (`azure-device: error UnauthorizedError: ...`). No retries: Amqp would otherwise
 * retry for up to 240 s against a blocked port, and the SDK never falls back from Amqp to AmqpWs — that
 * is the application's (here: the operator's) choice, which is what the `amqp-port-blocked` scenario tests.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import common from 'azure-iot-common';
import device from 'azure-iot-device';
import amqp from 'azure-iot-device-amqp';
import http from 'azure-iot-device-http';
import mqtt from 'azure-iot-device-mqtt';
import httpBase from 'azure-iot-http-base';
import provisioning from 'azure-iot-provisioning-device';
import pamqp from 'azure-iot-provisioning-device-amqp';
import phttp from 'azure-iot-provisioning-device-http';
import symkey from 'azure-iot-security-symmetric-key';
import { HttpsProxyAgent } from 'https-proxy-agent';

const PROTOCOLS = {
  Amqp: amqp.Amqp,
  AmqpWs: amqp.AmqpWs,
  Mqtt: mqtt.Mqtt,
  MqttWs: mqtt.MqttWs,
  Http: http.Http,
} as const;
type Protocol = keyof typeof PROTOCOLS;

/** What one run saw, for callers that import `run` instead of spawning the program. */
export interface DeviceRunResult {
  ok: boolean;
  protocol: string;
  elapsedMs: number;
  /** The SDK error's class (`UnauthorizedError`, `NotConnectedError`...) or `TimeoutError`. */
  errorClass?: string;
  /** The socket-level cause when the SDK wrapped one (`ECONNREFUSED`, `ENOTFOUND`...). */
  cause?: string;
  message?: string;
}

class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/** The innermost system error code the SDK's error chain carries, if any. */
function causeCode(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (typeof e === 'object' && e !== null && !seen.has(e)) {
    seen.add(e);
    const o = e as {
      code?: unknown;
      amqpError?: unknown;
      transportError?: unknown;
      innerError?: unknown;
      cause?: unknown;
    };
    if (typeof o.code === 'string' && /^E[A-Z]+/.test(o.code)) return o.code;
    e = o.transportError ?? o.amqpError ?? o.innerError ?? o.cause;
  }
  return undefined;
}

/** A thrown SDK error as a failed run: its class, its message (after `prefix`) and its socket-level cause. */
function failure(err: unknown, prefix = ''): Omit<DeviceRunResult, 'protocol' | 'elapsedMs'> {
  const e = err as Error;
  const cause = causeCode(err);
  return {
    ok: false,
    errorClass: e?.constructor?.name ?? 'Error',
    message: `${prefix}${e?.message ?? String(err)}`,
    ...(cause ? { cause } : {}),
  };
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TimeoutError(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * Registers at DPS through `proxy` and returns the device's connection string for its assigned hub. Over
 * HTTPS the proxy agent goes to the transport's HTTP layer; over AMQP-WS to `webSocketAgent`.
 */
async function provision(env: NodeJS.ProcessEnv, protocol: Protocol, proxy: string | undefined, ms: number) {
  const [host, scope, registrationId, key] = ['DPS_HOST', 'ID_SCOPE', 'REGISTRATION_ID', 'DEVICE_KEY'].map(
    (k) => env[k] ?? '',
  ) as [string, string, string, string];
  const agent = proxy ? new HttpsProxyAgent(proxy) : undefined;
  let transport: InstanceType<typeof phttp.Http> | InstanceType<typeof pamqp.Amqp>;
  if (protocol === 'Http') {
    const base = new httpBase.Http();
    if (agent) base.setOptions({ http: { agent } });
    // Each SDK package bundles its own copy of azure-iot-http-base: the class is the same.
    transport = new phttp.Http(base as never);
  } else if (protocol === 'AmqpWs' || protocol === 'MqttWs') {
    transport = new pamqp.AmqpWs();
    if (agent) transport.setTransportOptions({ webSocketAgent: agent });
  } else {
    transport = new pamqp.Amqp();
  }
  const security = new symkey.SymmetricKeySecurityClient(registrationId, key);
  const dps = provisioning.ProvisioningDeviceClient.create(host, scope, transport, security as never);
  const reg = await bounded(
    dps.register() as Promise<{ assignedHub: string; deviceId: string }>,
    ms,
    'DPS registration',
  );
  return `HostName=${reg.assignedHub};DeviceId=${reg.deviceId};SharedAccessKey=${key}`;
}

/** Connects with the env's settings, sends one message, and says what happened (never throws). */
export async function run(env: NodeJS.ProcessEnv = process.env): Promise<DeviceRunResult> {
  const started = Date.now();
  const protocol = env.UpstreamProtocol ?? 'Amqp';
  const done = (r: Omit<DeviceRunResult, 'protocol' | 'elapsedMs'>): DeviceRunResult => ({
    protocol,
    elapsedMs: Date.now() - started,
    ...r,
  });
  if (!(protocol in PROTOCOLS)) {
    return done({
      ok: false,
      errorClass: 'ConfigError',
      message: `UpstreamProtocol must be one of ${Object.keys(PROTOCOLS).join(', ')}`,
    });
  }
  const proxy = env.https_proxy ?? env.HTTPS_PROXY;
  const timeoutMs = Number(env.IOTHUB_TIMEOUT_MS ?? 30_000);
  let cs = env.IOTHUB_DEVICE_CONNECTION_STRING;
  if (!cs && env.DPS_HOST) {
    try {
      cs = await provision(env, protocol as Protocol, proxy, timeoutMs);
    } catch (err) {
      return done(failure(err, 'DPS: '));
    }
  }
  if (!cs)
    return done({
      ok: false,
      errorClass: 'ConfigError',
      message: 'set IOTHUB_DEVICE_CONNECTION_STRING, or DPS_HOST, ID_SCOPE, REGISTRATION_ID and DEVICE_KEY',
    });

  let client: InstanceType<typeof device.Client>;
  try {
    client = device.Client.fromConnectionString(cs, PROTOCOLS[protocol as Protocol]);
  } catch (err) {
    return done({ ok: false, errorClass: (err as Error).constructor.name, message: (err as Error).message });
  }
  client.setRetryPolicy(new common.NoRetry());
  const options: Record<string, unknown> = {};
  if (env.IOTHUB_CA) options.ca = readFileSync(env.IOTHUB_CA, 'utf8');
  if (proxy) {
    // No transport reads https_proxy itself: the WebSocket and HTTP transports take an agent.
    const agent = new HttpsProxyAgent(proxy);
    options.mqtt = { webSocketAgent: agent };
    options.amqp = { webSocketAgent: agent };
    options.http = { agent };
  }
  // The Http transport's setOptions calls back only when a receive policy is given (this app polls none).
  if (protocol === 'Http') options.http = { ...(options.http as object), receivePolicy: { interval: 3600 } };
  try {
    await bounded(client.setOptions(options as never), timeoutMs, 'setOptions');
    await bounded(client.open(), Math.max(1, timeoutMs - (Date.now() - started)), `connect (${protocol})`);
    const message = new device.Message(JSON.stringify({ hello: 'fieldlab', at: new Date().toISOString() }));
    message.contentType = 'application/json';
    message.contentEncoding = 'utf-8';
    await bounded(client.sendEvent(message), Math.max(1, timeoutMs - (Date.now() - started)), 'send');
    return done({ ok: true });
  } catch (err) {
    return done(failure(err));
  } finally {
    await bounded(client.close(), 1000, 'close').catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const env = process.env;
  const proto = env.UpstreamProtocol ?? 'Amqp';
  if ((proto === 'Amqp' || proto === 'Mqtt') && (env.https_proxy ?? env.HTTPS_PROXY)) {
    process.stderr.write(
      `azure-device: note: ${proto} does not go through https_proxy; behind a proxy use UpstreamProtocol=${proto}Ws\n`,
    );
  }
  const r = await run(env);
  if (r.ok) {
    process.stdout.write(`azure-device: telemetry acknowledged via ${r.protocol} in ${r.elapsedMs} ms\n`);
    process.exit(0);
  }
  process.stderr.write(
    `azure-device: error ${r.errorClass}${r.cause ? ` (${r.cause})` : ''} via ${r.protocol} after ${r.elapsedMs} ms: ${r.message}\n`,
  );
  process.exit(1);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
