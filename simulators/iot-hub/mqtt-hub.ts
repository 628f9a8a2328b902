import type { Client } from 'aedes';
import type { BrokerHooks, ClientInfo, MqttBrokerHandle } from '../mqtt-broker/index.js';
import type { C2dMessage, C2dSink } from './c2d.js';
import type { HubCore } from './core.js';
import type { HubTransport } from './events.js';

/**
 * The IoT Hub persona on the MQTT broker (Microsoft Learn, "Communicate with an IoT hub using the MQTT
 * protocol"). Identity: clientId `<deviceId>` (or `<deviceId>/<moduleId>` for a module), username
 * `<hostName>/<clientId>/?api-version=...`, password a SAS token, or no password and a TLS client
 * certificate (X.509 identities); refusals are CONNACK 5 (not authorized), as the real hub answers. Topics:
 *   devices/<id>/messages/events/<props>                 D2C (QoS 1)
 *   devices/<d>/modules/<m>/messages/events/<props>      D2C from a module
 *   devices/<id>/messages/devicebound/<props>            C2D (subscribe devices/<id>/messages/devicebound/#)
 *   devices/<d>/modules/<m>/inputs/<input>/<props>       module input messages (subscribe .../inputs/#)
 *   $iothub/twin/GET/?$rid=<rid>                         → $iothub/twin/res/200/?$rid=<rid> (the twin)
 *   $iothub/twin/PATCH/properties/reported/?$rid=<rid>   → $iothub/twin/res/204/?$rid=<rid>&$version=<v>
 *   $iothub/twin/PATCH/properties/desired/?$version=<v>  ← desired patches (subscribe .../desired/#)
 *   $iothub/methods/POST/<name>/?$rid=<rid>              ← method calls (subscribe $iothub/methods/POST/#)
 *   $iothub/methods/res/<status>/?$rid=<rid>             → the device's answer
 */

/** The topic prefix of an identity's own messages: `devices/<d>/` or `devices/<d>/modules/<m>/`. */
export function identityTopicPrefix(identity: string): string {
  const slash = identity.indexOf('/');
  return slash < 0
    ? `devices/${identity}/`
    : `devices/${identity.slice(0, slash)}/modules/${identity.slice(slash + 1)}/`;
}

