import { randomBytes } from 'node:crypto';
import rhea, { type Message } from 'rhea';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import {
  buildSas,
  type DpsHandle,
  type IotHubHandle,
  startDps,
  start as startHub,
} from '../../simulators/iot-hub/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { within } from '../helpers/within.js';
import {
  AMQP_HEADER,
  acceptFor,
  nextEvent,
  rawUpgrade,
  SASL_HEADER,
  valueCodeAfterKey,
  type WireConnection,
  wireConnect,
} from './wire.js';

/**
 * What stricter official SDKs (Java's proton-j, C's uAMQP, C#'s Microsoft.Azure.Amqp) need from the hub and
 * DPS at the wire, which the Node SDK's lenient rhea client never shows.
 */
let pki: PkiHandle;
let hub: IotHubHandle | undefined;
let dps: DpsHandle | undefined;
const conns: WireConnection[] = [];
beforeAll(async () => {
  pki = await startPki({ name: 'pki' });
});
afterAll(() => pki.stop());
afterEach(async () => {
  await Promise.all(conns.splice(0).map((c) => c.close()));
  await hub?.stop();
  await dps?.stop();
  hub = dps = undefined;
});

async function tls() {
  const cert = await pki.issueServer(['localhost', '127.0.0.1']);
  return { certPem: cert.chainPem, keyPem: cert.keyPem };
}

describe('WebSocket front: the absolute-form request target (RFC 9112 §3.2.2)', () => {
  const cases = [
    ['iot-hub', 'AMQPWSB10'],
    ['iot-hub', 'mqtt'],
    ['dps', 'AMQPWSB10'],
  ] as const;
  for (const [service, protocol] of cases) {
    it(`${service}: GET https://host:443/$iothub/websocket?... upgrades to ${protocol} (as proton-j sends it)`, async () => {
      if (service === 'iot-hub') hub = await startHub({ hostName: 'localhost', tls: await tls() });
      else dps = await startDps({ hostName: 'localhost', tls: await tls(), hub: 'hub.example.com' });
      const handle = hub ?? dps!;
      const port = endpointOf(handle, 'https').port;
      // An AMQP client's first bytes are its protocol header (the DPS wants SASL, the hub takes either).
      const header = service === 'dps' ? SASL_HEADER : AMQP_HEADER;
      const answer = await rawUpgrade({
        port,
        ca: pki.root.certPem,
        target: 'https://localhost:443/$iothub/websocket?iothub-no-client-cert=true',
        host: 'localhost',
        protocol,
        ...(protocol === 'AMQPWSB10' ? { firstFrame: header } : {}),
      });
      expect(answer.statusLine).toMatch(/^HTTP\/1\.1 101 Switching Protocols/);
      expect(answer.headers['sec-websocket-protocol']).toBe(protocol);
      expect(answer.headers['sec-websocket-accept']).toBe(acceptFor(answer.key));
      // The upgraded stream is the AMQP container's: it answers the header with its own.
      if (protocol === 'AMQPWSB10') expect(answer.reply?.subarray(0, 8)).toEqual(header);
    });
  }

  it('answers 404 for another path, in either form', async () => {
    hub = await startHub({ hostName: 'localhost', tls: await tls() });
    const port = endpointOf(hub, 'https').port;
    for (const target of ['https://localhost:443/other', '/other']) {
      const answer = await rawUpgrade({
        port,
        ca: pki.root.certPem,
        target,
        host: 'localhost',
        protocol: 'mqtt',
      });
      expect(answer.statusLine).toMatch(/^HTTP\/1\.1 404 /);
    }
  });
});

/** A put-token on `$cbs` as the Java SDK sends it; resolves with the reply and the bytes the hub sent. */
async function putToken(
  wire: WireConnection,
  deviceId: string,
  key: string,
  messageId: Message['message_id'],
): Promise<{ reply: Message; bytes: Buffer }> {
  const { connection } = wire;
  const receiver = connection.open_receiver({ source: { address: '$cbs' }, target: { address: 'cbs' } });
  const sender = connection.open_sender({ target: { address: '$cbs' } });
  await within(nextEvent(sender, 'sendable', ['sender_error', 'sender_close']), 5000, '$cbs sender');
  const replied = nextEvent(receiver, 'message', ['receiver_error', 'receiver_close']);
  const se = Math.floor(Date.now() / 1000) + 3600;
  sender.send({
    message_id: messageId,
    to: '$cbs',
    reply_to: 'cbs',
    application_properties: {
      operation: 'put-token',
      type: 'servicebus.windows.net:sastoken',
      name: `localhost/devices/${deviceId}`,
    },
    body: buildSas(`localhost/devices/${deviceId}`, key, se),
  });
  const ctx = await within(replied, 5000, 'put-token reply');
  return { reply: ctx.message!, bytes: wire.received() };
}

