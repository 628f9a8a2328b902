import fc from 'fast-check';
import {
  encodeMessage,
  MessageType as T,
  type TunnelMessageInput,
} from '../../simulators/tunnel-service/index.js';
import { mutated } from './mutate.js';

/**
 * Secure Tunneling inputs: data-plane sessions (V1, V2, V3) made of messages built by the service's own
 * encoder and then mutated, sent by either peer; and management API requests (AWS JSON 1.1) with operation
 * names, headers and bodies drawn from valid ones and then broken.
 */

export const PROTOCOLS = [
  'aws.iot.securetunneling-1.0',
  'aws.iot.securetunneling-2.0',
  'aws.iot.securetunneling-3.0',
] as const;

const serviceId = fc.oneof(fc.constantFrom('SSH', 'HTTP', ''), fc.string({ maxLength: 20 }));
const streamId = fc.oneof(fc.constantFrom(0, 1, 2, -1), fc.integer());
const message: fc.Arbitrary<TunnelMessageInput> = fc.record({
  type: fc.oneof(fc.constantFrom(...Object.values(T)), fc.integer({ min: 8, max: 100 })),
  streamId,
  ignorable: fc.boolean(),
  payload: fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.constant(new Uint8Array(64_512))),
  serviceId,
  availableServiceIds: fc.array(serviceId, { maxLength: 4 }),
  connectionId: fc.oneof(fc.constantFrom(0, 1, 2), fc.nat()),
});

function encode(m: TunnelMessageInput): Buffer {
  try {
    return encodeMessage(m);
  } catch {
    return encodeMessage({ type: T.UNKNOWN });
  }
}

export interface SessionInput {
  protocol: (typeof PROTOCOLS)[number];
  services: string[];
  /** Each WebSocket frame: who sends it and its bytes (one or more prefixed messages, mutated). */
  frames: Array<{ from: 'source' | 'destination'; bytes: Buffer }>;
}

export const tunnelSession: fc.Arbitrary<SessionInput> = fc.record({
  protocol: fc.constantFrom(...PROTOCOLS),
  services: fc.constantFrom(['SSH'], ['SSH', 'HTTP'], []),
  frames: fc.array(
    fc.record({
      from: fc.constantFrom('source' as const, 'destination' as const),
      bytes: mutated(
        fc.array(message.map(encode), { minLength: 1, maxLength: 3 }).map((ms) => Buffer.concat(ms)),
      ),
    }),
    { minLength: 1, maxLength: 6 },
  ),
});

const OPERATIONS = [
  'OpenTunnel',
  'CloseTunnel',
  'DescribeTunnel',
  'ListTunnels',
  'RotateTunnelAccessToken',
  'TagResource',
  'UntagResource',
  'ListTagsForResource',
];
const target = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...OPERATIONS).map((o) => `IoTSecuredTunneling.${o}`) },
  fc
    .constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '')
    .map((o) => `IoTSecuredTunneling.${o}`),
  fc.string({ maxLength: 40 }),
);
const tunnelId = fc.oneof(fc.constant('$TUNNEL'), fc.uuid(), fc.string({ maxLength: 40 }));
const jsonBody = fc.oneof(
  fc.record(
    {
      tunnelId,
      delete: fc.boolean(),
      description: fc.string({ maxLength: 30 }),
      destinationConfig: fc.record({
        thingName: fc.oneof(fc.constant('thing-1'), fc.string({ maxLength: 200 })),
        services: fc.array(serviceId, { maxLength: 4 }),
      }),
      timeoutConfig: fc.record({
        maxLifetimeTimeoutMinutes: fc.oneof(fc.integer({ min: 1, max: 720 }), fc.integer()),
      }),
      tags: fc.array(fc.record({ key: fc.string({ maxLength: 10 }), value: fc.string({ maxLength: 10 }) }), {
        maxLength: 3,
      }),
      clientMode: fc.constantFrom('SOURCE', 'DESTINATION', 'ALL', 'x'),
      maxResults: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer()),
      nextToken: fc.oneof(fc.base64String({ maxLength: 12 }), fc.string({ maxLength: 12 })),
      resourceArn: fc.oneof(fc.constant('$ARN'), fc.string({ maxLength: 40 })),
      tagKeys: fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }),
    },
    { requiredKeys: [] },
  ),
  fc.jsonValue({ maxDepth: 3 }),
);

export interface ApiInput {
  method: string;
  target: string;
  contentType: string;
  /** The body as text; `$TUNNEL` and `$ARN` become a real tunnel's id and ARN before it is sent. */
  body: Buffer;
}

export const apiRequest: fc.Arbitrary<ApiInput> = fc.record({
  method: fc.oneof({ weight: 6, arbitrary: fc.constant('POST') }, fc.constantFrom('GET', 'PUT', 'DELETE')),
  target,
  contentType: fc.constantFrom('application/x-amz-json-1.1', 'application/json', 'text/plain', ''),
  body: mutated(jsonBody.map((b) => Buffer.from(JSON.stringify(b) ?? ''))),
});