export function hubMqttHooks(core: HubCore): BrokerHooks {
  const own = (c: ClientInfo, topic: string) =>
    topic.startsWith(identityTopicPrefix(c.clientId)) || topic.startsWith('$iothub/');
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
      // MQTT 3.1.1 §3.2.2.3: 5 = not authorized (the hub's answer to a bad SAS or certificate).
      const credentials = { token: password?.toString(), peer: client.peerCertificate };
      if (!core.authenticate(client.clientId, credentials, transport)) {
        return { returnCode: 5, reason: 'credentials refused' };
      }
      return true;
    },
    async authorizePublish(client, topic) {
      return (
        topic.startsWith(`${identityTopicPrefix(client.clientId)}messages/events/`) ||
        topic.startsWith('$iothub/')
      );
    },
    async authorizeSubscribe(client, topic) {
      return own(client, topic);
    },
    onPublish(client, topic, payload) {
      const events = `${identityTopicPrefix(client.clientId)}messages/events/`;
      if (topic.startsWith(events)) {
        const props: Record<string, string> = {};
        // The property bag may end in '/' (the Node SDK writes `.../events/k=v&$.on=o/`): not part of a value.
        for (const [k, v] of new URLSearchParams(topic.slice(events.length).replace(/\/$/, ''))) props[k] = v;
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

/** Twins, methods and C2D need the running broker: wire them once it is up. */
export function wireHubMqtt(core: HubCore, handle: MqttBrokerHandle): void {
  wireSubscriptions(core, handle);
  handle.broker.on('publish', (packet, client) => {
    if (!client || !packet.topic.startsWith('$iothub/')) return;
    const [path = '', query = ''] = packet.topic.split('?');
    const q = new URLSearchParams(query);
    const rid = q.get('$rid');
    if (rid === null) return;
    const identity = client.id;
    // Answers go to the connection that asked: `$iothub/twin/res/#` is every device's reply topic.
    const reply = (status: number, body: string, extra = '') =>
      void handle.publishTo(client, `$iothub/twin/res/${status}/?$rid=${rid}${extra}`, body, 0);
    if (path === '$iothub/twin/GET/') {
      reply(200, JSON.stringify(core.twins.get(identity)));
    } else if (path === '$iothub/twin/PATCH/properties/reported/') {
      const patch = parseObject(packet.payload);
      if (!patch) return reply(400, JSON.stringify({ errorCode: 400004, message: 'Invalid JSON patch.' }));
      const version = core.twins.patchReported(identity, patch);
      reply(204, '', `&$version=${version}`);
    } else {
      const m = /^\$iothub\/methods\/res\/(\d{3})\/$/.exec(path);
      if (m) core.twins.answer(rid, Number(m[1]), parseJson(packet.payload));
    }
  });
}

/** A JSON object from a payload, or undefined. */
function parseObject(payload: Buffer | string): Record<string, unknown> | undefined {
  const v = parseJson(payload);
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

function parseJson(payload: Buffer | string): unknown {
  const text = payload.toString();
  if (text === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** What a connection listens for, by the filter it holds (IoT Hub MQTT support). */
const FEATURES = {
  c2d: (identity: string) =>
    identity.includes('/') ? undefined : `devices/${identity}/messages/devicebound/#`,
  desired: () => '$iothub/twin/PATCH/properties/desired/#',
  methods: () => '$iothub/methods/POST/#',
  // Modules get no C2D: what reaches them is input messages (edgeHub's routes, sendToModuleInput).
  inputs: (identity: string) =>
    identity.includes('/') ? `${identityTopicPrefix(identity)}inputs/#` : undefined,
} as const;
type Feature = keyof typeof FEATURES;

/** The topic filters this connection holds now (SUBSCRIBE on it, or restored with its session). */
function heldFilters(client: Client): Record<string, unknown> {
  const subs = Reflect.get(client, 'subscriptions');
  return typeof subs === 'object' && subs !== null ? (subs as Record<string, unknown>) : {};
}

/**
 * C2D, desired patches and method calls go to connections that hold the matching subscription: one
 * attachment per connection and feature, delivering to that connection only, released when that
 * connection unsubscribes or closes. Keyed by connection, not client id: after a session takeover (MQTT
 * 3.1.1 §3.1.4 [MQTT-3.1.4-2]) the old connection's close must not touch the new one's. A persistent session
 * (CleanSession 0) keeps its subscriptions across connections, as the hub does: aedes restores them at
 * CONNECT without a `subscribe` event, so attachments are made on `client` too.
 */
function wireSubscriptions(core: HubCore, handle: MqttBrokerHandle): void {
  const { broker } = handle;
  const attached = new Map<Client, Map<Feature, () => void>>();
  const detach = (client: Client, feature?: Feature) => {
    const mine = attached.get(client);
    if (!mine) return;
    for (const [f, release] of mine) {
      if (feature !== undefined && f !== feature) continue;
      release();
      mine.delete(f);
    }
    if (mine.size === 0) attached.delete(client);
  };
  const attachers: Record<Feature, (client: Client) => () => void> = {
    c2d: (client) => attachQueue(core, handle, client, 'c2d', () => detach(client, 'c2d')),
    inputs: (client) => attachQueue(core, handle, client, 'inputs', () => detach(client, 'inputs')),
    desired: (client) =>
      core.twins.onDesired(client.id, (patch) => {
        const topic = `$iothub/twin/PATCH/properties/desired/?$version=${patch.$version}`;
        void handle.publishTo(client, topic, JSON.stringify(patch), 1);
      }),
    methods: (client) =>
      core.twins.addMethodSink(client.id, (rid, name, payload) => {
        if (client.closed || !client.connected) return false;
        const topic = `$iothub/methods/POST/${encodeURIComponent(name)}/?$rid=${rid}`;
        void handle.publishTo(client, topic, payload, 0).then((outcome) => {
          if (outcome !== 'delivered')
            core.twins.answer(rid, 404, { errorCode: 404103, message: 'Device not online.' });
        });
        return true;
      }),
  };
  const sync = (client: Client) => {
    // aedes also reports a connection that never completed CONNECT (its id still null): nothing to attach.
    if (client.closed || typeof client.id !== 'string') return;
    const held = heldFilters(client);
    for (const feature of Object.keys(FEATURES) as Feature[]) {
      const filter = FEATURES[feature](client.id);
      const has = filter !== undefined && filter in held;
      const mine = attached.get(client);
      if (has && !mine?.has(feature)) {
        const m = mine ?? new Map<Feature, () => void>();
        attached.set(client, m);
        m.set(feature, attachers[feature](client));
        core.events.emitEvent('listening', { deviceId: client.id, transport: transportOf(client), feature });
      } else if (!has && mine?.has(feature)) detach(client, feature);
    }
  };
  broker.on('subscribe', (_subs, client) => sync(client));
  broker.on('client', (client) => sync(client));
  broker.on('unsubscribe', (_topics, client) => sync(client));
  broker.on('clientDisconnect', (client) => detach(client));
}

/** The topic a queued message goes out on: C2D to a device, or an input message to a module. */
function queuedTopic(identity: string, msg: C2dMessage): string {
  const prefix = identityTopicPrefix(identity);
  if (msg.inputName !== undefined) {
    const props = new URLSearchParams({ ...msg.properties, '$.mid': msg.messageId });
    return `${prefix}inputs/${msg.inputName}/${props.toString()}`;
  }
  const props = new URLSearchParams({
    ...msg.properties,
    '$.mid': msg.messageId,
    '$.to': `/devices/${identity}/messages/deviceBound`,
  });
  return `${prefix}messages/devicebound/${props.toString()}`;
}

/**
 * A sink of the C2D (device) or input (module) queue for one connection; returns its removal. `gone`
 * releases it when the connection is.
 */
function attachQueue(
  core: HubCore,
  handle: MqttBrokerHandle,
  client: Client,
  queue: 'c2d' | 'inputs',
  gone: () => void,
): () => void {
  const identity = client.id;
  const queues = core[queue];
  const sink: C2dSink = {
    transport: transportOf(client),
    deliver(msg) {
      if (client.closed || !client.connected) {
        gone();
        return false;
      }
      void handle.publishTo(client, queuedTopic(identity, msg), msg.body, 1).then((outcome) => {
        if (outcome === 'delivered') return;
        // Closed or unsubscribed in between: the message waits for the identity's next sink.
        gone();
        queues.requeue(identity, msg);
      });
      return true;
    },
  };
  queues.addSink(identity, sink);
  return () => queues.removeSink(identity, sink);
}
