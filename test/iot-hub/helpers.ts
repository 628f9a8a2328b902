import common from 'azure-iot-common';
import device from 'azure-iot-device';
import amqp from 'azure-iot-device-amqp';
import http from 'azure-iot-device-http';
import mqtt from 'azure-iot-device-mqtt';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { endpointOf } from '../../simulators/common/handle.js';
import { type ConnectProxyHandle, start as startProxy } from '../../simulators/connect-proxy/index.js';
import { type IotHubHandle, type IotHubOptions, start as startHub } from '../../simulators/iot-hub/index.js';
import type { PkiHandle } from '../../simulators/pki/index.js';

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

import { within } from '../helpers/within.js';

export { within };
