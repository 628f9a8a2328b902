import { createServer } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import { within } from '../helpers/within.js';
import { mutated } from './mutate.js';

/**
 * TLS ClientHellos from Node's own TLS client (OpenSSL), captured on a plain TCP listener, for several
 * SNI / ALPN / version combinations; the fuzz inputs are those real records, mutated, and sometimes split
 * into several TCP writes or followed by more records.
 */

interface HelloSpec {
  servername?: string;
  ALPNProtocols?: string[];
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
}

const SPECS: HelloSpec[] = [
  { servername: 'api.lab.example' },
  { servername: 'pass.lab.example', ALPNProtocols: ['h2', 'http/1.1'] },
  { servername: 'h1.lab.example', ALPNProtocols: ['x-amzn-mqtt-ca'], maxVersion: 'TLSv1.2' },
  { servername: 'api.lab.example', minVersion: 'TLSv1.3' },
  {},
  { servername: `${'a'.repeat(63)}.lab.example`, ALPNProtocols: ['mqtt'] },
];

/** The first flight of a real TLS client for each spec (the ClientHello record). */
export async function captureHellos(): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const spec of SPECS) {
    const server = createServer();
    const got = new Promise<Buffer>((resolve) =>
      server.once('connection', (s) => {
        s.once('data', (d: Buffer) => {
          resolve(d);
          s.destroy();
        });
      }),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const client = tlsConnect({ host: '127.0.0.1', port, ...spec, servername: spec.servername ?? '' });
    client.on('error', () => {});
    try {
      out.push(await within(got, 5000, `the ClientHello of ${JSON.stringify(spec)}`));
    } finally {
      client.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  }
  return out;
}

/** A captured hello, mutated, as one to three TCP writes (a record split where a reader must wait). */
export function clientHello(hellos: Buffer[]): fc.Arbitrary<Buffer[]> {
  return fc
    .tuple(
      mutated(fc.constantFrom(...hellos)),
      fc.array(fc.nat({ max: 600 }), { maxLength: 2 }),
      fc.oneof(
        { weight: 4, arbitrary: fc.constant(Buffer.alloc(0)) },
        fc.constant(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])), // a fatal alert after the hello
        fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
      ),
    )
    .map(([hello, cuts, after]) => {
      const at = [...new Set(cuts.map((c) => Math.min(c, hello.length)))].sort((a, b) => a - b);
      const parts: Buffer[] = [];
      let from = 0;
      for (const c of at) {
        parts.push(hello.subarray(from, c));
        from = c;
      }
      parts.push(Buffer.concat([hello.subarray(from), after]));
      return parts.filter((p) => p.length > 0);
    });
}
