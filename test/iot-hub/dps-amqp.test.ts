import type { Message, Receiver, Sender } from 'rhea';
import { describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { buildSas, type DpsHandle, startDps } from '../../simulators/iot-hub/index.js';
import { within } from '../helpers/within.js';
import { hubTestBench } from './helpers.js';
import { nextEvent, type WireConnection, wireConnect } from './wire.js';

/**
 * DPS registration over AMQP the way the other official SDKs do it (SASL PLAIN `<idScope>/registrations/<id>`
 * + SAS, one receiver and one sender link on the registration, application properties
 * `iotdps-operation-type` / `iotdps-operation-id`, the answer read from a data section) with the link
 * address each SDK writes.
 */
const SCOPE = '0ne00FAB001';
const bench = hubTestBench();

async function startService(): Promise<DpsHandle> {
  const cert = await bench.pki.issueServer(['localhost', '127.0.0.1']);
  const dps = await startDps({
    hostName: 'localhost',
    idScope: SCOPE,
    tls: { certPem: cert.chainPem, keyPem: cert.keyPem },
    hub: 'hub.example.com',
    retryAfterSeconds: 0,
    assigningPolls: 1,
  });
  return bench.own(dps);
}

function connect(d: DpsHandle, regId: string, key: string): WireConnection {
  const se = Math.floor(Date.now() / 1000) + 3600;
  const wire = wireConnect(endpointOf(d, 'amqps').port, bench.pki.root.certPem, {
    username: `${SCOPE}/registrations/${regId}`,
    password: buildSas(`${SCOPE}/registrations/${regId}`, key, se, 'registration'),
  });
  bench.own(wire);
  return wire;
}

/** One request on the sender link; resolves with the answer and its JSON body. */
async function request(
  sender: Sender,
  receiver: Receiver,
  properties: Record<string, string>,
): Promise<{ message: Message; body: { status: string; operationId: string; registrationState?: unknown } }> {
  const answered = nextEvent(receiver, 'message', ['receiver_error', 'receiver_close']);
  const accepted = nextEvent(sender, 'accepted', ['rejected', 'released', 'modified']);
  // Java sends no message-id or correlation-id: the answer is matched by order on the link.
  sender.send({ application_properties: properties, body: null });
  await within(accepted, 5000, 'request accepted');
  const message = (await within(answered, 5000, 'answer')).message!;
  // Java casts the body to a data section, uAMQP requires MESSAGE_BODY_TYPE_DATA: 0x75.
  const section = message.body as { typecode?: number; content?: Buffer };
  expect(section.typecode).toBe(0x75);
  return { message, body: JSON.parse(String(section.content)) };
}

describe('dps over AMQP as the Java and C SDKs address it', () => {
  const addresses = {
    'Java (/<idScope>/registrations/<id>)': (reg: string) => `/${SCOPE}/registrations/${reg}`,
    'C (amqps://<host>/<idScope>/registrations/<id>)': (reg: string) =>
      `amqps://localhost/${SCOPE}/registrations/${reg}`,
    'C# and Node (<idScope>/registrations/<id>)': (reg: string) => `${SCOPE}/registrations/${reg}`,
  };
  for (const [sdk, addressOf] of Object.entries(addresses)) {
    it(`${sdk}: register, poll, assigned`, async () => {
      const d = await startService();
      const regId = 'reg-strict';
      const key = d.addEnrollment(regId, undefined, 'device-strict');
      const wire = connect(d, regId, key);
      const address = addressOf(regId);
      // Link properties as the SDKs attach them (symbol keys).
      const properties = {
        'com.microsoft:api-version': '2019-03-31',
        'com.microsoft:client-version': 'fieldlab-wire-test',
      };
      const receiver = wire.connection.open_receiver({ source: { address }, properties });
      await within(
        nextEvent(receiver, 'receiver_open', ['receiver_error', 'receiver_close']),
        5000,
        `receiver link on ${address}`,
      );
      const sender = wire.connection.open_sender({ target: { address }, properties });
      await within(nextEvent(sender, 'sendable', ['sender_error', 'sender_close']), 5000, 'sender link');

      const first = await request(sender, receiver, { 'iotdps-operation-type': 'iotdps-register' });
      expect(first.body.status).toBe('assigning');
      // The poll interval under both keys the SDKs read (Node `retry-after`, C# `Retry-After`).
      expect(first.message.application_properties).toMatchObject({ 'retry-after': '0', 'Retry-After': '0' });
      let answer = first;
      for (let i = 0; i < 3 && answer.body.status === 'assigning'; i++) {
        answer = await request(sender, receiver, {
          'iotdps-operation-type': 'iotdps-get-operationstatus',
          'iotdps-operation-id': first.body.operationId,
        });
      }
      expect(answer.body).toMatchObject({
        status: 'assigned',
        registrationState: { assignedHub: 'hub.example.com', deviceId: 'device-strict' },
      });
      expect(d.stats().assigned).toBe(1);
    });
  }

  it("a link on another registration is refused (the SASL identity's, not any)", async () => {
    const d = await startService();
    const key = d.addEnrollment('reg-a');
    d.addEnrollment('reg-b');
    const wire = connect(d, 'reg-a', key);
    const receiver = wire.connection.open_receiver({ source: { address: `/${SCOPE}/registrations/reg-b` } });
    // AMQP 1.0 §2.6.3: a refused link is attached, then detached at once with the error.
    const closed = await within(nextEvent(receiver, 'receiver_close'), 5000, 'refusal of a foreign link');
    expect(closed.receiver?.error).toMatchObject({ condition: 'amqp:unauthorized-access' });
  });

  it('SASL ANONYMOUS naming a registration (for X.509 clients) proves nothing: its links are refused', async () => {
    const d = await startService();
    d.addEnrollment('reg-victim');
    // The registration path as the whole ANONYMOUS initial response (RFC 4505 trace information).
    const trace = Buffer.from(`${SCOPE}/registrations/reg-victim`);
    const wire = wireConnect(endpointOf(d, 'amqps').port, bench.pki.root.certPem, {
      sasl_mechanisms: {
        ANONYMOUS: () => ({ start: (cb: (e: undefined, r: Buffer) => void) => cb(undefined, trace) }),
      },
    } as never);
    bench.own(wire);
    const receiver = wire.connection.open_receiver({
      source: { address: `${SCOPE}/registrations/reg-victim` },
    });
    const closed = await within(nextEvent(receiver, 'receiver_close'), 5000, 'refusal of the link');
    expect(closed.receiver?.error).toMatchObject({ condition: 'amqp:unauthorized-access' });
    expect(d.stats().registrations).toBe(0);
  });

  it('a wrong key fails SASL at once with the auth outcome, not a hang', async () => {
    const d = await startService();
    d.addEnrollment('reg-wrong');
    const rejected = new Promise((resolve) => d.events.onceEvent('auth-rejected', resolve));
    const wire = connect(d, 'reg-wrong', Buffer.alloc(32, 5).toString('base64'));
    const failed = await within(
      nextEvent(wire.connection, 'connection_error', ['connection_open']),
      5000,
      'SASL refusal',
    );
    expect(failed.connection.get_error()).toMatchObject({ condition: 'amqp:unauthorized-access' });
    expect(await within(rejected, 2000, 'auth-rejected')).toMatchObject({ reason: 'bad-signature' });
  });
});
