import type { Aedes, Client } from 'aedes';

/**
 * Delivery to one connection, not to every subscriber of the topic: a cloud's answer to one device's request
 * on a reply topic that other devices subscribe to as well (AWS IoT fleet provisioning, DPS, device twin).
 *
 *   persona ──publishTo(connection | clientId)──▶ that connection only, if open and subscribed
 *
 * MQTT rules still apply to that one connection: it receives the message only through a subscription that
 * matches the topic, at the lower of the message's QoS and the highest QoS granted to a matching
 * subscription (MQTT 3.1.1 §3.3.5 [MQTT-3.3.5-1], §3.8.4).
 */

/** What became of a message sent to one connection. */
export type DirectDelivery = 'delivered' | 'not-connected' | 'not-subscribed';

/** The aedes fields read here that its type declarations leave out. */
type AedesInternals = Aedes & { clients?: Record<string, Client | undefined> };
type ClientInternals = Client & { subscriptions?: Record<string, { qos: number } | undefined> };

/**
 * Whether the topic filter `filter` matches the topic name `topic` (MQTT 3.1.1 §4.7): `+` is one level,
 * `#` the rest including the parent level; a filter starting with a wildcard does not match a topic
 * starting with `$` [MQTT-4.7.2-1].
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/** The highest QoS granted to `client`'s subscriptions that match `topic`; undefined when none does. */
function grantedQos(client: Client, topic: string): number | undefined {
  let best: number | undefined;
  for (const [filter, sub] of Object.entries((client as ClientInternals).subscriptions ?? {})) {
    if (sub && topicMatches(filter, topic)) best = Math.max(best ?? 0, sub.qos);
  }
  return best;
}

/**
 * Publishes `payload` on `topic` to one connection. `to` is the connection itself (the aedes client of the
 * request: a reply to a connection that has closed is lost, never handed to a later connection with the
 * same client id) or a client id (whatever connection holds it now). Resolves once the packet is handed
 * to the connection, or at once with why it was not.
 */
export function publishTo(
  broker: Aedes,
  to: Client | string,
  topic: string,
  payload: string | Buffer,
  qos: 0 | 1,
): Promise<DirectDelivery> {
  const client = typeof to === 'string' ? (broker as AedesInternals).clients?.[to] : to;
  if (!client || client.closed || !client.connected) return Promise.resolve('not-connected');
  const granted = grantedQos(client, topic);
  if (granted === undefined) return Promise.resolve('not-subscribed');
  const packet = {
    cmd: 'publish' as const,
    topic,
    payload: Buffer.from(payload),
    qos: granted === 0 ? 0 : qos,
    retain: false,
    dup: false,
  };
  return new Promise((resolve) => client.publish(packet, () => resolve('delivered')));
}
