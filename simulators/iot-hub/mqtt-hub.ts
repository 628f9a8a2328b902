import type { Client } from 'aedes';
import type { BrokerHooks, ClientInfo, MqttBrokerHandle } from '../mqtt-broker/index.js';
import type { C2dSink } from './c2d.js';
import type { HubCore } from './core.js';
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
  wireC2d(core, handle);
  // Minimal device twin: GET answers an empty twin, PATCH reported answers 204 with a version.
  let version = 1;
  handle.broker.on('publish', (packet, client) => {
    if (!client) return;
    const m = /^\$iothub\/twin\/(GET|PATCH\/properties\/reported)\/\?\$rid=([^&]+)/.exec(packet.topic);
    if (!m) return;
    const rid = m[2];
    // Answers go to the connection that asked: `$iothub/twin/res/#` is every device's reply topic.
    if (m[1] === 'GET') {
      const twin = { desired: { $version: 1 }, reported: { $version: version } };
      void handle.publishTo(client, `$iothub/twin/res/200/?$rid=${rid}`, JSON.stringify(twin), 0);
    } else {
      version++;
      void handle.publishTo(client, `$iothub/twin/res/204/?$rid=${rid}&$version=${version}`, '', 0);
    }
  });
}

/** The C2D filter a device subscribes to (IoT Hub MQTT support: `devices/<id>/messages/devicebound/#`). */
const c2dFilter = (deviceId: string) => `devices/${deviceId}/messages/devicebound/#`;

/** Whether this connection holds the C2D subscription now (SUBSCRIBE on it, or restored with its session). */
function hasC2dSubscription(client: Client): boolean {
  const subs = Reflect.get(client, 'subscriptions') as Record<string, unknown> | undefined;
  return subs !== undefined && c2dFilter(client.id) in subs;
}

/**
 * C2D over MQTT: one sink per connection that holds the C2D subscription, delivering to that connection
 * only, released when that connection unsubscribes or closes. Keyed by connection, not client id: after a
 * session takeover (MQTT 3.1.1 §3.1.4 [MQTT-3.1.4-2]) the old connection's close must not touch the new
 * one's sink. A persistent session (CleanSession 0) keeps the subscription across connections, as the hub
 * does: aedes restores it at CONNECT without a `subscribe` event, so the sink is attached on `client` too.
 */
function wireC2d(core: HubCore, handle: MqttBrokerHandle): void {
  const { broker } = handle;
  const sinks = new Map<Client, C2dSink>();
  const detach = (client: Client) => {
    const sink = sinks.get(client);
    if (!sink) return;
    sinks.delete(client);
    core.c2d.removeSink(client.id, sink);
  };
  const attach = (client: Client) => {
    if (sinks.has(client) || client.closed || !hasC2dSubscription(client)) return;
    const deviceId = client.id;
    const sink: C2dSink = {
      transport: transportOf(client),
      deliver(msg) {
        if (client.closed || !client.connected) {
          detach(client);
          return false;
        }
        const props = new URLSearchParams({
          ...msg.properties,
          '$.mid': msg.messageId,
          '$.to': `/devices/${deviceId}/messages/deviceBound`,
        });
        const topic = `devices/${deviceId}/messages/devicebound/${props.toString()}`;
        void handle.publishTo(client, topic, msg.body, 1).then((outcome) => {
          if (outcome === 'delivered') return;
          // Closed or unsubscribed in between: the message waits for the device's next sink.
          detach(client);
          core.c2d.requeue(deviceId, msg);
        });
        return true;
      },
    };
    sinks.set(client, sink);
    core.c2d.addSink(deviceId, sink);
  };
  broker.on('subscribe', (subs, client) => {
    if (subs.some((s) => s.topic === c2dFilter(client.id))) attach(client);
  });
  broker.on('client', (client) => attach(client));
  broker.on('unsubscribe', (topics, client) => {
    if (topics.includes(c2dFilter(client.id))) detach(client);
  });
  broker.on('clientDisconnect', (client) => detach(client));
}
