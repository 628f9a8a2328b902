import type { EventEmitter } from 'node:events';
import mqttPacket, { type Packet } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { parseCommonPacketsFast } from '../../simulators/mqtt-broker/fast-parse.js';

/**
 * fast-parse.ts against mqtt-packet's own parser: the same bytes, cut the same ways, must give the same packets
 * (same class, same fields, same order) and the same errors, whatever the protocol version.
 */

type Parser = EventEmitter & { parse(buf: Buffer): number };

/** Every packet (or error) a parser emits for `chunks`, fed one parse() call each. */
function run(chunks: Buffer[], fast: boolean, onPacket?: (p: Packet, parser: Parser) => void): unknown[] {
  const parser = mqttPacket.parser() as Parser;
  if (fast) parseCommonPacketsFast(parser);
  const out: unknown[] = [];
  parser.on('packet', (p: Packet) => {
    out.push({ class: p.constructor.name, ...p });
    onPacket?.(p, parser);
  });
  parser.on('error', (e: Error) => out.push({ error: e.message }));
  for (const c of chunks) parser.parse(c);
  return out;
}

/** What a parser emits up to its first error: aedes closes the connection there, the rest is never read. */
const untilError = (out: unknown[]) => {
  const i = out.findIndex((x) => typeof x === 'object' && x !== null && 'error' in x);
  return i < 0 ? out : out.slice(0, i + 1);
};

/** `bytes` cut into pieces of `size` (a function of the piece's index for uneven cuts). */
function cut(bytes: Buffer, size: (i: number) => number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.max(1, size(i));
    out.push(Buffer.from(bytes.subarray(at, at + n)));
    at += n;
  }
  return out;
}

const gen = (p: object, protocolVersion: 3 | 4 | 5) => mqttPacket.generate(p as Packet, { protocolVersion });

function connect(protocolVersion: 3 | 4 | 5): Buffer {
  return gen(
    {
      cmd: 'connect',
      protocolId: protocolVersion === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion,
      clientId: 'c',
      clean: true,
      keepalive: 30,
    },
    protocolVersion,
  );
}

const pub = (topic: string, payload: Buffer | string, qos: 0 | 1 | 2, extra: object = {}) => ({
  cmd: 'publish',
  topic,
  payload: Buffer.from(payload),
  qos,
  retain: false,
  dup: false,
  ...(qos > 0 ? { messageId: 7 + qos } : {}),
  ...extra,
});

/** A connection's worth of traffic: every packet type a broker reads, the common ones many times. */
function traffic(protocolVersion: 3 | 4 | 5): Buffer {
  const packets: object[] = [
    pub('a/b', 'one', 0),
    pub('ä/ü/€', 'two', 1),
    pub('c', '', 2, { retain: true }),
    pub('d', 'x'.repeat(300), 1, { dup: true }),
    pub('e', 'y'.repeat(20_000), 0),
    pub('', 'empty topic', 0),
    { cmd: 'puback', messageId: 1 },
    { cmd: 'pubrec', messageId: 2 },
    { cmd: 'pubrel', messageId: 3 },
    { cmd: 'pubcomp', messageId: 65535 },
    { cmd: 'pingreq' },
    { cmd: 'subscribe', messageId: 4, subscriptions: [{ topic: 's/#', qos: 1 }] },
    { cmd: 'unsubscribe', messageId: 5, unsubscriptions: ['s/#'] },
  ];
  if (protocolVersion === 5) {
    packets.push(
      pub('p', 'props', 1, { properties: { userProperties: { k: 'v' }, contentType: 'text/plain' } }),
      { cmd: 'puback', messageId: 6, reasonCode: 0x10 },
      { cmd: 'pubrec', messageId: 6, reasonCode: 0x80, properties: { reasonString: 'no' } },
    );
  }
  const body = packets.map((p) => gen(p, protocolVersion));
  const flood = Array.from({ length: 200 }, (_, i) =>
    gen(pub('bench/t', `m${i}`, (i % 2) as 0 | 1), protocolVersion),
  );
  return Buffer.concat([
    connect(protocolVersion),
    ...body,
    ...flood,
    gen({ cmd: 'disconnect' }, protocolVersion),
  ]);
}

const cuts: Array<[string, (i: number) => number]> = [
  ['whole', () => 1 << 30],
  ['1 byte at a time', () => 1],
  ['2 bytes', () => 2],
  ['7 bytes', () => 7],
  ['64 bytes', () => 64],
  ['1000 bytes', () => 1000],
  ['64 KiB', () => 65_536],
  ['uneven', (i) => ((i * 7919) % 1500) + 1],
];

