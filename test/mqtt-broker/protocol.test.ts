import { connect as tcpConnect } from 'node:net';
import { generate, type IConnectPacket, type Packet } from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { endpointOf } from '../../simulators/common/handle.js';
import { type MqttBrokerHandle, start } from '../../simulators/mqtt-broker/index.js';
import { topicFilterProblem, topicNameProblem } from '../../simulators/mqtt-broker/topics.js';
import { within } from '../helpers/within.js';

/**
 * MQTT 3.1.1 conformance at the wire: packets built with mqtt-packet's generator (or patched from one
 * where no client would build them), sent on a raw socket, and the exact bytes back or the close asserted.
 */

let broker: MqttBrokerHandle | undefined;
afterEach(async () => {
  await broker?.stop();
  broker = undefined;
});

async function startBroker(): Promise<MqttBrokerHandle> {
  broker = await start({ name: 'broker', listeners: [{ protocol: 'mqtt' }, { protocol: 'ws' }] });
  return broker;
}

const CONNACK = (code: number) => Buffer.from([0x20, 0x02, 0x00, code]);
const SUBACK = (id: number, ...granted: number[]) =>
  Buffer.from([0x90, 2 + granted.length, id >> 8, id & 0xff, ...granted]);

function connectPacket(extra: Partial<IConnectPacket> = {}): Buffer {
  return generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId: 'wire',
    keepalive: 0,
    ...extra,
  } as IConnectPacket);
}

/** A CONNECT built by hand, for what mqtt-packet's generator refuses to build (an empty will topic...). */
function rawConnect(o: {
  name: string;
  level: number;
  clientId: string;
  clean?: boolean;
  will?: string;
}): Buffer {
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const flags = (o.clean === false ? 0 : 0x02) | (o.will !== undefined ? 0x04 : 0); // clean session, will flag
  const body = Buffer.concat([
    str(o.name),
    Buffer.from([o.level, flags, 0, 0]),
    str(o.clientId),
    ...(o.will !== undefined ? [str(o.will), str('gone')] : []),
  ]);
  if (body.length > 127) throw new Error('rawConnect: body too long for a 1-byte remaining length');
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

/** A 3.1.1 CONNECT with its Protocol Level byte replaced (no client builds these). */
function withLevel(level: number, packet = connectPacket()): Buffer {
  const copy = Buffer.from(packet);
  // fixed header (1 byte + 1-byte remaining length here) + name length (2) + "MQTT" (4)
  copy[2 + 2 + 4] = level;
  return copy;
}

interface Exchange {
  /** Every byte the broker sent until it closed the connection. */
  received: Buffer;
}

/** Sends `chunks` (each written on its own) and resolves with what the broker sent once it closed. */
function exchange(port: number, chunks: Buffer[]): Promise<Exchange> {
  const done = new Promise<Exchange>((resolve, reject) => {
    const got: Buffer[] = [];
    const socket = tcpConnect(port, '127.0.0.1', () => {
      for (const c of chunks) socket.write(c);
    });
    socket.on('data', (d) => got.push(d));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNRESET') reject(err);
    });
    socket.on('close', () => resolve({ received: Buffer.concat(got) }));
  });
  return within(done, 5000, 'the broker to answer and close the connection');
}

/** Sends `chunks` and resolves with the first `n` bytes the broker sends back, connection still open. */
async function firstBytes(port: number, chunks: Buffer[], n: number): Promise<Buffer> {
  const socket = tcpConnect(port, '127.0.0.1');
  try {
    return await within(
      new Promise<Buffer>((resolve, reject) => {
        let got = Buffer.alloc(0);
        socket.on('connect', () => {
          for (const c of chunks) socket.write(c);
        });
        socket.on('data', (d) => {
          got = Buffer.concat([got, d]);
          if (got.length >= n) resolve(got);
        });
        socket.on('error', reject);
        socket.on('close', () => reject(new Error(`closed after ${got.toString('hex')}`)));
      }),
      5000,
      `${n} bytes from the broker`,
    );
  } finally {
    socket.destroy();
  }
}

