import type { PeerCertificate } from 'node:tls';
import rhea, { type Connection, type Container, type Delivery, type EventContext, type Sender } from 'rhea';
import { AmqpTwinChannel, attachMethodLink, methodAnswer, SERVICE_LINK } from './amqp-twin.js';
import type { C2dMessage, C2dQueues, C2dSink } from './c2d.js';
import type { HubCore } from './core.js';
import { amqpPeerOf } from './front.js';

/**
 * The IoT Hub persona over AMQP 1.0 (rhea), on amqps and on WebSocket (AMQPWSB10). Devices open no SASL
 * layer (plain AMQP header) and authenticate by claims-based security: a put-token message on `$cbs`
 * (operation `put-token`, type `servicebus.windows.net:sastoken`, name `<host>/devices/<id>`, body the SAS),
 * answered on the `$cbs` link with `correlation_id` = the request's `message_id` and application property
 * `status-code` 200 (or 401). Then:
 * A device with an X.509 identity puts no token: its TLS client certificate proves it when it attaches.
 *   sender link   → /devices/<id>/messages/events       D2C telemetry (accepted)
 *                 → /devices/<d>/modules/<m>/messages/events  D2C from a module
 *   receiver link ← /devices/<id>/messages/devicebound  C2D
 *                 ← /devices/<d>/modules/<m>/messages/events  a module's input messages (the SDKs'
 *                   `inputMessage`), annotation `x-opt-input-name` naming the input
 */
const EVENTS = /^\/devices\/([^/]+)(?:\/modules\/([^/]+))?\/messages\/events\/?$/;
const DEVICEBOUND = /^\/devices\/([^/]+)\/messages\/devicebound\/?$/;
/** A module's receiver link takes its input messages from its own events address. */
const MODULE_INPUTS = /^\/devices\/([^/]+)\/modules\/([^/]+)\/messages\/events\/?$/;

interface ConnState {
  transport: 'amqp' | 'amqp-ws';
  /** Identities (`<deviceId>` or `<deviceId>/<moduleId>`) proven on this connection. */
  authorized: Set<string>;
  peer?: PeerCertificate;
  cbs?: Sender;
  /** Twin link pairs by address (`/devices/<d>[/modules/<m>]/twin`). */
  twins: Map<string, AmqpTwinChannel>;
}

/** `<deviceId>` or `<deviceId>/<moduleId>` from an address's (URL-encoded) path segments. */
function identityOf(device: string, module: string | undefined): string {
  return module === undefined
    ? decodeURIComponent(device)
    : `${decodeURIComponent(device)}/${decodeURIComponent(module)}`;
}

function addressOf(t: unknown): string {
  return typeof t === 'object' && t !== null && 'address' in t
    ? String((t as { address: unknown }).address)
    : '';
}

/** The message body as bytes: a data section, a string, or anything else JSON-encoded. */
export function bodyBytes(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body);
  if (typeof body === 'object' && body !== null && 'content' in body) {
    const c = (body as { content: unknown }).content;
    if (Buffer.isBuffer(c)) return c;
    if (typeof c === 'string') return Buffer.from(c);
  }
  return Buffer.from(body === undefined ? '' : JSON.stringify(body));
}