describe('mqtt-broker fast parse (fast-parse.ts)', () => {
  for (const version of [3, 4, 5] as const) {
    for (const [name, size] of cuts) {
      it(`MQTT ${version === 3 ? '3.1' : version === 4 ? '3.1.1' : '5'}, ${name}: the packets mqtt-packet gives, in order`, () => {
        const chunks = cut(traffic(version), size);
        const expected = run(chunks, false);
        expect(expected.length).toBeGreaterThan(200);
        expect(run(chunks, true)).toEqual(expected);
      });
    }
  }

  it('a malformed PUBLISH (both QoS bits set) gets mqtt-packet’s error, after the packets before it', () => {
    const bad = Buffer.from(gen(pub('t', 'x', 0), 4));
    bad[0] = 0x36; // [MQTT-3.3.1-4]
    const bytes = Buffer.concat([connect(4), gen(pub('t', 'ok', 0), 4), bad, gen(pub('t', 'after', 0), 4)]);
    for (const [, size] of cuts) {
      const chunks = cut(bytes, size);
      const got = untilError(run(chunks, true));
      expect(got).toEqual(untilError(run(chunks, false)));
      expect(got).toHaveLength(3);
      expect(got[2]).toEqual({ error: 'Packet must not have both QoS bits set to 1' });
    }
  });

  it('a topic longer than its packet, and an acknowledgement with wrong flags, get mqtt-packet’s errors', () => {
    const longTopic = Buffer.from([0x30, 0x04, 0x00, 0x09, 0x61, 0x62]);
    const badAck = Buffer.from([0x41, 0x02, 0x00, 0x01]); // PUBACK flags must be 0000 [MQTT-2.2.2-1]
    for (const bad of [longTopic, badAck]) {
      const chunks = [connect(4), gen(pub('t', 'ok', 0), 4), bad];
      const got = untilError(run(chunks, true));
      expect(got).toEqual(untilError(run(chunks, false)));
      expect(got[2]).toHaveProperty('error');
    }
  });

  it('a large packet cut across many reads is completed by mqtt-packet, and the packets after it are the same', () => {
    const big = gen(pub('big', 'z'.repeat(200_000), 1), 4);
    const bytes = Buffer.concat([connect(4), gen(pub('t', 'a', 0), 4), big, gen(pub('t', 'b', 0), 4)]);
    for (const size of [1000, 65_536]) {
      const chunks = cut(bytes, () => size);
      const got = run(chunks, true);
      expect(got).toEqual(run(chunks, false));
      expect(got).toHaveLength(4);
    }
  });

  it('bytes parsed from inside a packet listener come after the ones being parsed, as if read next', () => {
    const first = Buffer.concat([connect(4), gen(pub('t', '1', 0), 4), gen(pub('t', '2', 0), 4)]);
    const more = Buffer.concat([gen(pub('t', '3', 0), 4), gen({ cmd: 'puback', messageId: 9 }, 4)]);
    let reentered = false;
    const got = run([first], true, (p, parser) => {
      if (p.cmd !== 'publish' || reentered) return;
      reentered = true;
      parser.parse(more);
    });
    // (mqtt-packet itself re-parses its current packet when re-entered: the reference is the bytes read in turn)
    expect(got).toEqual(run([first, more], false));
    expect(got.map((p) => (p as { cmd: string }).cmd)).toEqual([
      'connect',
      'publish',
      'publish',
      'publish',
      'puback',
    ]);
  });

  it('after a packet cut by a read, mqtt-packet gets the rest of that packet alone, not the reads after it', () => {
    const flood = Array.from({ length: 2000 }, (_, i) =>
      gen(pub('bench/t', 'x'.repeat(100 + (i % 7)), 0), 4),
    );
    const bytes = Buffer.concat([connect(4), ...flood]);
    const parser = mqttPacket.parser() as Parser;
    const own = parser.parse;
    let toMqttPacket = 0;
    parser.parse = (buf: Buffer) => {
      toMqttPacket += buf.length;
      return own.call(parser, buf);
    };
    parseCommonPacketsFast(parser);
    let packets = 0;
    parser.on('packet', () => packets++);
    for (const c of cut(bytes, () => 1000)) parser.parse(c);
    expect(packets).toBe(2001);
    // the CONNECT and, per read, the tail of one cut packet: a small share of the bytes
    expect(toMqttPacket).toBeLessThan(bytes.length / 5);
  });
});
