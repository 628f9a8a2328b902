import type { LabEvent } from '../../simulators/common/events.js';
import type { Phase, PhaseName } from './phases.js';

/**
 * Phases from the lab's vantage, for any client: derived from the events the relays and simulators emit,
 * per TCP connection, so an SDK, MQTT, AMQP or tunnel client gets timings curl would have given.
 *
 *   client ──► relay ──────────────► simulator (proxy, broker, hub, tunnel service...)
 *              connection             connection {remote}        ── tls ──►  tls-established | alert
 *              upstream-connected {local = simulator's remote}   ── app ──►  CONNACK, CBS, upgrade...
 *              └─ tcp ─┘                                          ── first-message ──► telemetry/publish
 *
 *   dns            `query` at the lab resolver: arrival → answer (`ms`); a dropped query never ends
 *   tcp            relay accept → upstream connected (never ends when the upstream is refused or held)
 *   proxy-connect  a proxy's connection (or its previous answer) → its answer: 200 (the destination
 *                  connected), 403, 407, 502
 *   tls            the simulator's accept (after the relay's upstream connect) → `tls-established`, or the
 *                  alert the client sent; a client that hangs up without an alert never ends it
 *   app-handshake  the end of TLS (or of the accept) → the protocol's own handshake answer: MQTT CONNACK
 *                  (client-connected / -rejected), IoT Hub authentication (MQTT, AMQP CBS put-token,
 *                  WebSocket), tunnel peer-connected (upgrade, then SERVICE_IDS) or token refusal, an HTTP
 *                  request's response, an SSH login
 *   first-byte     the end of the app handshake → the first message: publish, telemetry, DPS
 *                  registration, tunnel stream-start (the report calls it `first-message`)
 *
 * A simulator's connection is tied to its relay's by address (the relay's `local` is the simulator's
 * `remote`), so both carry the relay's connection name (`hub.amqps#1`). Events that name no connection
 * (CONNACK, telemetry) go to the latest connection of their source that has not reached that point yet:
 * exact for one client at a time, as scenarios run.
 */

/** Event types that end a proxy's answer to a CONNECT (or a plain proxied request). */
const PROXY_ANSWERS = new Set([
  'connect-allowed',
  'connect-denied',
  'auth-required',
  'destination-denied',
  'protocol-error',
  'upstream-error',
]);

/** Event types that end the protocol's own handshake (with `appAnswer` deciding for ambiguous ones). */
const APP_ANSWERS = new Set([
  'client-connected',
  'client-rejected',
  'auth-denied',
  'device-authenticated',
  'auth-rejected',
  'peer-connected',
  'token-rejected',
  'handshake-rejected',
  'request',
  'accepted',
]);

/** Event types that are a connection's first message. */
const FIRST_MESSAGES = new Set(['publish', 'telemetry', 'registration-request', 'stream-start']);

/** Connection ids whose simulator speaks TLS on them (the prefix is the listener's transport). */
const TLS_IDS = /^(mqtts|amqps|https|wss)-/;
/** Connection ids whose simulator speaks an application protocol with a handshake on them. */
const APP_IDS = /^(mqtt|mqtts|ws|wss|amqps|https)-/;

interface Conn {
  /** The name reports show: the relay's (`hub.amqps#1`), else the simulator's (`hub#mqtts-1a2b`). */
  key: string;
  source: string;
  id: string;
  relay: boolean;
  start: number;
  remote?: string;
  closedAt?: number;
  /** Relay: when the upstream connected, and from which local address. */
  upstreamAt?: number;
  local?: string;
  /** The relay connection in front of this simulator connection. */
  front?: Conn;
  proxy: Array<{ start: number; end?: number }>;
  /** The connect-proxy's own record of when the destination connected (its `closed` timings). */
  upstreamMadeAt?: number;
  tls: boolean;
  tlsStart?: number;
  tlsEnd?: number;
  /** The handshake ended (`tlsEnd` then says when, unless the client hung up); `tlsOk`: it completed. */
  tlsDone: boolean;
  tlsOk: boolean;
  appEnd?: number;
  firstAt?: number;
  /** Tunnel peer mode (`source` opens streams). */
  mode?: string;
}

