import fc from 'fast-check';
import { buildQuery } from '../geo-dns/helpers.js';
import { mutated } from './mutate.js';

/**
 * DNS queries built like a resolver's (header, one question, an EDNS OPT with or without a Client
 * Subnet), with the header's counts and flags drawn as well and sometimes records after the question
 * (answers with compression pointers, including a pointer to itself), then mutated.
 */

const label = fc.stringMatching(/^[a-z0-9-]{1,20}$/);
const qname = fc.oneof(
  fc.constantFrom(
    'global.iot.example.com',
    'us-east-1.iot.example.com',
    'eu-west-1.iot.example.com',
    'info.iot.example.com',
    'big.iot.example.com',
    '_mqtt._tcp.iot.example.com',
    'iot.example.com',
    'nope.iot.example.com',
    'other.test',
  ),
  fc.array(label, { minLength: 1, maxLength: 6 }).map((ls) => [...ls, 'iot', 'example', 'com'].join('.')),
  // 63-byte labels up to the 255-byte name limit and past it (RFC 1035 §2.3.4).
  fc.integer({ min: 1, max: 5 }).map((n) => Array.from({ length: n }, () => 'x'.repeat(63)).join('.')),
);
const qtype = fc.oneof(fc.constantFrom(1, 28, 5, 16, 33, 2, 6, 255, 41, 252, 251), fc.nat({ max: 0xffff }));
const ecs = fc.oneof(
  fc.record({ family: fc.constant(1), source: fc.integer({ min: 0, max: 32 }) }).map((e) => ({
    ...e,
    address: Array.from({ length: Math.ceil(e.source / 8) }, (_, i) => [203, 0, 113, 7][i] ?? 0),
  })),
  fc.record({
    family: fc.nat({ max: 3 }),
    source: fc.nat({ max: 255 }),
    address: fc.array(fc.nat({ max: 255 }), { maxLength: 20 }),
  }),
);

/** An answer record after the question: a compression pointer to the question, past the end, or a loop. */
const trailingRecord = fc.constantFrom('to-question', 'past-end', 'loop').map((kind) => {
  const rr = Buffer.alloc(12 + 4);
  if (kind === 'to-question') rr.writeUInt16BE(0xc00c, 0);
  else if (kind === 'past-end') rr.writeUInt16BE(0xffff, 0);
  else rr.writeUInt16BE(0xc000, 0); // patched to point at itself below
  rr.writeUInt16BE(1, 2);
  rr.writeUInt16BE(1, 4);
  rr.writeUInt32BE(60, 6);
  rr.writeUInt16BE(4, 10);
  rr.writeUInt32BE(0xcb007107, 12); // 203.0.113.7
  return { kind, rr };
});

export const dnsQuery: fc.Arbitrary<Buffer> = mutated(
  fc
    .record({
      name: qname,
      type: qtype,
      id: fc.nat({ max: 0xffff }),
      flags: fc.oneof(fc.constant(0x0100), fc.nat({ max: 0xffff })),
      opt: fc.option(
        fc.record({ ecs: fc.option(ecs, { nil: undefined }), udpSize: fc.nat({ max: 0xffff }) }),
        {
          nil: undefined,
        },
      ),
      answers: fc.array(trailingRecord, { maxLength: 2 }),
    })
    .map((q) => {
      const base = buildQuery(q.name, q.type, {
        id: q.id,
        ...(q.opt?.ecs ? { ecs: q.opt.ecs } : {}),
        ...(q.opt ? { udpSize: q.opt.udpSize || 512 } : {}),
      });
      base.writeUInt16BE(q.flags, 2);
      if (q.answers.length === 0) return base;
      // Records go after the question and before the OPT; only their count and bytes matter here.
      const parts: Buffer[] = [base];
      let offset = base.length;
      for (const a of q.answers) {
        const rr = Buffer.from(a.rr);
        if (a.kind === 'loop') rr.writeUInt16BE(0xc000 | offset, 0);
        parts.push(rr);
        offset += rr.length;
      }
      const out = Buffer.concat(parts);
      out.writeUInt16BE(q.answers.length, 6);
      return out;
    }),
);

/** TCP: one or more length-prefixed queries in one connection (RFC 1035 §4.2.2); the prefix may lie. */
export const dnsTcpStream: fc.Arbitrary<Buffer> = fc
  .array(fc.tuple(dnsQuery, fc.oneof({ weight: 4, arbitrary: fc.constant(-1) }, fc.nat({ max: 0xffff }))), {
    minLength: 1,
    maxLength: 3,
  })
  .map((qs) =>
    Buffer.concat(
      qs.flatMap(([q, len]) => {
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(len < 0 ? Math.min(q.length, 0xffff) : len);
        return [prefix, q];
      }),
    ),
  );
