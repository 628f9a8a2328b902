import { connect } from 'node:net';
import dns2 from 'dns2';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/index.js';
import { decodeQuery, type GeoDnsHandle } from '../../simulators/geo-dns/index.js';
import { buildQuery, startSeed, udpAsk } from './helpers.js';

const V6_56 = { family: 2, source: 56, address: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0] };

describe('ECS parsing', () => {
  it('dns2 drops the whole OPT record for an IPv6 /56 client subnet (the bug we work around)', () => {
    const q = buildQuery('global.iot.example.com', 1, { ecs: V6_56 });
    let additionals: unknown[] = [];
    try {
      additionals = dns2.Packet.parse(q).additionals;
    } catch {
      additionals = [];
    }
    // If this starts failing, dns2 fixed the bug: the raw-bytes parser can then be simplified.
    expect(additionals.filter((r) => (r as { type?: number }).type === 41)).toEqual([]);
  });

  it('the fast decoder reads the /56 subnet from the raw bytes', () => {
    const q = decodeQuery(buildQuery('Global.IoT.example.com', 1, { ecs: V6_56 }));
    expect(typeof q).toBe('object');
    if (typeof q === 'string') return;
    expect(q.qname).toBe('global.iot.example.com');
    expect(q.opt?.ecs).toMatchObject({ family: 2, sourcePrefix: 56, scopePrefix: 0 });
    expect(Array.from(q.opt?.ecs?.address ?? [])).toEqual(V6_56.address);
  });

  it('FORMERR for an ECS whose address length does not match its prefix (RFC 7871 §6)', () => {
    expect(
      decodeQuery(buildQuery('a.example', 1, { ecs: { family: 1, source: 24, address: [127, 53] } })),
    ).toBe('formerr');
    expect(
      decodeQuery(buildQuery('a.example', 1, { ecs: { family: 1, source: 40, address: [1, 2, 3, 4, 5] } })),
    ).toBe('formerr');
  });
});