function record(d: unknown): Record<string, unknown> {
  return d !== null && typeof d === 'object' ? (d as Record<string, unknown>) : {};
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Whether an event of an APP_ANSWERS type really answers a connection's handshake. */
function appAnswer(type: string, d: Record<string, unknown>): boolean {
  // The tunnel service's `auth-rejected` is about a management API call, not a data-plane connection.
  if (type === 'auth-rejected') return 'deviceId' in d || 'registrationId' in d;
  if (type === 'request') return typeof d.id === 'string';
  return true;
}

class Connections {
  private readonly bySource = new Map<string, Conn[]>();
  readonly all: Conn[] = [];

  add(c: Conn): void {
    this.all.push(c);
    const list = this.bySource.get(c.source);
    if (list) list.push(c);
    else this.bySource.set(c.source, [c]);
  }

  /**
   * The connection an event of `source` belongs to: the one it names (`id`, `remote`, `from`), else the
   * latest one started by `time` that `needs` it (and, unless `closedOk`, still open at `time`).
   */
  pick(
    source: string,
    time: number,
    d: Record<string, unknown>,
    needs: (c: Conn) => boolean,
    closedOk = false,
  ): Conn | undefined {
    const list = this.bySource.get(source);
    if (!list) return undefined;
    const id = str(d.id);
    const remote = str(d.remote) ?? str(d.from);
    const named =
      (id && list.find((c) => c.id === id)) ||
      (remote && !remote.startsWith('?') && list.findLast((c) => c.remote === remote));
    if (named) return needs(named) ? named : undefined;
    for (let i = list.length - 1; i >= 0; i--) {
      const c = list[i]!;
      if (c.start > time || !needs(c)) continue;
      if (!closedOk && c.closedAt !== undefined && c.closedAt < time) continue;
      return c;
    }
    return undefined;
  }
}

/**
 * A simulator that announces no connections (sshd, whose log names its peer as `from`): its connection,
 * from the relay connection whose local address it names.
 */
function unannounced(conns: Connections, source: string, d: Record<string, unknown>): Conn | undefined {
  const from = str(d.from);
  const front = from ? conns.all.find((x) => x.relay && x.local === from) : undefined;
  if (!from || !front || conns.all.some((x) => x.source === source && x.remote === from)) return undefined;
  const c = newConn(source, from, front.upstreamAt ?? front.start, false, from);
  conns.add(c);
  return c;
}

function newConn(source: string, id: string, time: number, relay: boolean, remote?: string): Conn {
  const name = relay ? source.replace(/-relay$/, '') : source;
  return {
    key: `${name}#${id}`,
    source,
    id,
    relay,
    start: time,
    ...(remote ? { remote } : {}),
    proxy: [],
    tls: !relay && TLS_IDS.test(id),
    tlsDone: false,
    tlsOk: false,
  };
}

/**
 * The lab's phases for a run, from its events (any order; sorted here), in ms from `origin` (the client's
 * start, epoch ms): one set per connection, each phase with `source: 'lab'` and its `connection`.
 */
export function labPhases(events: readonly LabEvent[], origin: number): Phase[] {
  const sorted = [...events].sort((a, b) => a.time - b.time);
  const conns = new Connections();
  const phases: Phase[] = [];
  /** Sources that answered an application handshake in this run (their stalled connections show `…`). */
  const appSources = new Set<string>();
  const at = (t: number) => t - origin;

  for (const e of sorted) {
    const d = record(e.data);
    const t = e.time;
    switch (e.type) {
      case 'connection': {
        const relay = typeof d.id === 'number';
        const id = relay ? String(d.id) : str(d.id);
        if (id !== undefined) conns.add(newConn(e.source, id, t, relay, str(d.remote)));
        continue;
      }
      case 'query': {
        if (typeof d.name !== 'string' || typeof d.rcode !== 'string') continue;
        const ms = typeof d.ms === 'number' ? d.ms : 0;
        phases.push({
          name: 'dns',
          start: at(t - ms),
          ...(d.rcode === 'NONE' ? {} : { end: at(t) }),
          source: 'lab',
          connection: `${e.source}:${str(d.client) ?? '?'}`,
        });
        continue;
      }
      case 'upstream-connected': {
        const c = conns.all.find((x) => x.relay && x.source === e.source && x.id === String(d.id));
        if (c) {
          c.upstreamAt = t;
          if (typeof d.local === 'string') c.local = d.local;
        }
        continue;
      }
      case 'closed': {
        const relay = typeof d.id === 'number';
        const c = conns.all.find((x) => x.relay === relay && x.source === e.source && x.id === String(d.id));
        if (!c) continue;
        c.closedAt = t;
        // The connect proxy's own timings say when the destination connected: its 200 went out then.
        const timings = record(d.timings);
        if (typeof timings.acceptedAt === 'number' && typeof timings.upstreamMs === 'number') {
          c.upstreamMadeAt = timings.acceptedAt + timings.upstreamMs;
        }
        continue;
      }
      default:
        break;
    }
    if (typeof d.id === 'number') continue; // the rest of a relay's events (toxics, errors)

    if (e.type === 'tls-established' || e.type === 'tls-client-error') {
      const c = conns.pick(e.source, t, d, (x) => !x.tlsDone, true);
      if (!c) continue;
      c.tls = true;
      c.tlsDone = true;
      c.tlsOk = e.type === 'tls-established';
      // An alert ends the handshake; a client that hung up without one left it unfinished.
      if (c.tlsOk || typeof d.alert === 'string') c.tlsEnd = t;
      continue;
    }
    if (e.type === 'intercepted') {
      const c = conns.pick(e.source, t, d, (x) => x.proxy.length > 0 && !x.tlsDone, true);
      if (!c) continue;
      c.tls = true;
      c.tlsDone = true;
      c.tlsOk = true;
      c.tlsEnd = t;
      continue;
    }
    if (PROXY_ANSWERS.has(e.type)) {
      const c = conns.pick(e.source, t, d, (x) => x.proxy.every((p) => p.end !== undefined && p.end <= t));
      if (!c || (e.type === 'upstream-error' && c.proxy.length > 0)) continue;
      const last = c.proxy.at(-1);
      c.proxy.push({ start: last?.end ?? c.front?.upstreamAt ?? c.start, end: t });
      // The inspector answers 200 at once; the client's TLS with the inspector starts then.
      if (e.type === 'connect-allowed' && str(d.rule) === 'intercept') c.tlsStart = t;
      continue;
    }
    if (APP_ANSWERS.has(e.type) && appAnswer(e.type, d)) {
      const c = conns.pick(e.source, t, d, (x) => x.appEnd === undefined) ?? unannounced(conns, e.source, d);
      if (!c) continue;
      c.appEnd = t;
      if (e.type === 'peer-connected') c.mode = str(d.mode);
      appSources.add(e.source);
      continue;
    }
    if (FIRST_MESSAGES.has(e.type)) {
      const isStream = e.type === 'stream-start';
      // A message flowed, so the handshake went through even where the simulator does not say so (DPS).
      const c = conns.pick(
        e.source,
        t,
        d,
        (x) => (x.appEnd !== undefined || x.tlsOk || !x.tls) && (!isStream || x.mode === 'source'),
      );
      // Later messages stay with the connection that carried the first, not with an older one.
      if (c && c.firstAt === undefined) c.firstAt = t;
    }
  }

  // Tie each simulator connection to the relay connection in front of it.
  const relayByLocal = new Map<string, Conn>();
  for (const c of conns.all) if (c.relay && c.local) relayByLocal.set(c.local, c);
  for (const c of conns.all) {
    if (c.relay || !c.remote) continue;
    const front = relayByLocal.get(c.remote);
    if (front) {
      c.front = front;
      c.key = front.key;
    }
  }

  for (const c of conns.all) phases.push(...connectionPhases(c, appSources.has(c.source), at));
  return phases.sort((a, b) => a.start - b.start);
}

function connectionPhases(c: Conn, appSource: boolean, at: (t: number) => number): Phase[] {
  const out: Phase[] = [];
  const phase = (name: PhaseName, start: number, end: number | undefined) =>
    out.push({
      name,
      start: at(start),
      ...(end !== undefined ? { end: at(Math.max(start, end)) } : {}),
      source: 'lab',
      connection: c.key,
    });
  if (c.relay) {
    phase('tcp', c.start, c.upstreamAt);
    return out;
  }
  // The simulator saw the connection once its relay had connected upstream.
  const accepted = Math.max(c.start, c.front?.upstreamAt ?? c.start);
  c.proxy.forEach((p, i) => {
    // One CONNECT on the connection: its 200 went out when the proxy's destination connected.
    const made = c.proxy.length === 1 && i === 0 && c.upstreamMadeAt !== undefined ? c.upstreamMadeAt : p.end;
    phase(
      'proxy-connect',
      Math.max(accepted, p.start),
      p.end === undefined ? undefined : Math.max(p.end, made ?? 0),
    );
  });
  let ready = c.proxy.length > 0 ? undefined : accepted;
  if (c.tls) {
    const start = c.tlsStart ?? accepted;
    phase('tls', start, c.tlsEnd);
    ready = c.tlsOk ? c.tlsEnd : undefined;
  }
  if (ready === undefined) return out;
  if (c.appEnd !== undefined) phase('app-handshake', ready, c.appEnd);
  else if (c.firstAt !== undefined) {
    // No handshake answer of its own, but a message came: the first message counts from the handshake.
    phase('first-byte', ready, c.firstAt);
    return out;
  } else if (appSource || APP_IDS.test(c.id)) {
    // Past TLS (or the accept) and no handshake answer: the connection stalled in the protocol's handshake.
    phase('app-handshake', ready, undefined);
    return out;
  }
  if (c.appEnd !== undefined && c.firstAt !== undefined) phase('first-byte', c.appEnd, c.firstAt);
  return out;
}