/** Creates the hub's rhea container with its handlers. */
export function hubAmqpContainer(core: HubCore): Container {
  const container = rhea.create_container({ id: `${core.hostName}-amqp` });
  // Devices authenticate by CBS, so SASL only frames the connection: the Node SDK sends no SASL header,
  // Java and C# choose ANONYMOUS, the C SDK (uAMQP) MSSBCBS, the mechanism the hub offers for CBS.
  container.sasl_server_mechanisms.enable_anonymous();
  container.sasl_server_mechanisms.MSSBCBS = () => new CbsSaslServer();
  const states = new WeakMap<Connection, ConnState>();
  const deliveries = new WeakMap<
    Delivery,
    { deviceId: string; msg: C2dMessage; transport: string; queue: C2dQueues }
  >();
  const sinks = new WeakMap<Sender, { deviceId: string; sink: C2dSink; queue: C2dQueues }>();

  const stateOf = (conn: Connection): ConnState => {
    let s = states.get(conn);
    if (!s) {
      const peer = amqpPeerOf(conn);
      s = { transport: peer?.transport ?? 'amqp', authorized: new Set(), twins: new Map() };
      if (peer?.peerCertificate) s.peer = peer.peerCertificate;
      states.set(conn, s);
    }
    return s;
  };
  /** Proven by a CBS token earlier, or now by the connection's client certificate (X.509 identities). */
  const authorized = (state: ConnState, identity: string): boolean => {
    if (state.authorized.has(identity)) return true;
    if (!state.peer || !core.authenticate(identity, { peer: state.peer }, state.transport)) return false;
    state.authorized.add(identity);
    return true;
  };

  container.on('receiver_open', (ctx: EventContext) => {
    const receiver = ctx.receiver!;
    const address = addressOf(receiver.target);
    if (address === '$cbs') return;
    const service = SERVICE_LINK.exec(address);
    if (service) {
      if (!authorized(stateOf(ctx.connection), identityOf(service[1]!, service[2]))) {
        receiver.close({ condition: 'amqp:unauthorized-access', description: 'put a token on $cbs first' });
      }
      return;
    }
    const m = EVENTS.exec(address);
    if (!m) {
      receiver.close({ condition: 'amqp:not-found', description: `no such node: ${address}` });
      return;
    }
    if (!authorized(stateOf(ctx.connection), identityOf(m[1]!, m[2]))) {
      receiver.close({ condition: 'amqp:unauthorized-access', description: 'put a token on $cbs first' });
    }
  });

  container.on('sender_open', (ctx: EventContext) => {
    const sender = ctx.sender!;
    const state = stateOf(ctx.connection);
    const address = addressOf(sender.source);
    if (address === '$cbs') {
      state.cbs = sender;
      return;
    }
    const service = SERVICE_LINK.exec(address);
    if (service) {
      const identity = identityOf(service[1]!, service[2]);
      if (!authorized(state, identity)) {
        sender.close({ condition: 'amqp:unauthorized-access', description: 'put a token on $cbs first' });
      } else if (service[3] === 'twin') {
        const channel = new AmqpTwinChannel(core, identity, sender, state.transport);
        state.twins.get(address)?.close();
        state.twins.set(address, channel);
        released.set(sender, () => {
          channel.close();
          if (state.twins.get(address) === channel) state.twins.delete(address);
        });
      } else {
        released.set(sender, attachMethodLink(core, identity, sender, state.transport));
      }
      return;
    }
    const m = DEVICEBOUND.exec(address);
    const mod = MODULE_INPUTS.exec(address);
    const deviceId = m ? decodeURIComponent(m[1]!) : mod ? identityOf(mod[1]!, mod[2]) : '';
    if ((!m && !mod) || !authorized(state, deviceId)) {
      const found = m || mod;
      sender.close({
        condition: found ? 'amqp:unauthorized-access' : 'amqp:not-found',
        description: found ? 'put a token on $cbs first' : `no such node: ${address}`,
      });
      return;
    }
    const queue = mod ? core.inputs : core.c2d;
    const sink: C2dSink = {
      transport: state.transport,
      deliver(msg) {
        if (!sender.is_open() || !sender.sendable()) return false;
        const delivery = sender.send(
          msg.inputName === undefined
            ? {
                message_id: msg.messageId,
                to: `/devices/${deviceId}/messages/deviceBound`,
                application_properties: msg.properties,
                body: rhea.message.data_section(msg.body),
              }
            : {
                message_id: msg.messageId,
                application_properties: msg.properties,
                message_annotations: { 'x-opt-input-name': msg.inputName },
                body: rhea.message.data_section(msg.body),
              },
        );
        deliveries.set(delivery, { deviceId, msg, transport: state.transport, queue });
        return true;
      },
    };
    sinks.set(sender, { deviceId, sink, queue });
    queue.addSink(deviceId, sink);
    if (mod) core.events.emitEvent('listening', { deviceId, transport: state.transport, feature: 'inputs' });
  });

  container.on('sendable', (ctx: EventContext) => {
    const s = ctx.sender && sinks.get(ctx.sender);
    if (s) s.queue.flush(s.deviceId);
  });
  /** What to release when a twin or methods sender link closes. */
  const released = new WeakMap<Sender, () => void>();
  const dropSender = (sender: Sender | undefined) => {
    const s = sender && sinks.get(sender);
    if (s) s.queue.removeSink(s.deviceId, s.sink);
    const release = sender && released.get(sender);
    if (sender && release) {
      released.delete(sender);
      release();
    }
  };
  container.on('sender_close', (ctx: EventContext) => dropSender(ctx.sender));
  container.on('disconnected', (ctx: EventContext) => {
    for (const link of collectSenders(ctx.connection)) dropSender(link);
  });
  container.on('connection_close', (ctx: EventContext) => {
    for (const link of collectSenders(ctx.connection)) dropSender(link);
  });

  for (const outcome of ['accepted', 'rejected', 'released', 'modified'] as const) {
    container.on(outcome, (ctx: EventContext) => {
      const d = ctx.delivery && deliveries.get(ctx.delivery);
      if (!d) return;
      core.settled(d.deviceId, d.transport, d.msg.messageId, outcome, d.queue === core.inputs);
      if (outcome === 'released' || outcome === 'modified') d.queue.requeue(d.deviceId, d.msg);
    });
  }

  container.on('message', (ctx: EventContext) => {
    const msg = ctx.message!;
    const state = stateOf(ctx.connection);
    const address = addressOf(ctx.receiver?.target);
    if (address === '$cbs') {
      putToken(core, state, msg);
      return;
    }
    const service = SERVICE_LINK.exec(address);
    if (service?.[3] === 'twin') {
      state.twins.get(address)?.request(msg);
      return;
    }
    if (service) {
      methodAnswer(core, msg);
      return;
    }
    const m = EVENTS.exec(address);
    if (!m) return;
    const props: Record<string, string> = {};
    for (const [k, v] of Object.entries(msg.application_properties ?? {})) props[k] = String(v);
    for (const k of ['message_id', 'correlation_id', 'content_type', 'content_encoding'] as const) {
      if (msg[k] !== undefined) props[`$.${k}`] = String(msg[k]);
    }
    core.telemetry(identityOf(m[1]!, m[2]), state.transport, bodyBytes(msg.body), props);
  });

  // A peer that sends garbage only loses its own connection.
  container.on('error', () => undefined);
  container.on('connection_error', () => undefined);
  container.on('protocol_error', () => undefined);
  return container;
}

