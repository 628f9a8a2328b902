import { type AddressInfo, createServer, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { parseClientHello, scanClientHello } from '../../simulators/tls-inspector/client-hello.js';

/** Records the first flight of a real Node TLS client by accepting it on a raw TCP server. */
async function captureClientHello(opts: ConnectionOptions): Promise<Buffer> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const captured = new Promise<Buffer>((resolve, reject) => {
    server.once('connection', (sock: Socket) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (scanClientHello(buf).status !== 'need-more') {
          sock.destroy();
          resolve(buf);
        }
      });
      sock.on('error', reject);
    });
    setTimeout(() => reject(new Error('no ClientHello within 5s')), 5000).unref();
  });
  const client = tlsConnect({ port, host: '127.0.0.1', ...opts });
  client.on('error', () => undefined); // the capture server hangs up on it
  try {
    return await captured;
  } finally {
    client.destroy();
  }
}

const servers: ReturnType<typeof createServer>[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

/** Re-frames one handshake message into records of at most `size` bytes (RFC 8446 §5.1 allows it). */
function refragment(record: Buffer, size: number): Buffer {
  const body = record.subarray(5, 5 + record.readUInt16BE(3));
  const out: Buffer[] = [];
  for (let i = 0; i < body.length; i += size) {
    const part = body.subarray(i, i + size);
    const header = Buffer.from([0x16, 0x03, 0x01, 0, 0]);
    header.writeUInt16BE(part.length, 3);
    out.push(header, part);
  }
  return Buffer.concat(out);
}

/** A deterministic byte generator (xorshift), so a failure reproduces. */
function pseudoRandom(seed: number, n: number): Buffer {
  let x = seed >>> 0 || 1;
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

describe('parseClientHello on real ClientHellos from Node', () => {
  it('reads SNI, the ALPN list in order and supported_versions', async () => {
    const raw = await captureClientHello({
      servername: 'API.Lab.Example',
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    const hello = parseClientHello(raw);
    expect(hello).toBeDefined();
    expect(hello?.sni).toBe('api.lab.example');
    expect(hello?.alpn).toEqual(['h2', 'http/1.1']);
    expect(hello?.legacyVersion).toBe(0x0303);
    expect(hello?.supportedVersions).toContain(0x0304);
    expect(hello?.recordBytes).toBe(raw.length);
  });

  it('has no SNI when the client connects to an IP literal, and no ALPN when none is offered', async () => {
    const raw = await captureClientHello({ servername: '' });
    const hello = parseClientHello(raw);
    expect(hello).toBeDefined();
    expect(hello?.sni).toBeUndefined();
    expect(hello?.alpn).toBeUndefined();
  });

  it('reads MQTT ALPN ids and a TLS 1.2-only hello', async () => {
    const raw = await captureClientHello({
      servername: 'broker.lab.example',
      ALPNProtocols: ['x-amzn-mqtt-ca', 'mqtt'],
      maxVersion: 'TLSv1.2',
    });
    const hello = parseClientHello(raw);
    expect(hello?.alpn).toEqual(['x-amzn-mqtt-ca', 'mqtt']);
    expect(hello?.supportedVersions ?? []).not.toContain(0x0304);
  });

  it('reassembles a ClientHello split over many records', async () => {
    const raw = await captureClientHello({ servername: 'split.lab.example', ALPNProtocols: ['mqtt'] });
    const split = refragment(raw, 37);
    expect(split.length).toBeGreaterThan(raw.length);
    const hello = parseClientHello(split);
    expect(hello?.sni).toBe('split.lab.example');
    expect(hello?.alpn).toEqual(['mqtt']);
    expect(hello?.recordBytes).toBe(split.length);
  });
});

describe('parseClientHello on bad input', () => {
  it('every truncation is need-more (never a throw, never a result)', async () => {
    const raw = refragment(
      await captureClientHello({ servername: 'cut.lab.example', ALPNProtocols: ['h2'] }),
      64,
    );
    for (let n = 0; n < raw.length; n++) {
      const cut = raw.subarray(0, n);
      expect(parseClientHello(cut)).toBeUndefined();
      expect(scanClientHello(cut).status).toBe('need-more');
    }
  });

  it('garbage and non-TLS bytes are invalid', () => {
    expect(scanClientHello(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')).status).toBe('invalid');
    expect(scanClientHello(Buffer.from([0x16, 0x02, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5])).status).toBe(
      'invalid',
    );
    // A handshake record whose message is a ServerHello (type 2), not a ClientHello.
    expect(scanClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00])).status).toBe(
      'invalid',
    );
    // Zero-length record (RFC 8446 §5.1 forbids it for handshake).
    expect(scanClientHello(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x00])).status).toBe('invalid');
    for (let seed = 1; seed <= 200; seed++) {
      expect(() => parseClientHello(pseudoRandom(seed, 1 + (seed % 600)))).not.toThrow();
    }
  });

  it('lying lengths inside a real hello are caught, not read past', async () => {
    const raw = await captureClientHello({ servername: 'lie.lab.example', ALPNProtocols: ['http/1.1'] });
    // Every single-byte corruption: no throw, and any result it still gives is well-formed.
    for (let i = 0; i < raw.length; i++) {
      for (const v of [0x00, 0xff]) {
        const bad = Buffer.from(raw);
        bad[i] = v;
        const r = scanClientHello(bad);
        if (r.status === 'ok') {
          expect(typeof r.hello.legacyVersion).toBe('number');
          if (r.hello.sni !== undefined) expect(r.hello.sni.length).toBeGreaterThan(0);
        }
      }
    }
    // The handshake length claims more than the records hold: need-more, then invalid once too large.
    const long = Buffer.from(raw);
    long[6] = 0x01; // body length += 64 KiB
    expect(parseClientHello(long)).toBeUndefined();
    expect(scanClientHello(long).status).toBe('invalid');
  });
});
