import type { Client } from 'aedes';
import type { BrokerHooks, ClientInfo, MqttBrokerHandle } from '../mqtt-broker/index.js';
import type { C2dSink } from './c2d.js';
import type { HubCore } from './core.js';
import { publishTo } from './direct.js';
import type { HubTransport } from './events.js';

/**
 * The IoT Hub persona on the MQTT broker. Device identity: clientId `<deviceId>`, username
 * `<hostName>/<deviceId>/?api-version=...`, password a SAS token; refusals are CONNACK 5 (not authorized),
 * as the real hub answers a bad key. Topics (IoT Hub MQTT support):
 *   devices/<id>/messages/events/<props>        D2C (QoS 1)
 *   devices/<id>/messages/devicebound/<props>   C2D (subscribe devices/<id>/messages/devicebound/#)
 *   $iothub/twin/..., $iothub/methods/...       twin and direct methods (minimal twin answers)
 */
export function hubMqttHooks(core: HubCore): BrokerHooks {
  const own = (c: ClientInfo, topic: string) => {
    const d = `devices/${c.clientId}/`;
    return topic.startsWith(d) || topic.startsWith('$iothub/');
  };
  return {
    async authenticate(client, password) {
      const transport = transportOf(client.connection);
      const expectUser = `${core.hostName}/${client.clientId}/`.toLowerCase();
      // The lab may reach the hub on a mapped port (`host:8883/<id>/...`): the port is not identity.
      const user = client.username?.replace(/^([^/:]+):\d+\//, '$1/').toLowerCase();
      if (!user?.startsWith(expectUser)) {
        core.reject(client.clientId, transport, 'wrong-client-id');
        return { returnCode: 5, reason: `username must start with ${expectUser}` };
      }
      // MQTT 3.1.1 §3.2.2.3: 5 = not authorized (the hub's answer to a bad SAS).
      if (!core.authenticate(client.clientId, password?.toString(), transport)) {
        return { returnCode: 5, reason: 'SAS token refused' };
      }
      return true;
    },
    async authorizePublish(client, topic) {
      return topic.startsWith(`devices/${client.clientId}/messages/events/`) || topic.startsWith('$iothub/');
    },
    async authorizeSubscribe(client, topic) {
      return own(client, topic);
    },
    onPublish(client, topic, payload) {
      const events = `devices/${client.clientId}/messages/events/`;
      if (topic.startsWith(events)) {
        const props: Record<string, string> = {};
        for (const [k, v] of new URLSearchParams(topic.slice(events.length))) props[k] = v;
        core.telemetry(client.clientId, transportOf(client.connection), payload, props);
      }
    },
  };
}

/**
 * Which door a client came through, read off its own connection (a TLS socket: mqtts; a WebSocket stream:
 * mqtt-ws): nothing is kept per client id, so clients that never authenticate leave nothing behind.
 */
function transportOf(client: Client | undefined): HubTransport {
  if (!client) return 'mqtt';
  return typeof Reflect.get(client.conn, 'getPeerCertificate') === 'function' ? 'mqtt' : 'mqtt-ws';
}

/** Twin answers and C2D delivery need the running broker: wire them once it is up. */
export function wireHubMqtt(core: HubCore, handle: MqttBrokerHandle): void {
  /** C2D sinks of connected clients that subscribed, released when they disconnect. */
  const sinks = new Map<string, C2dSink>();
  const { broker } = handle;
  // aedes keeps its connected clients by id in `clients`, which its typings leave out.
  const connected = (clientId: string): Client | undefined =>
    (Reflect.get(broker, 'clients') as Record<string, Client | undefined> | undefined)?.[clientId];
  handle.events.on('subscribe', ({ clientId, topics }: { clientId: string; topics: string[] }) => {
    if (!topics.includes(`devices/${clientId}/messages/devicebound/#`) || sinks.has(clientId)) return;
    const sink: C2dSink = {
      transport: transportOf(connected(clientId)),
      deliver(msg) {
        if (!connected(clientId)) return false;
        const props = new URLSearchParams({
          ...msg.properties,
          '$.mid': msg.messageId,
          '$.to': `/devices/${clientId}/messages/deviceBound`,
        });
        void handle.publish(`devices/${clientId}/messages/devicebound/${props.toString()}`, msg.body, 1);
        return true;
      },
    };
    sinks.set(clientId, sink);
    core.c2d.addSink(clientId, sink);
  });
  handle.events.on('client-disconnected', ({ clientId }: { clientId: string }) => {
    const sink = sinks.get(clientId);
    if (sink) core.c2d.removeSink(clientId, sink);
    sinks.delete(clientId);
  });
  // Minimal device twin: GET answers an empty twin, PATCH reported answers 204 with a version.
  let version = 1;
  broker.on('publish', (packet, client) => {
    if (!client) return;
    const m = /^\$iothub\/twin\/(GET|PATCH\/properties\/reported)\/\?\$rid=([^&]+)/.exec(packet.topic);
    if (!m) return;
    const rid = m[2];
    if (m[1] === 'GET') {
      const twin = { desired: { $version: 1 }, reported: { $version: version } };
      publishTo(broker, client.id, `$iothub/twin/res/200/?$rid=${rid}`, JSON.stringify(twin));
    } else {
      version++;
      publishTo(broker, client.id, `$iothub/twin/res/204/?$rid=${rid}&$version=${version}`, '');
    }
  });
}