describe('iot-hub CBS put-token reply, as typed clients read it', () => {
  it('status-code is an AMQP int and status-description a string; correlation-id is the uuid message-id', async () => {
    hub = await startHub({ hostName: 'localhost', tls: await tls() });
    const key = hub.addDevice('dev-java');
    // Java: SASL ANONYMOUS, then CBS; its message-id is a UUID it casts the reply's correlation-id back to.
    const wire = wireConnect(endpointOf(hub, 'amqps').port, pki.root.certPem, { username: 'anonymous' });
    conns.push(wire);
    const uuid = randomBytes(16);
    const { reply, bytes } = await putToken(wire, 'dev-java', key, uuid);
    expect(reply.application_properties?.['status-code']).toBe(200);
    // 0x71 int or 0x54 smallint (Java Integer, uAMQP amqpvalue_get_int); never 0x70/0x52/0x43 (uint).
    expect([0x71, 0x54]).toContain(valueCodeAfterKey(bytes, 'status-code'));
    expect([0xa1, 0xb1]).toContain(valueCodeAfterKey(bytes, 'status-description'));
    // AMQP 1.0 §1.6.21: uuid is 0x98 + 16 bytes.
    expect(bytes.includes(Buffer.concat([Buffer.from([0x98]), uuid]))).toBe(true);
    expect(reply.correlation_id).toEqual(uuid);

    // Authorized: telemetry on the device's events link is accepted.
    const events = wire.connection.open_sender({ target: { address: '/devices/dev-java/messages/events' } });
    await within(nextEvent(events, 'sendable', ['sender_error', 'sender_close']), 5000, 'events link');
    const accepted = nextEvent(events, 'accepted', ['rejected', 'released']);
    events.send({ body: rhea.message.data_section(Buffer.from('from java')) });
    await within(accepted, 5000, 'telemetry accepted');
    expect(hub.messages('dev-java').map((m) => m.body.toString())).toEqual(['from java']);
  });

  it('a wrong key gets status-code 401 (an int) at once, not silence', async () => {
    hub = await startHub({ hostName: 'localhost', tls: await tls() });
    hub.addDevice('dev-bad');
    const wire = wireConnect(endpointOf(hub, 'amqps').port, pki.root.certPem, { username: 'anonymous' });
    conns.push(wire);
    const { reply, bytes } = await putToken(wire, 'dev-bad', Buffer.alloc(32, 3).toString('base64'), 'req-1');
    expect(reply.application_properties?.['status-code']).toBe(401);
    expect([0x71, 0x54]).toContain(valueCodeAfterKey(bytes, 'status-code'));
    expect(reply.correlation_id).toBe('req-1');
  });

  it('uAMQP (C SDK): SASL MSSBCBS is offered, and a ulong message-id comes back as the correlation-id', async () => {
    hub = await startHub({ hostName: 'localhost', tls: await tls() });
    const key = hub.addDevice('dev-c');
    const mssbcbs = {
      start: (cb: (err: unknown, response: Buffer) => void) => cb(undefined, Buffer.alloc(0)),
    };
    const wire = wireConnect(endpointOf(hub, 'amqps').port, pki.root.certPem, {
      sasl_mechanisms: { MSSBCBS: () => mssbcbs },
    } as never);
    conns.push(wire);
    await within(
      nextEvent(wire.connection, 'connection_open', ['connection_error', 'disconnected']),
      5000,
      'connection open after SASL MSSBCBS',
    );
    const { reply } = await putToken(wire, 'dev-c', key, 7);
    expect(reply.application_properties?.['status-code']).toBe(200);
    expect(reply.correlation_id).toBe(7);
  });
});
