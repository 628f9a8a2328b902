import type { LookupAddress } from 'node:dns';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';

/**
 * Mostly-valid-then-mutated inputs: a valid message from a protocol's own encoder, then zero to three
 * mutations of the kinds parsers get wrong (a flipped or overwritten byte, a length field set to zero or
 * its maximum, a truncation, trailing bytes, a repeated slice). A third of inputs stay valid, so the
 * fuzzing also reaches the states after a message that parsed.
 */
export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'u16'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'repeat'; at: number; length: number };

const position = fc.nat({ max: 1 << 16 });

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.nat({ max: 7 }) }),
  fc.record({
    kind: fc.constant('set' as const),
    at: position,
    value: fc.oneof(fc.constantFrom(0x00, 0xff, 0x7f, 0x80), fc.nat({ max: 255 })),
  }),
  // Big-endian 16-bit length fields (DNS, TLS, MQTT strings, tunnel frames) set to 0, max or anything.
  fc.record({
    kind: fc.constant('u16' as const),
    at: position,
    value: fc.oneof(fc.constantFrom(0, 0xffff, 0x7fff, 0x8000), fc.nat({ max: 0xffff })),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({ kind: fc.constant('repeat' as const), at: position, length: fc.integer({ min: 1, max: 32 }) }),
);

export function applyMutation(buf: Buffer, m: Mutation): Buffer {
  if (m.kind === 'append') return Buffer.concat([buf, m.bytes]);
  if (buf.length === 0) return buf;
  const at = m.at % buf.length;
  const out = Buffer.from(buf);
  switch (m.kind) {
    case 'flip':
      out[at] = (out[at] as number) ^ (1 << m.bit);
      return out;
    case 'set':
      out[at] = m.value;
      return out;
    case 'u16':
      if (at + 1 < out.length) out.writeUInt16BE(m.value, at);
      return out;
    case 'truncate':
      return out.subarray(0, at);
    case 'repeat': {
      const slice = out.subarray(at, at + m.length);
      return Buffer.concat([out.subarray(0, at), slice, slice, out.subarray(at)]);
    }
  }
}

/** A valid message from `valid`, mutated 0–3 times (a third not at all). */
export function mutated(valid: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc
    .tuple(
      valid,
      fc.oneof(
        { weight: 1, arbitrary: fc.constant([]) },
        { weight: 2, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) },
      ),
    )
    .map(([buf, ms]) => ms.reduce(applyMutation, buf));
}

/**
 * Writes `chunks` on a fresh TCP connection (each chunk its own write, as a client's packets), then waits
 * until the server closes, `ms` pass, or it has been quiet for `quietMs` after answering, and destroys
 * the socket. Resolves with the bytes received.
 */
export function sendTcp(
  port: number,
  chunks: Buffer[],
  ms = 300,
  quietMs = 20,
  host = '127.0.0.1',
): Promise<Buffer> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const s = netConnect({ port, host });
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(got));
    };
    let timer = setTimeout(done, ms);
    s.on('data', (d: Buffer) => {
      got.push(d);
      clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    });
    s.on('error', done);
    s.on('close', done);
    s.on('connect', () => {
      for (const c of chunks) if (c.length > 0) s.write(c);
    });
  });
}

/**
 * Network safety after mutation: every IPv4 literal outside 127.0.0.0/8 becomes a 127.x address and every
 * IPv6 literal becomes ::1, so no mutated request can name a real address (names go through a lookup that
 * resolves nothing but loopback, see `loopbackOnlyLookup`).
 */
export function loopbackOnly(buf: Buffer): Buffer {
  const text = buf.toString('latin1');
  const safe = text
    .replace(/\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/g, (ip) =>
      ip.startsWith('127.') ? ip : `127.${ip.split('.').slice(1).join('.')}`,
    )
    .replace(/\[[^\]]*\]/g, '[::1]')
    // Linear (no backtracking on long inputs): a run of hex digits, colons and dots with two colons or more.
    .replace(/[0-9a-f:.]+/gi, (run) => (run.indexOf(':') !== run.lastIndexOf(':') ? '::1' : run));
  return safe === text ? buf : Buffer.from(safe, 'latin1');
}

/** A `net.LookupFunction` for simulators under fuzz: `localhost` is 127.0.0.1, every other name fails. */
export function loopbackOnlyLookup(
  hostname: string,
  options: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
): void {
  const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all;
  if (hostname === 'localhost') {
    if (all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
    return;
  }
  const err: NodeJS.ErrnoException = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
    code: 'ENOTFOUND',
  });
  callback(err, all ? [] : '', 4);
}

/** `sendTcp` over TLS (trusting `ca`): the handshake first, then the writes, then the same waits. */
export function sendTls(
  port: number,
  ca: string,
  chunks: Buffer[],
  ms = 300,
  quietMs = 20,
  servername = 'localhost',
): Promise<Buffer> {
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername });
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      resolve(Buffer.concat(got));
    };
    let timer = setTimeout(done, 3000);
    s.on('data', (d: Buffer) => {
      got.push(d);
      clearTimeout(timer);
      timer = setTimeout(done, quietMs);
    });
    s.on('error', done);
    s.on('close', done);
    s.on('secureConnect', () => {
      clearTimeout(timer);
      timer = setTimeout(done, ms);
      for (const c of chunks) if (c.length > 0) s.write(c);
    });
  });
}