const port = (b: MqttBrokerHandle) => endpointOf(b, 'mqtt').port;

describe('mqtt-broker CONNECT checks at the wire (MQTT 3.1.1 §3.1)', () => {
  it.each([0, 1, 2, 6, 7, 0x7f, 0xff])(
    'answers Protocol Level %i with CONNACK 0x01 and closes [MQTT-3.1.2-2]',
    async (level) => {
      const b = await startBroker();
      const rejected: number[] = [];
      b.events.onEvent('client-rejected', (e) => rejected.push(e.returnCode));
      const { received } = await exchange(port(b), [withLevel(level)]);
      expect(received).toEqual(CONNACK(1));
      expect(rejected).toEqual([1]);
    },
  );

  it('decides on the Protocol Level even when the CONNECT arrives one byte at a time', async () => {
    const b = await startBroker();
    const packet = withLevel(6);
    const bytes = [...packet.subarray(0, 9)].map((x) => Buffer.from([x]));
    const { received } = await exchange(port(b), bytes);
    expect(received).toEqual(CONNACK(1));
  });

  it('accepts a valid CONNECT that arrives one byte at a time, and what follows it', async () => {
    const b = await startBroker();
    const subscribe = generate({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: 'a/+', qos: 0 }] });
    const bytes = [...Buffer.concat([connectPacket(), subscribe])].map((x) => Buffer.from([x]));
    expect(await firstBytes(port(b), bytes, 9)).toEqual(Buffer.concat([CONNACK(0), SUBACK(5, 0)]));
  });

  it('closes a CONNECT longer than any well-formed 3.1.1 CONNECT without waiting for it', async () => {
    const b = await startBroker();
    const violations: string[] = [];
    b.events.onEvent('protocol-violation', (e) => violations.push(e.reason));
    // Remaining Length 400,000 (0x80 0xb5 0x18): five 2-byte-length fields cannot reach it
    const head = Buffer.from([0x10, 0x80, 0xb5, 0x18, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 0]);
    const { received } = await exchange(port(b), [head]);
    expect(received).toEqual(Buffer.alloc(0));
    expect(violations).toEqual([expect.stringMatching(/400000 bytes/)]);
  });

  it('closes without CONNACK when the first packet is not a CONNECT, or names another protocol', async () => {
    const b = await startBroker();
    const publish = generate({ cmd: 'publish', topic: 'a', payload: Buffer.from('x'), qos: 0 } as Packet);
    expect((await exchange(port(b), [publish])).received).toEqual(Buffer.alloc(0)); // [MQTT-3.1.0-1]
    const other = rawConnect({ name: 'MQTX', level: 4, clientId: 'wire' });
    expect((await exchange(port(b), [other])).received).toEqual(Buffer.alloc(0)); // [MQTT-3.1.2-1]
  });

  it('answers CONNACK 0x01 over WebSocket too', async () => {
    const b = await startBroker();
    const ws = new WebSocket(endpointOf(b, 'ws').url!, 'mqtt');
    const frames: Buffer[] = [];
    const closed = new Promise<void>((resolve, reject) => {
      ws.on('open', () => ws.send(withLevel(6)));
      ws.on('message', (d: Buffer) => frames.push(d));
      ws.on('close', () => resolve());
      ws.on('error', reject);
    });
    await within(closed, 5000, 'the WebSocket to close');
    expect(Buffer.concat(frames)).toEqual(CONNACK(1));
  });

  it('answers an empty client id with clean session 0 with CONNACK 0x02 and closes [MQTT-3.1.3-8]', async () => {
    const b = await startBroker();
    const noId = rawConnect({ name: 'MQTT', level: 4, clientId: '', clean: false });
    const { received } = await exchange(port(b), [noId]);
    expect(received).toEqual(CONNACK(2));
    // with clean session 1 the broker assigns an identifier [MQTT-3.1.3-6]
    expect(await firstBytes(port(b), [connectPacket({ clientId: '', clean: true })], 4)).toEqual(CONNACK(0));
  });

  it('answers an MQTT 3.1 CONNECT with an empty client id with CONNACK 0x02 (3.1 §3.1: 1 to 23 characters)', async () => {
    const b = await startBroker();
    const v31 = rawConnect({ name: 'MQIsdp', level: 3, clientId: '' });
    const { received } = await exchange(port(b), [v31]);
    expect(received).toEqual(CONNACK(2));
  });

  it.each(['#/a', 'a/#', '#', 'a/+', '+', 'a+', ''])(
    'closes the connection without CONNACK for the will topic %j [MQTT-4.7.1-1], [MQTT-4.7.3-1]',
    async (topic) => {
      const b = await startBroker();
      const violations: string[] = [];
      b.events.onEvent('protocol-violation', (e) => violations.push(e.reason));
      const packet = rawConnect({ name: 'MQTT', level: 4, clientId: 'wire', will: topic });
      const { received } = await exchange(port(b), [packet]);
      expect(received).toEqual(Buffer.alloc(0));
      expect(violations).toHaveLength(1);
      expect(violations[0]).toMatch(/will topic/);
    },
  );

  it('accepts a will topic without wildcards', async () => {
    const b = await startBroker();
    const will = { topic: 'status/wire', payload: Buffer.from('gone'), qos: 0 as const, retain: false };
    expect(await firstBytes(port(b), [connectPacket({ will })], 4)).toEqual(CONNACK(0));
  });
});

