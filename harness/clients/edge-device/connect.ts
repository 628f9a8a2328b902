/**
 * The connections the runtime makes, with the official Node SDKs: the identity service's DPS registration
 * (azure-iot-provisioning-device over HTTPS, as aziot-identityd registers) and each system module's
 * upstream connection (azure-iot-device `ModuleClient` for `$edgeAgent` / `$edgeHub`, open + twin GET as
 * the modules do first). Errors are the SDK's own, returned, never thrown.
 */

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import type { AgentConnectOpts } from 'agent-base';
import common from 'azure-iot-common';
import device from 'azure-iot-device';
import amqp from 'azure-iot-device-amqp';
import mqtt from 'azure-iot-device-mqtt';
import httpBase from 'azure-iot-http-base';
import provisioning from 'azure-iot-provisioning-device';
import phttp from 'azure-iot-provisioning-device-http';
import symkey from 'azure-iot-security-symmetric-key';
import x509 from 'azure-iot-security-x509';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { commonName } from '../../../simulators/common/x509.js';
import type { IdentityPlan, ModulePlan, UpstreamProtocol } from './derive.js';

const TRANSPORTS = { Amqp: amqp.Amqp, AmqpWs: amqp.AmqpWs, Mqtt: mqtt.Mqtt, MqttWs: mqtt.MqttWs } as const;
const OVER_WEBSOCKET: ReadonlySet<UpstreamProtocol> = new Set(['AmqpWs', 'MqttWs']);

/** What one attempt came to. */
export interface Outcome {
  ok: boolean;
  /** The SDK error's class (`UnauthorizedError`, `NotConnectedError`...), `TimeoutError` or `ConfigError`. */
  errorClass?: string;
  /** The socket-level cause the SDK's error chain carries (`ECONNREFUSED`...). */
  cause?: string;
  message?: string;
}

export interface ModuleOutcome extends Outcome {
  protocol?: UpstreamProtocol;
  /** Earlier transports that failed before this one (the no-UpstreamProtocol fallback). */
  fellBackFrom?: Array<{ protocol: UpstreamProtocol } & Outcome>;
}

class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
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

/** The innermost system error code in the SDK's error chain. */
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

/** The messages down the SDK's error chain, joined: the wrapped socket or TLS error says what happened. */
function chainMessage(err: unknown): string {
  const parts: string[] = [];
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (typeof e === 'object' && e !== null && !seen.has(e)) {
    seen.add(e);
    const o = e as {
      message?: unknown;
      amqpError?: unknown;
      transportError?: unknown;
      innerError?: unknown;
      cause?: unknown;
    };
    if (typeof o.message === 'string' && o.message && !parts.includes(o.message)) parts.push(o.message);
    e = o.transportError ?? o.amqpError ?? o.innerError ?? o.cause;
  }
  return parts.length ? parts.join(' <- ') : String(err);
}

function failed(err: unknown): Outcome {
  const cause = causeCode(err);
  const name = (err as Error)?.constructor?.name;
  return {
    ok: false,
    errorClass: name && name !== 'Object' ? name : 'Error',
    message: chainMessage(err),
    ...(cause ? { cause } : {}),
  };
}

/** An https-proxy-agent whose TLS to the destination trusts `ca` (the SDK's HTTP layer passes none). */
class TrustingProxyAgent extends HttpsProxyAgent<string> {
  constructor(
    proxy: string,
    private readonly ca: string[],
  ) {
    super(proxy);
  }
  override connect(req: ClientRequest, opts: AgentConnectOpts) {
    return super.connect(req, { ...opts, ca: this.ca } as AgentConnectOpts);
  }
}

export interface Registration {
  hubHostName: string;
  deviceId: string;
  /** The key the device authenticates with (symmetric key attestation). */
  key?: string;
}

/**
 * aziot-identityd's registration: HTTPS to the global endpoint (always HTTPS, whatever UpstreamProtocol
 * says), through the daemon's `https_proxy`, trusting the host's OS store (`osStore` PEMs).
 */
export async function registerWithDps(
  identity: IdentityPlan,
  osStore: string[],
  timeoutMs: number,
): Promise<({ ok: true } & Registration) | ({ ok: false } & Outcome)> {
  const dps = identity.dps;
  if (!dps) return { ok: false, errorClass: 'ConfigError', message: 'not provisioned by DPS' };
  try {
    const agent = identity.proxy
      ? new TrustingProxyAgent(identity.proxy, osStore)
      : new HttpsAgent({ ca: osStore });
    const base = new httpBase.Http();
    base.setOptions({ http: { agent } });
    // Each SDK package bundles its own azure-iot-http-base: the class is the same.
    const transport = new phttp.Http(base as never);
    const a = dps.attestation;
    let security: unknown;
    let key: string | undefined;
    if (a.method === 'symmetric_key') {
      security = new symkey.SymmetricKeySecurityClient(a.registrationId, a.key);
      key = a.key;
    } else {
      const cert = readFileSync(a.certFile, 'utf8');
      const certKey = readFileSync(a.keyFile, 'utf8');
      // DPS X.509: the registration id is the certificate's CN when config.toml names none.
      const cn = a.registrationId ?? commonName(new X509Certificate(cert)) ?? '';
      security = new x509.X509Security(cn, { cert, key: certKey });
    }
    const client = provisioning.ProvisioningDeviceClient.create(
      dps.globalEndpoint,
      dps.idScope,
      transport,
      security as never,
    );
    const reg = (await bounded(client.register() as Promise<unknown>, timeoutMs, 'DPS registration')) as {
      assignedHub: string;
      deviceId: string;
    };
    return { ok: true, hubHostName: reg.assignedHub, deviceId: reg.deviceId, ...(key ? { key } : {}) };
  } catch (err) {
    return { ...failed(err), ok: false };
  }
}

