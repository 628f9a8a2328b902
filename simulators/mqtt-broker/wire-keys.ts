import type { Aedes, Client } from 'aedes';

/**
 * aedes 2.0.0-beta.1 branched before aedes 1.1.3 and lacks its fix for GHSA-52qw-whmv-87c5: the maps it
 * keys by strings from the wire (client id → client, broker id → broker, topic filter → subscription,
 * message id → duplicate) are plain objects, so a name that Object.prototype already has reads back as
 * present. A CONNECT with client id `constructor`, `__proto__` or `toString` then throws inside aedes'
 * registerClient (`this.clients[id].disconnect is not a function`) and an UNSUBSCRIBE of `toString` trips
 * mqemitter's assert: either kills the process, every other client with it. Null-prototype maps, as
 * aedes 1.1.3 made them, treat those names as the ordinary names they are (MQTT 5 §3.1.3.1, §4.7).
 */

type BrokerMaps = Aedes & { clients: Record<string, unknown>; brokers: Record<string, unknown> };
type ClientMaps = Client & { subscriptions: Record<string, unknown>; duplicates: Record<string, unknown> };

const nullPrototype = <T>(map: Record<string, T> | undefined): Record<string, T> =>
  Object.assign(Object.create(null) as Record<string, T>, map);

/** Right after createBroker, before any connection. */
export function nullPrototypeBrokerMaps(broker: Aedes): void {
  const b = broker as BrokerMaps;
  b.clients = nullPrototype(b.clients);
  b.brokers = nullPrototype(b.brokers);
}

/** Right after broker.handle() made the client, before it has read a packet (that happens on 'readable'). */
export function nullPrototypeClientMaps(client: Client): Client {
  const c = client as ClientMaps;
  c.subscriptions = nullPrototype(c.subscriptions);
  c.duplicates = nullPrototype(c.duplicates);
  return client;
}