describe('mqtt-broker topic checks at the wire (MQTT 3.1.1 §4.7)', () => {
  const subscribe = (topic: string, messageId = 1): Buffer =>
    generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos: 0 }] } as Packet);

  it.each(['a+', '+a', 'a/+b', 'a+/b', 'a#', 'a/b#', '#/a', 'a/#/b', '##', '++'])(
    'closes the connection on the SUBSCRIBE filter %j without a SUBACK [MQTT-4.7.1-2], [MQTT-4.7.1-3], [MQTT-4.8.0-1]',
    async (filter) => {
      const b = await startBroker();
      const violations: string[] = [];
      b.events.onEvent('protocol-violation', (e) => violations.push(e.reason));
      const { received } = await exchange(port(b), [connectPacket(), subscribe(filter)]);
      expect(received).toEqual(CONNACK(0));
      if (['a/b#', '#/a', 'a/#/b', '##'].includes(filter)) return; // aedes' own check closes these
      expect(violations).toEqual([expect.stringMatching(/topic filter/)]);
    },
  );

  it.each(['+', '#', 'a/+/b', '+/+', '/#', 'a/#', '/', '+/', 'a//b', '$SYS/#', 'a/+/#'])(
    'grants the SUBSCRIBE filter %j',
    async (filter) => {
      const b = await startBroker();
      const got = await firstBytes(port(b), [connectPacket(), subscribe(filter, 7)], 9);
      expect(got).toEqual(Buffer.concat([CONNACK(0), SUBACK(7, 0)]));
    },
  );

  it.each(['a/+', 'a/#', '+', '#'])(
    'closes the connection on a PUBLISH to the topic name %j [MQTT-3.3.2-2]',
    async (topic) => {
      const b = await startBroker();
      const publish = generate({ cmd: 'publish', topic, payload: Buffer.from('x'), qos: 0 } as Packet);
      const { received } = await exchange(port(b), [connectPacket(), publish]);
      expect(received).toEqual(CONNACK(0));
    },
  );

  it('keeps serving other clients after closing a bad one', async () => {
    const b = await startBroker();
    await exchange(port(b), [connectPacket(), subscribe('a+')]);
    await exchange(port(b), [withLevel(9)]);
    const got = await firstBytes(port(b), [connectPacket(), subscribe('a/+', 3)], 9);
    expect(got).toEqual(Buffer.concat([CONNACK(0), SUBACK(3, 0)]));
  });

  it('names what is wrong with a topic name or filter', () => {
    expect(topicNameProblem('a/b')).toBeUndefined();
    expect(topicNameProblem('a/+')).toMatch(/wildcard/);
    expect(topicNameProblem('')).toMatch(/empty/);
    expect(topicNameProblem('a\u0000b')).toMatch(/U\+0000/);
    expect(topicFilterProblem('a/+/#')).toBeUndefined();
    expect(topicFilterProblem('a+')).toMatch(/entire level/);
    expect(topicFilterProblem('a/#/b')).toMatch(/last/);
    expect(topicFilterProblem('a#')).toMatch(/entire level/);
    expect(topicFilterProblem('')).toMatch(/empty/);
  });
});