/**
 * The WebSocket transports' agent, direct or through the module's proxy, keeping the socket error it saw:
 * over AMQP-WS the SDK reports any lost connection as "rhea: connection disconnected", and the refused
 * connect or the proxy's failure behind it is what tells a user why.
 */
interface SocketWitness {
  socketError?: NodeJS.ErrnoException;
}

class WitnessProxyAgent extends HttpsProxyAgent<string> implements SocketWitness {
  socketError?: NodeJS.ErrnoException;
  override async connect(req: ClientRequest, opts: AgentConnectOpts) {
    try {
      const socket = await super.connect(req, opts);
      socket.once('error', (e: NodeJS.ErrnoException) => {
        this.socketError ??= e;
      });
      return socket;
    } catch (err) {
      this.socketError ??= err as NodeJS.ErrnoException;
      throw err;
    }
  }
}

class WitnessAgent extends HttpsAgent implements SocketWitness {
  socketError?: NodeJS.ErrnoException;
  override createConnection(...args: Parameters<HttpsAgent['createConnection']>) {
    const socket = super.createConnection(...args);
    socket?.once('error', (e: NodeJS.ErrnoException) => {
      this.socketError ??= e;
    });
    return socket;
  }
}

/** The SDK's outcome, with the socket's own error added when the SDK's chain lost it. */
function withSocketCause(o: Outcome, witness: SocketWitness | undefined): Outcome {
  const e = witness?.socketError;
  if (o.ok || !e || o.cause) return o;
  return {
    ...o,
    ...(typeof e.code === 'string' ? { cause: e.code } : {}),
    message: `${o.message ?? ''} <- socket: ${e.message}`,
  };
}

/** One module's connection attempt on one transport: open, then GET its twin. */
async function attempt(
  plan: ModulePlan,
  protocol: UpstreamProtocol,
  connectionString: string,
  ca: string[],
  timeoutMs: number,
): Promise<Outcome> {
  let client: InstanceType<typeof device.ModuleClient>;
  try {
    client = device.ModuleClient.fromConnectionString(connectionString, TRANSPORTS[protocol]);
  } catch (err) {
    return failed(err);
  }
  client.setRetryPolicy(new common.NoRetry());
  const started = Date.now();
  const left = () => Math.max(1, timeoutMs - (Date.now() - started));
  let witness: (SocketWitness & (WitnessProxyAgent | WitnessAgent)) | undefined;
  try {
    const options: Record<string, unknown> = { ca: ca.join('\n') };
    // AMQP and MQTT over TCP never use a proxy; the WebSocket transports take it as an agent (without a
    // proxy, a plain HTTPS agent: what the ws library uses by default).
    if (OVER_WEBSOCKET.has(protocol)) {
      witness = plan.proxy ? new WitnessProxyAgent(plan.proxy) : new WitnessAgent();
      options.amqp = { webSocketAgent: witness };
      options.mqtt = { webSocketAgent: witness };
    }
    await bounded(client.setOptions(options as never), left(), 'setOptions');
    await bounded(client.open(), left(), `connect (${protocol})`);
    await bounded(client.getTwin(), left(), 'twin GET');
    return { ok: true };
  } catch (err) {
    return withSocketCause(failed(err), witness);
  } finally {
    await bounded(client.close(), 1000, 'close').catch(() => undefined);
  }
}

/**
 * Connects a module as the runtime would: each transport of its plan in order until one works. `trust`
 * is what its container trusts: its image's roots plus the trust bundle.
 */
export async function connectModule(
  plan: ModulePlan,
  hub: { hostName: string; deviceId: string },
  moduleKey: string,
  trust: string[],
  timeoutMs: number,
): Promise<ModuleOutcome> {
  if (plan.configError) return { ok: false, errorClass: 'ConfigError', message: plan.configError };
  const cs = `HostName=${hub.hostName};DeviceId=${hub.deviceId};ModuleId=${plan.moduleId};SharedAccessKey=${moduleKey}`;
  const failedBefore: NonNullable<ModuleOutcome['fellBackFrom']> = [];
  let last: ModuleOutcome = { ok: false, errorClass: 'ConfigError', message: 'no transport' };
  for (const protocol of plan.protocols) {
    const r = await attempt(plan, protocol, cs, trust, timeoutMs);
    last = { ...r, protocol, ...(failedBefore.length ? { fellBackFrom: [...failedBefore] } : {}) };
    if (r.ok) return last;
    failedBefore.push({ protocol, ...r });
  }
  return last;
}

/** Node's bundled roots: what a container image's ca-certificates (or a host's OS store) holds by default. */
export function defaultRoots(): string[] {
  return [...rootCertificates];
}
