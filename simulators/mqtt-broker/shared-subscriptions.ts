import type { EventEmitter } from 'node:events';
import type { Aedes, AedesPublishPacket, Client } from 'aedes';
import type { Packet } from 'mqtt-packet';

/**
 * Shared subscriptions (MQTT 5 §4.8.2; AWS IoT Core offers them to MQTT 3.1.1 and 5 clients alike): every
 * client that subscribes to `$share/<ShareName>/<filter>` joins the group <ShareName> on <filter>, and each
 * message matching <filter> goes to ONE member of the group, picked at random as AWS IoT Core does ("a
 * published message is sent to only one of its subscribers in a random manner"), besides every ordinary
 * subscriber.
 *
 *   PUBLISH t ──▶ mqemitter ──▶ ordinary subscriptions of t (each gets a copy)
 *                     └──────▶ one dispatcher per (group, filter) ──random member──▶ that member's subscription
 *
 * aedes 2.0.0-beta.1 refuses `$share/` from a v5 client with SUBACK 0x9E and, from a 3.1.1 client, subscribes
 * to the literal filter (a subscription nothing ever matches). What it does right is kept: the member's
 * subscription still goes through SUBACK, the persona's authorizeSubscribe (on the whole `$share/...` filter,
 * as AWS IoT policies name it), its granted QoS, UNSUBSCRIBE and the connection's end; it simply never
 * matches, and the group's dispatcher delivers through it. For a v5 SUBSCRIBE the client's version reads 4
 * while aedes checks its filters (synchronously), which skips the 0x9E refusal and nothing else.
 *
 * Not here: a session resumed with Clean Start 0 does not get its shared subscriptions back (aedes restores
 * them through the same 0x9E check, outside any packet); a client that is both a member and an ordinary
 * subscriber of a message gets it once (aedes delivers one copy per client and message).
 */

const PREFIX = '$share/';

/** A `$share/<ShareName>/<filter>` topic filter, split; undefined when it is not one. */
export function parseShared(topic: string): { group: string; filter: string } | undefined {
  if (!topic.startsWith(PREFIX)) return undefined;
  const rest = topic.slice(PREFIX.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return { group: rest, filter: '' };
  return { group: rest.slice(0, slash), filter: rest.slice(slash + 1) };
}

/**
 * What is wrong with a shared subscription's filter, or undefined: [MQTT-4.8.2-1] the ShareName is at least
 * one character; [MQTT-4.8.2-2] it has no `/`, `+` or `#` and is followed by `/` and a Topic Filter.
 */
export function sharedFilterProblem(topic: string): string | undefined {
  const s = parseShared(topic);
  if (!s) return undefined;
  if (s.group === '') return 'has an empty ShareName [MQTT-4.8.2-1]';
  if (/[+#]/.test(s.group)) return `has + or # in its ShareName "${s.group}" [MQTT-4.8.2-2]`;
  if (s.filter === '') return 'has no topic filter after its ShareName [MQTT-4.8.2-2]';
  return undefined;
}

type Deliver = (packet: AedesPublishPacket, cb: () => void) => void;
type ClientInternals = Client & {
  _parser: EventEmitter & { _queue: Packet[] | null };
  subscriptions: Record<string, { func: Deliver } | undefined>;
  version: number | null;
};

interface Group {
  /** The `$share/<group>/<filter>` key of the members' aedes subscriptions. */
  key: string;
  filter: string;
  members: Client[];
  dispatch: Deliver;
}

export interface SharedSubscriptions {
  /** Prepares a client aedes has just made (before it reads anything) for `$share/` in its SUBSCRIBEs. */
  attach(client: Client): void;
  /** Members per group key, for tests and stats. */
  groups(): Map<string, number>;
}

/** Installs shared subscriptions on `broker`; `pick` chooses a member index (random by default). */
export function shareSubscriptions(
  broker: Aedes,
  pick: (members: number) => number = (n) => Math.floor(Math.random() * n),
): SharedSubscriptions {
  const groups = new Map<string, Group>();

  const join = (key: string, client: Client) => {
    const s = parseShared(key);
    if (!s || sharedFilterProblem(key)) return;
    let g = groups.get(key);
    if (!g) {
      const group: Group = { key, filter: s.filter, members: [], dispatch: () => undefined };
      // [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics starting with $
      const skipDollar = s.filter.startsWith('+') || s.filter.startsWith('#');
      group.dispatch = (packet, cb) => {
        if (skipDollar && packet.topic.startsWith('$')) return cb();
        const live = group.members.filter((m) => !m.closed);
        const member = live[pick(live.length)];
        const func = member && (member as ClientInternals).subscriptions[key]?.func;
        if (!func) return cb();
        func(packet, cb);
      };
      g = group;
      groups.set(key, g);
      broker.subscribe(s.filter, g.dispatch, () => undefined);
    }
    if (!g.members.includes(client)) g.members.push(client);
  };
  const leave = (key: string, client: Client) => {
    const g = groups.get(key);
    if (!g) return;
    g.members = g.members.filter((m) => m !== client);
    if (g.members.length > 0) return;
    groups.delete(key);
    broker.unsubscribe(g.filter, g.dispatch, () => undefined);
  };

  broker.on('subscribe', (subs, client) => {
    // subs[i].qos is what the SUBACK granted: ≥ 0x80 is a refusal
    for (const s of subs) if (s.topic.startsWith(PREFIX) && s.qos < 0x80) join(s.topic, client);
  });
  broker.on('unsubscribe', (topics, client) => {
    for (const t of topics) if (t.startsWith(PREFIX)) leave(t, client);
  });
  broker.on('clientDisconnect', (client) => {
    for (const key of [...groups.keys()]) leave(key, client);
  });

  const hasShared = (p: Packet) =>
    p.cmd === 'subscribe' && p.subscriptions.some((s) => s.topic.startsWith(PREFIX));

  return {
    attach(client) {
      const c = client as ClientInternals;
      // aedes handles a SUBSCRIBE synchronously inside the parser's 'packet' event (or, when it came before
      // the CONNACK, inside 'connected'): the version reads 4 between a listener before aedes' and one after.
      let flipped = false;
      const flip = (needed: boolean) => {
        if (!needed || c.version !== 5) return;
        c.version = 4;
        flipped = true;
      };
      const restore = () => {
        if (flipped) c.version = 5;
        flipped = false;
      };
      // Only an MQTT 5 connection needs the flip: the listeners go on at its CONNECT (every packet after it
      // passes them), so a 3.1.1 connection's packets pass aedes' listener alone.
      c._parser.prependOnceListener('packet', (p: Packet) => {
        if (p.cmd !== 'connect' || p.protocolVersion !== 5) return;
        c._parser.prependListener('packet', (q: Packet) => flip(hasShared(q)));
        c._parser.on('packet', restore);
      });
      c.prependOnceListener('connected', () => flip((c._parser._queue ?? []).some(hasShared)));
      c.once('connected', restore);
    },
    groups: () => new Map([...groups].map(([k, g]) => [k, g.members.length])),
  };
}