describe('geo-dns wire behaviour', () => {
  let dns: GeoDnsHandle | undefined;
  afterEach(async () => {
    await dns?.stop();
    dns = undefined;
  });

  it('echoes the client letter case and patches the ID on cached answers', async () => {
    dns = await startSeed();
    const port = endpointOf(dns, 'dns-udp').port;
    const a = await udpAsk(port, buildQuery('us-east-1.iot.example.com', 1, { id: 1 }));
    const b = await udpAsk(port, buildQuery('US-east-1.IOT.example.COM', 1, { id: 2 }));
    expect(a?.readUInt16BE(0)).toBe(1);
    expect(b?.readUInt16BE(0)).toBe(2);
    expect(b?.toString('latin1', 13, 22)).toBe('US-east-1');
    expect(dns.stats().cacheHits).toBe(1);
    expect(Array.from(b!.subarray(-4))).toEqual([127, 53, 0, 2]);
  });

  it('answers several queries on one TCP connection (2-byte framing, split across writes)', async () => {
    dns = await startSeed();
    const port = endpointOf(dns, 'dns-tcp').port;
    const frames = [1, 2, 3].map((id) => {
      const q = buildQuery('us-east-1.iot.example.com', 1, { id });
      const f = Buffer.alloc(2 + q.length);
      f.writeUInt16BE(q.length, 0);
      q.copy(f, 2);
      return f;
    });
    const all = Buffer.concat(frames);
    const ids = await new Promise<number[]>((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      let buf = Buffer.alloc(0);
      const got: number[] = [];
      const timer = setTimeout(() => reject(new Error('timeout')), 3000);
      s.on('connect', () => {
        s.write(all.subarray(0, 7));
        setImmediate(() => s.write(all.subarray(7)));
      });
      s.on('data', (c) => {
        buf = Buffer.concat([buf, c]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          got.push(buf.readUInt16BE(2));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
        if (got.length === 3) {
          clearTimeout(timer);
          s.end();
          resolve(got);
        }
      });
      s.on('error', reject);
    });
    expect(ids).toEqual([1, 2, 3]);
    expect(dns.stats().tcpQueries).toBe(3);
  });

  it('FORMERR for bad questions, NOTIMP for other opcodes, silence for responses', async () => {
    dns = await startSeed();
    const port = endpointOf(dns, 'dns-udp').port;
    const two = buildQuery('a.iot.example.com', 1);
    two.writeUInt16BE(2, 4);
    expect(((await udpAsk(port, two))?.readUInt16BE(2) ?? -1) & 0xf).toBe(1);
    const notify = buildQuery('a.iot.example.com', 1);
    notify.writeUInt16BE(0x2000, 2); // opcode 4 NOTIFY
    expect(((await udpAsk(port, notify))?.readUInt16BE(2) ?? -1) & 0xf).toBe(4);
    const resp = buildQuery('a.iot.example.com', 1);
    resp.writeUInt16BE(0x8000, 2);
    expect(await udpAsk(port, resp, 300)).toBeUndefined();
    expect(dns.stats().malformed).toBe(3);
  });

  it('unusual queries (two additionals) go through dns2 and keep the raw-parsed /56 ECS', async () => {
    dns = await startSeed();
    const port = endpointOf(dns, 'dns-udp').port;
    const q = buildQuery('global.iot.example.com', 1, { id: 9, ecs: V6_56 });
    // Append a second additional record (a TXT at the root) so the fast decoder hands it over.
    const extra = Buffer.from([0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 2, 1, 0x78]);
    const packet = Buffer.concat([q, extra]);
    packet.writeUInt16BE(2, 10);
    const reply = await udpAsk(port, packet);
    expect(reply?.readUInt16BE(0)).toBe(9);
    expect(reply!.readUInt16BE(2) & 0xf).toBe(0);
    expect(reply!.readUInt16BE(6)).toBe(2); // CNAME + A (NA via 2001:db8::/32)
    const tail = reply!.subarray(reply!.length - 7);
    expect(Array.from(tail)).toEqual(V6_56.address); // ECS echoed with the address as sent
    expect(reply![reply!.length - 8]).toBe(32); // SCOPE = the table row's /32
  });

  it('survives 2000 random, truncated and oversized packets and still answers', async () => {
    dns = await startSeed();
    const port = endpointOf(dns, 'dns-udp').port;
    const { createSocket } = await import('node:dgram');
    const s = createSocket('udp4');
    const good = buildQuery('global.iot.example.com', 1, { ecs: V6_56 });
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    for (let i = 0; i < 2000; i++) {
      let p: Buffer;
      const kind = i % 4;
      if (kind === 0)
        p = Buffer.from(Array.from({ length: Math.floor(rnd() * 80) }, () => Math.floor(rnd() * 256)));
      else if (kind === 1) p = good.subarray(0, Math.floor(rnd() * good.length));
      else if (kind === 2) {
        p = Buffer.from(good);
        for (let k = 0; k < 3; k++) p[Math.floor(rnd() * p.length)] = Math.floor(rnd() * 256);
      } else p = Buffer.concat([good, Buffer.alloc(Math.floor(rnd() * 3000), 0xc0)]);
      s.send(p, port, '127.0.0.1');
      // Pace the sender so the kernel's receive buffer (not the server) is never the bottleneck.
      if (i % 50 === 49) {
        const sent = i + 1;
        await expect
          .poll(() => dns!.stats().queries, { timeout: 3000, interval: 5 })
          .toBeGreaterThan(sent * 0.9);
      }
    }
    s.close();
    expect(dns.stats().queries).toBeGreaterThan(1800);
    const reply = await udpAsk(port, buildQuery('us-east-1.iot.example.com', 1, { id: 77 }), 2000);
    expect(reply?.readUInt16BE(0)).toBe(77);
    expect(Array.from(reply!.subarray(-4))).toEqual([127, 53, 0, 2]);
    expect(dns.stats().malformed).toBeGreaterThan(500);
  });
});
