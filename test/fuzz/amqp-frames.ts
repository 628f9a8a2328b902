import { createRequire } from 'node:module';
import fc from 'fast-check';
import { mutated } from './mutate.js';

/**
 * AMQP 1.0 connections as a device SDK opens them on IoT Hub (SASL header and init, AMQP header, open,
 * begin, attach to $cbs or a device's event/message links, transfer, detach, end, close), every frame
 * built by rhea's own frame writer (the AMQP library the hub runs on), then mutated.
 */

interface Frame {
  channel: number;
  type: number;
  performative: unknown;
  payload?: Buffer;
}
interface RheaFrames {
  write_frame(f: Frame): Buffer;
  amqp_frame(channel: number, performative: unknown, payload?: Buffer): Frame;
  sasl_frame(performative: unknown): Frame;
  open(fields: object): unknown;
  begin(fields: object): unknown;
  attach(fields: object): unknown;
  flow(fields: object): unknown;
  transfer(fields: object): unknown;
  detach(fields: object): unknown;
  end(fields: object): unknown;
  close(fields: object): unknown;
  sasl_init(fields: object): unknown;
}
// rhea's frame codec is internal (lib/frames.js, CommonJS, untyped): the fields used are typed above.
const frames = createRequire(import.meta.url)('rhea/lib/frames.js') as RheaFrames;

const SASL_HEADER = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0x03, 0x01, 0x00, 0x00]);
const AMQP_HEADER = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0x00, 0x01, 0x00, 0x00]);

function write(f: () => Frame): Buffer {
  try {
    return frames.write_frame(f());
  } catch {
    return frames.write_frame(frames.amqp_frame(0, undefined));
  }
}

function dataSection(body: Buffer): Buffer {
  const head = Buffer.from([0x00, 0x53, 0x75, 0xb0, 0, 0, 0, 0]);
  head.writeUInt32BE(body.length, 4);
  return Buffer.concat([head, body]);
}

const address = fc.oneof(
  fc.constantFrom(
    '$cbs',
    '/devices/fuzz-1/messages/events',
    '/devices/fuzz-1/messages/devicebound',
    '/devices/x',
  ),
  fc.string({ maxLength: 60 }),
);
const channel = fc.oneof(fc.constant(0), fc.nat({ max: 0xffff }));
const handle = fc.oneof(fc.constant(0), fc.nat());

const sasl = fc.record({
  mechanism: fc.constantFrom('ANONYMOUS', 'MSSBCBS', 'PLAIN', 'EXTERNAL', 'X'),
  response: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  hostname: fc.constantFrom('localhost', '', 'hub.azure-devices.net'),
});

const afterOpen = fc.oneof(
  fc
    .record({ channel, remote: fc.option(fc.nat({ max: 0xffff }), { nil: undefined }), window: fc.nat() })
    .map(
      (b) => () =>
        frames.amqp_frame(
          b.channel,
          frames.begin({
            remote_channel: b.remote,
            next_outgoing_id: 0,
            incoming_window: b.window,
            outgoing_window: b.window,
          }),
        ),
    ),
  fc
    .record({
      channel,
      handle,
      name: fc.string({ maxLength: 30 }),
      role: fc.boolean(),
      source: address,
      target: address,
    })
    .map(
      (a) => () =>
        frames.amqp_frame(
          a.channel,
          frames.attach({
            name: a.name,
            handle: a.handle,
            role: a.role,
            source: { address: a.source },
            target: { address: a.target },
            initial_delivery_count: 0,
          }),
        ),
    ),
  fc.record({ channel, handle, credit: fc.nat({ max: 1000 }) }).map(
    (f) => () =>
      frames.amqp_frame(
        f.channel,
        frames.flow({
          next_incoming_id: 0,
          incoming_window: 100,
          next_outgoing_id: 0,
          outgoing_window: 100,
          handle: f.handle,
          link_credit: f.credit,
        }),
      ),
  ),
  fc
    .record({
      channel,
      handle,
      id: fc.nat(),
      body: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    })
    .map(
      (t) => () =>
        frames.amqp_frame(
          t.channel,
          frames.transfer({
            handle: t.handle,
            delivery_id: t.id,
            delivery_tag: Buffer.from([t.id & 0xff]),
            message_format: 0,
          }),
          // An AMQP data section (described 0x75, vbin32): what a telemetry message body looks like.
          dataSection(t.body),
        ),
    ),
  fc
    .record({ channel, handle })
    .map((d) => () => frames.amqp_frame(d.channel, frames.detach({ handle: d.handle, closed: true }))),
  channel.map((c) => () => frames.amqp_frame(c, frames.end({}))),
  fc.constant(() => frames.amqp_frame(0, frames.close({}))),
);

/** One connection's bytes: the SASL exchange and AMQP frames as one client writes them, each maybe mutated. */
export const amqpConnection: fc.Arbitrary<Buffer[]> = fc
  .record({
    sasl: fc.option(sasl, { freq: 4, nil: undefined }),
    open: fc.record({
      container: fc.string({ maxLength: 40 }),
      hostname: fc.constantFrom('localhost', '', 'x'.repeat(300)),
      maxFrame: fc.oneof(fc.constant(65536), fc.constantFrom(0, 1, 511, 512), fc.nat()),
      idle: fc.option(fc.nat(), { nil: undefined }),
    }),
    rest: fc.array(afterOpen, { maxLength: 6 }),
  })
  .chain((c) => {
    const valid: Buffer[] = [];
    if (c.sasl) {
      const s = c.sasl;
      valid.push(
        SASL_HEADER,
        write(() =>
          frames.sasl_frame(
            frames.sasl_init({ mechanism: s.mechanism, initial_response: s.response, hostname: s.hostname }),
          ),
        ),
      );
    }
    valid.push(
      AMQP_HEADER,
      write(() =>
        frames.amqp_frame(
          0,
          frames.open({
            container_id: c.open.container,
            hostname: c.open.hostname,
            max_frame_size: c.open.maxFrame,
            idle_time_out: c.open.idle,
          }),
        ),
      ),
      ...c.rest.map(write),
    );
    // Each frame kept (2 in 3) or mutated: the headers and SASL frames too.
    return fc.tuple(
      ...valid.map((b) => fc.oneof({ weight: 2, arbitrary: fc.constant(b) }, mutated(fc.constant(b)))),
    );
  });
