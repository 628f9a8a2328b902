import common from 'azure-iot-common';
import device from 'azure-iot-device';
import amqp from 'azure-iot-device-amqp';
import http from 'azure-iot-device-http';
import mqtt from 'azure-iot-device-mqtt';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { type ConnectProxyHandle, start as startProxy } from '../../simulators/connect-proxy/index.js';
import { type IotHubHandle, type IotHubOptions, start as startHub } from '../../simulators/iot-hub/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { within } from '../helpers/within.js';

export const { Client, Message } = device;
export const { errors, NoRetry } = common;
export type DeviceClient = InstanceType<typeof device.Client>;
export type TransportName = 'Mqtt' | 'MqttWs' | 'Amqp' | 'AmqpWs' | 'Http';
export const TRANSPORTS: TransportName[] = ['Mqtt', 'MqttWs', 'Amqp', 'AmqpWs', 'Http'];

export const TRANSPORT_CTORS = {
  Mqtt: mqtt.Mqtt,
  MqttWs: mqtt.MqttWs,
  Amqp: amqp.Amqp,
  AmqpWs: amqp.AmqpWs,
  Http: http.Http,
} as const;

/**
 * The hub's DNS name in tests: `localhost` resolves through the system resolver (which the SDKs use), and
 * the lab certificate carries it. WebSocket and HTTP transports hard-code port 443: they reach the hub's
 * https port through the connect proxy's map `localhost:443 → 127.0.0.1:<https>`.
 */
export const HUB_HOST = 'localhost';

export interface HubLab {
  hub: IotHubHandle;
  proxy: ConnectProxyHandle;
  ca: string;
  stop(): Promise<void>;
}

export async function startHubLab(pki: PkiHandle, extra: Partial<IotHubOptions> = {}): Promise<HubLab> {
  const cert = await pki.issueServer([HUB_HOST, '127.0.0.1']);
  const hub = await startHub({
    name: 'hub',
    hostName: HUB_HOST,
    tls: { certPem: cert.chainPem, keyPem: cert.keyPem },
    ...extra,
  });
  const https = endpointOf(hub, 'https');
  const proxy = await startProxy({ name: 'proxy', map: { [`${HUB_HOST}:443`]: `127.0.0.1:${https.port}` } });
  return {
    hub,
    proxy,
    ca: pki.root.certPem,
    async stop() {
      await proxy.stop();
      await hub.stop();
    },
  };
}

/** `HostName=` for `transport`: Mqtt and Amqp honour a port in it; the others always dial 443 (via the proxy map). */
export function hostFor(lab: HubLab, transport: TransportName): string {
  if (transport === 'Mqtt') return `${HUB_HOST}:${endpointOf(lab.hub, 'mqtts').port}`;
  if (transport === 'Amqp') return `${HUB_HOST}:${endpointOf(lab.hub, 'amqps').port}`;
  return HUB_HOST;
}

/** A device client on `transport`, trusting the lab root, WebSocket/HTTP through the lab proxy. */
export function deviceClient(
  lab: HubLab,
  transport: TransportName,
  deviceId: string,
  key?: string,
): DeviceClient {
  const k = key ?? lab.hub.deviceKey(deviceId) ?? '';
  const cs = `HostName=${hostFor(lab, transport)};DeviceId=${deviceId};SharedAccessKey=${k}`;
  const client = Client.fromConnectionString(cs, TRANSPORT_CTORS[transport]);
  client.setRetryPolicy(new NoRetry());
  return client;
}

/** setOptions with the lab CA and the proxy agent (Http calls back only with a receive policy). */
export async function configure(
  client: DeviceClient,
  lab: HubLab,
  receiveIntervalS = 1,
  extra: { cert?: string; key?: string } = {},
): Promise<void> {
  const agent = new HttpsProxyAgent(lab.proxy.proxyUrl());
  await client.setOptions({
    ...extra,
    ca: lab.ca,
    mqtt: { webSocketAgent: agent },
    amqp: { webSocketAgent: agent },
    http: { agent, receivePolicy: { interval: receiveIntervalS } },
  } as never);
}

/** Opens and sends one message; resolves with the error the SDK reports, or undefined when it went through. */
export function openAndSend(c: Pick<DeviceClient, 'open' | 'sendEvent'>, what: string): Promise<unknown> {
  return within(
    c
      .open()
      .then(() => c.sendEvent(new Message('x')))
      .then(
        () => undefined,
        (e: unknown) => e,
      ),
    8000,
    what,
  );
}

/** Something a test starts and the bench ends after it: a lab or simulator (`stop`), an SDK client (`close`). */
export type Owned = { stop(): Promise<unknown> } | { close(): Promise<unknown> };

/** The set-up the hub and DPS test files share: see `hubTestBench`. */
export interface HubTestBench {
  /** The file's lab PKI (started before its first test, stopped after its last). */
  readonly pki: PkiHandle;
  /**
   * Ends `x` after the current test, the newest first (a client before the hub it talks to); returns `x`.
   * A client's close may fail (it may have closed already); a lab's stop may not.
   */
  own<T extends Owned>(x: T): T;
  /** `startHubLab` with the bench PKI, stopped after the test. */
  hubLab(extra?: Partial<IotHubOptions>): Promise<HubLab>;
}

/** Registers the file's hooks: one lab PKI for the file, and what each test `own`s ended after it. */
export function hubTestBench(): HubTestBench {
  let pki: PkiHandle | undefined;
  const owned: Owned[] = [];
  beforeAll(async () => {
    pki = await startPki({ name: 'pki' });
  });
  afterAll(() => pki?.stop());
  afterEach(async () => {
    for (const x of owned.splice(0).reverse()) {
      if ('stop' in x) await x.stop();
      else await x.close().catch(() => undefined);
    }
  });
  return {
    get pki() {
      if (!pki) throw new Error('the bench PKI starts in beforeAll: read it inside a test or hook');
      return pki;
    },
    own(x) {
      owned.push(x);
      return x;
    },
    async hubLab(extra) {
      return this.own(await startHubLab(this.pki, extra));
    },
  };
}

export { within };