/** SASL MSSBCBS, server side: no credentials in the SASL layer (they come on `$cbs`), so always ok. */
class CbsSaslServer {
  outcome: boolean | undefined = undefined;
  username: string | undefined = undefined;
  start(): void {
    this.outcome = true;
  }
}

function collectSenders(conn: Connection): Sender[] {
  const out: Sender[] = [];
  conn.find_sender((s: Sender) => {
    out.push(s);
    return false;
  });
  return out;
}

/** CBS put-token: verify the SAS for the audience's device (or module) and answer 200 or 401. */
function putToken(core: HubCore, state: ConnState, msg: rhea.Message): void {
  const props = msg.application_properties ?? {};
  const audience = decodeURIComponent(String(props.name ?? ''));
  const m = /\/devices\/([^/?]+)(?:\/modules\/([^/?]+))?/.exec(audience);
  const identity = m ? `${m[1]!}${m[2] ? `/${m[2]}` : ''}` : '';
  const token = bodyBytes(msg.body).toString();
  const ok =
    props.operation === 'put-token' &&
    identity !== '' &&
    core.authenticate(identity, { token }, state.transport);
  if (ok) state.authorized.add(identity);
  const reply: rhea.Message = {
    body: null,
    application_properties: {
      // AMQP CBS (and AMQP Management §3.2): status-code is an int, status-description a string. rhea would
      // encode a bare 200 as a uint, which clients that check the type (Java's Integer cast, uAMQP's
      // amqpvalue_get_int) drop, then wait out their timeout.
      'status-code': rhea.types.wrap_int(ok ? 200 : 401),
      'status-description': rhea.types.wrap_string(ok ? 'OK' : 'Unauthorized'),
    },
  };
  if (msg.reply_to !== undefined) reply.to = msg.reply_to;
  const correlation = echoMessageId(msg.message_id);
  if (correlation !== undefined) reply.correlation_id = correlation;
  state.cbs?.send(reply);
}

/**
 * The request's message-id as the reply's correlation-id, in the type it came in: the SDKs match on it with
 * its type (Java casts it to UUID, uAMQP reads a ulong, C# and Node compare strings). rhea decodes a uuid to
 * a 16-byte Buffer and a ulong to a number, and encodes them back as uuid and ulong; a binary id (a Buffer
 * of another length) has no such round trip and gets no correlation-id.
 */
export function echoMessageId(id: rhea.Message['message_id']): rhea.Message['correlation_id'] {
  return Buffer.isBuffer(id) && id.length !== 16 ? undefined : id;
}