/** A raw connection past its CONNACK (aedes queues at most 42 packets before it): write, then wait. */
async function rawSession(p: number, clientId: string) {
  const socket = tcpConnect(p, '127.0.0.1', () => socket.write(connectPacket({ clientId })));
  let got = Buffer.alloc(0);
  let waiter: (() => void) | undefined;
  let closed = false;
  socket.on('data', (d) => {
    got = Buffer.concat([got, d]);
    waiter?.();
  });
  socket.on('error', () => undefined); // the close that follows is what the tests look at
  socket.on('close', () => {
    closed = true;
    waiter?.();
  });
  const session = {
    /** The broker's packets after the CONNACK, 4 bytes each here (PUBREC, PUBCOMP). */
    packets: () => Array.from({ length: got.length / 4 - 1 }, (_, i) => got.subarray(4 + i * 4, 8 + i * 4)),
    closed: () => closed,
    write: (b: Buffer) => socket.write(b),
    until: (done: () => boolean, what: string) =>
      within(
        new Promise<void>((resolve) => {
          waiter = () => (done() || closed) && resolve();
          waiter();
        }),
        10_000,
        what,
      ),
    end: () => socket.destroy(),
  };
  await session.until(() => got.length >= 4, 'CONNACK');
  expect(got.subarray(0, 4)).toEqual(CONNACK(0));
  return session;
}

const qos2Publish = (messageId: number) =>
  generate({
    cmd: 'publish',
    topic: 'q2/t',
    payload: Buffer.from('x'),
    qos: 2,
    messageId,
    retain: false,
    dup: false,
  } as Packet);
const pubrel = (messageId: number) => generate({ cmd: 'pubrel', messageId } as Packet);
const count = (packets: Buffer[], type: number) => packets.filter((p) => p[0] === type).length;

describe('mqtt-broker inbound QoS 2 window (aedes 1.2.0 maxInflightInbound; qos2-window.ts)', () => {
  it('closes a 3.1.1 client whose QoS 2 PUBLISH finds 1000 stored ones still awaiting PUBREL', async () => {
    const b = await startBroker();
    const s = await rawSession(port(b), 'q2');
    try {
      s.write(Buffer.concat(Array.from({ length: 1000 }, (_, i) => qos2Publish(i + 1))));
      await s.until(() => count(s.packets(), 0x50) === 1000, '1000 PUBRECs');
      // the 1001st: no PUBREC, the connection is closed (3.1.1 has no code to refuse it with)
      s.write(qos2Publish(1001));
      await s.until(() => false, 'the close');
      expect(s.closed()).toBe(true);
      expect(count(s.packets(), 0x50)).toBe(1000);
    } finally {
      s.end();
    }
  });

  it('a PUBREL frees its slot: 1000 exchanges, then 1000 more on the same connection', async () => {
    const b = await startBroker();
    const s = await rawSession(port(b), 'q2b');
    try {
      for (const from of [1, 1001]) {
        const ids = Array.from({ length: 1000 }, (_, i) => from + i);
        s.write(Buffer.concat(ids.map(qos2Publish)));
        await s.until(() => count(s.packets(), 0x50) === from + 999, 'PUBRECs');
        s.write(Buffer.concat(ids.map(pubrel)));
        await s.until(() => count(s.packets(), 0x70) === from + 999, 'PUBCOMPs');
      }
      expect(s.closed()).toBe(false);
    } finally {
      s.end();
    }
  });
});
