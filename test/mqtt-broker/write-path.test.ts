import { once } from 'node:events';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { coalesceWrites } from '../../simulators/mqtt-broker/coalesce.js';
import {
  encodePlainAck,
  encodePlainPublish,
  writeWholePackets,
} from '../../simulators/mqtt-broker/wire-out.js';
import { within } from '../helpers/within.js';

/**
 * The broker's write path (coalesce.ts, wire-out.ts's whole packets) on a real loopback socket pair: what
 * reaches the peer, in what order, and the socket's own backpressure.
 */

let server: Server | undefined;
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

/** A connected pair: `broker` (the accepted side, as the broker's) and `peer`, which collects every byte. */
async function pair(): Promise<{
  broker: Socket;
  peer: Socket;
  bytes: () => Buffer;
  ended: Promise<unknown>;
}> {
  const srv = createServer();
  server = srv;
  const accepted = new Promise<Socket>((resolve) => srv.once('connection', resolve));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  const peer = netConnect(port, '127.0.0.1');
  const broker = await within(accepted, 5000, 'the accepted socket');
  sockets.push(peer, broker);
  const chunks: Buffer[] = [];
  peer.on('data', (c: Buffer) => chunks.push(c));
  return { broker, peer, bytes: () => Buffer.concat(chunks), ended: once(peer, 'end') };
}

const publish = (topic: string, payload: string): Packet => ({
  cmd: 'publish',
  topic,
  payload: Buffer.from(payload),
  qos: 0,
  retain: false,
  dup: false,
});

describe('mqtt-broker write path', () => {
  it('packets written whole through coalesced writes reach the peer byte for byte, in order, before end()', async () => {
    const { broker, bytes, ended } = await pair();
    coalesceWrites(broker);
    writeWholePackets(broker);
    const packets = [publish('a/b', 'one'), publish('ä/ü', 'two'), publish('c', 'x'.repeat(300))];
    const expected = Buffer.concat([
      ...packets.slice(0, 2).map((p) => mqttPacket.generate(p, { protocolVersion: 4 })),
      Buffer.from('ta'),
      mqttPacket.generate(packets[2] as Packet, { protocolVersion: 4 }),
      Buffer.from('il'),
    ]);
    const [first, second, third] = packets.map(
      (p) => () => expect(mqttPacket.writeToStream(p, broker, { protocolVersion: 4 })).toBe(true),
    );
    first?.();
    second?.();
    // a write of another shape (a string) comes after what was gathered
    broker.write('ta');
    third?.();
    // and end() sends what was gathered in this turn before its own data
    broker.end(Buffer.from('il'));
    await within(ended, 5000, 'the peer to see the end');
    expect(bytes().equals(expected)).toBe(true);
  });

  it('an invalid packet destroys the connection with mqtt-packet’s own error, as without whole packets', async () => {
    const { broker } = await pair();
    writeWholePackets(broker);
    // events.once would reject on the 'error' that comes first
    const closed = new Promise((r) => broker.once('close', r));
    const error = once(broker, 'error');
    expect(
      mqttPacket.writeToStream({ cmd: 'connack', returnCode: 'x' } as unknown as Packet, broker, {}),
    ).toBe(false);
    const [err] = (await within(error, 5000, 'the socket error')) as [Error];
    expect(err.message).toMatch(/Invalid return code/);
    await within(closed, 5000, 'the close');
  });

  it('keeps the socket’s backpressure: false past the high-water mark, then a drain', async () => {
    const { broker, peer } = await pair();
    coalesceWrites(broker);
    peer.pause(); // the peer reads nothing: the kernel buffers fill, then the socket's own
    const chunk = Buffer.alloc(64 * 1024, 1);
    let accepted = 0;
    while (broker.write(chunk)) {
      accepted++;
      expect(accepted).toBeLessThan(10_000); // loopback buffers are a few MiB at most
    }
    expect(broker.writableNeedDrain).toBe(true);
    const drained = once(broker, 'drain');
    peer.resume();
    await within(drained, 10_000, 'the drain');
  });

  it('encodes PUBLISH and the QoS acknowledgements byte for byte as mqtt-packet does (MQTT 3.1, 3.1.1)', () => {
    let checked = 0;
    for (const protocolVersion of [3, 4] as const) {
      for (const qos of [0, 1, 2] as const) {
        for (const topic of ['a/b', 'ä/ü/€', '', 't'.repeat(300)]) {
          for (const size of [0, 100, 200, 20_000, 3_000_000]) {
            for (const flags of [{}, { retain: true }, { dup: true, retain: true }]) {
              const p = {
                ...publish(topic, 'x'.repeat(size)),
                qos,
                ...flags,
                ...(qos > 0 ? { messageId: size % 65_536 } : {}),
              } as Packet;
              const mine = encodePlainPublish(p, protocolVersion);
              expect(mine?.equals(mqttPacket.generate(p, { protocolVersion }))).toBe(true);
              checked++;
            }
          }
        }
      }
      for (const cmd of ['puback', 'pubrec', 'pubrel', 'pubcomp'] as const) {
        for (const messageId of [0, 1, 300, 65535]) {
          for (const dup of [false, true]) {
            const p = { cmd, messageId, dup } as Packet;
            const mine = encodePlainAck(p, protocolVersion);
            // mqtt-packet 9 throws on a PUBREL with dup set: that one stays its own
            if (cmd === 'pubrel' && dup) expect(mine).toBeUndefined();
            else expect(mine?.equals(mqttPacket.generate(p, { protocolVersion }))).toBe(true);
            checked++;
          }
        }
      }
    }
    expect(checked).toBe(2 * (3 * 4 * 5 * 3 + 4 * 4 * 2));
  });

  it('leaves to mqtt-packet what it must see: MQTT 5, a string payload, a bad packet identifier', () => {
    const p = publish('t', 'x');
    expect(encodePlainPublish(p, 5)).toBeUndefined();
    expect(encodePlainPublish({ ...p, payload: 'text' } as unknown as Packet, 4)).toBeUndefined();
    expect(encodePlainPublish({ ...p, qos: 1 } as Packet, 4)).toBeUndefined();
    expect(encodePlainPublish({ ...p, qos: 1, messageId: 70_000 } as Packet, 4)).toBeUndefined();
    expect(encodePlainAck({ cmd: 'puback', messageId: 1 } as Packet, 5)).toBeUndefined();
    expect(encodePlainAck({ cmd: 'puback' } as Packet, 4)).toBeUndefined();
    expect(encodePlainAck({ cmd: 'suback', messageId: 1, granted: [0] } as Packet, 4)).toBeUndefined();
  });
});
