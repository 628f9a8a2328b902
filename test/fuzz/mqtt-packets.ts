import fc from 'fast-check';
import { generate, type Packet } from 'mqtt-packet';
import { mutated } from './mutate.js';

/**
 * MQTT 3.1.1 and 5 packets built by mqtt-packet's encoder (the one MQTT.js uses), then mutated: one
 * connection's worth of packets, CONNECT first, in one protocol version.
 */

const topic = fc.oneof(
  fc.constantFrom(
    'a/b',
    'fuzz/t',
    '#',
    '+',
    'a/+/c',
    'a/#',
    '$SYS/x',
    '',
    'a+',
    '#/a',
    'a/#/b',
    '\u0000',
    '/',
  ),
  fc.string({ maxLength: 40 }),
);
const userProperties = fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), {
  maxKeys: 3,
});
const qos = fc.constantFrom(0 as const, 1 as const, 2 as const);
const messageId = fc.integer({ min: 1, max: 0xffff });

function connect(version: 4 | 5) {
  return fc.record({
    cmd: fc.constant('connect' as const),
    protocolId: fc.constantFrom('MQTT', 'MQTT', 'MQIsdp'),
    protocolVersion: fc.constant(version),
    clean: fc.boolean(),
    clientId: fc.oneof(
      fc.constant(''),
      fc.string({ maxLength: 30 }),
      fc.string({ minLength: 200, maxLength: 2000 }),
    ),
    keepalive: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 0xffff })),
    username: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
    password: fc.option(
      fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)),
      { nil: undefined },
    ),
    will: fc.option(
      fc.record({
        topic,
        payload: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
        qos,
        retain: fc.boolean(),
      }),
      { nil: undefined },
    ),
    ...(version === 5
      ? {
          properties: fc.record(
            {
              sessionExpiryInterval: fc.nat(),
              receiveMaximum: fc.integer({ min: 1, max: 0xffff }),
              maximumPacketSize: fc.integer({ min: 1, max: 0xfffffff }),
              topicAliasMaximum: fc.nat({ max: 0xffff }),
              requestResponseInformation: fc.boolean(),
              userProperties,
            },
            { requiredKeys: [] },
          ),
        }
      : {}),
  });
}

function afterConnect(version: 4 | 5) {
  const props5 = <T>(a: fc.Arbitrary<T>) => (version === 5 ? { properties: a } : {});
  return fc.oneof(
    fc
      .record({
        cmd: fc.constant('publish' as const),
        topic,
        payload: fc.uint8Array({ maxLength: 256 }).map((a) => Buffer.from(a)),
        qos,
        retain: fc.boolean(),
        dup: fc.boolean(),
        messageId,
        ...props5(
          fc.record(
            {
              topicAlias: fc.integer({ min: 1, max: 20 }),
              messageExpiryInterval: fc.nat(),
              contentType: fc.string({ maxLength: 10 }),
              userProperties,
            },
            { requiredKeys: [] },
          ),
        ),
      })
      .map((p) => (p.qos === 0 ? { ...p, messageId: undefined } : p)),
    fc.record({
      cmd: fc.constant('subscribe' as const),
      messageId,
      subscriptions: fc.array(
        fc.record({
          topic,
          qos,
          ...(version === 5 ? { nl: fc.boolean(), rap: fc.boolean(), rh: fc.nat({ max: 2 }) } : {}),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    }),
    fc.record({
      cmd: fc.constant('unsubscribe' as const),
      messageId,
      unsubscriptions: fc.array(topic, { minLength: 1, maxLength: 3 }),
    }),
    fc.record({
      cmd: fc.constantFrom('puback' as const, 'pubrec' as const, 'pubrel' as const, 'pubcomp' as const),
      messageId,
    }),
    fc.constant({ cmd: 'pingreq' as const }),
    fc.record({ cmd: fc.constant('disconnect' as const) }),
    ...(version === 5
      ? [
          fc.record({
            cmd: fc.constant('auth' as const),
            reasonCode: fc.constantFrom(0x00, 0x18, 0x19),
            properties: fc.record({ authenticationMethod: fc.string({ maxLength: 10 }) }),
          }),
        ]
      : []),
  );
}

/** Encodes with mqtt-packet; a combination its encoder refuses becomes a PINGREQ. */
function encode(p: object, version: 4 | 5): Buffer {
  try {
    return generate(p as Packet, { protocolVersion: version });
  } catch {
    return Buffer.from([0xc0, 0x00]);
  }
}

/** One connection's packets: a CONNECT (valid 3 times in 4) and up to five more, each maybe mutated. */
export const mqttSession: fc.Arbitrary<Buffer[]> = fc
  .constantFrom(4 as const, 5 as const)
  .chain((v) =>
    fc
      .tuple(
        fc.oneof(
          { weight: 3, arbitrary: connect(v).map((p) => encode(p, v)) },
          { weight: 1, arbitrary: mutated(connect(v).map((p) => encode(p, v))) },
        ),
        fc.array(mutated(afterConnect(v).map((p) => encode(p, v))), { maxLength: 5 }),
      )
      .map(([c, rest]) => [c, ...rest]),
  );
