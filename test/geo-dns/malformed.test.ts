import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/index.js';
import type { GeoDnsHandle } from '../../simulators/geo-dns/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';
import { buildQuery, dig, startSeed } from './helpers.js';

/**
 * Queries whose records cannot be parsed get FORMERR (RFC 1035 §4.1.1: "unable to interpret the query"),
 * as BIND answers a message it fails to parse; a message shorter than the header is dropped (BIND and
 * dnsmasq cannot even tell it is a query). Checked over UDP and TCP with packets built byte by byte.
 */

const NOERROR = 0;
const FORMERR = 1;
const ID = 0x1234;
const SENTINEL_ID = 0xbeef;

let dns: GeoDnsHandle | undefined;
afterEach(async () => {
  await dns?.stop();
  dns = undefined;
});

/** A resource record: owner name bytes, TYPE, CLASS IN, TTL 60, RDATA. */
function rr(owner: number[], type: number, rdata: number[]): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(type, 0);
  fixed.writeUInt16BE(1, 2);
  fixed.writeUInt32BE(60, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([Buffer.from(owner), fixed, Buffer.from(rdata)]);
}

/**
 * A query for us-east-1.iot.example.com A (question at offset 12, 31 bytes long) with records appended
 * to one section; `records` gets the offset where the first one starts.
 */
function queryWith(counts: { an?: number; ns?: number; ar?: number }, records: (at: number) => Buffer[]) {
  const q = buildQuery('us-east-1.iot.example.com', 1, { id: ID });
  const p = Buffer.concat([q, ...records(q.length)]);
  p.writeUInt16BE(counts.an ?? 0, 6);
  p.writeUInt16BE(counts.ns ?? 0, 8);
  p.writeUInt16BE(counts.ar ?? 0, 10);
  return p;
}

const QNAME = 12; // where the question's name starts: a valid compression target
const A = 1;
const NS = 2;
const CNAME = 5;
const OPT = 41;
const TSIG = 250;

const malformed: Record<string, Buffer> = {
  'an answer owner pointing to itself': queryWith({ an: 1 }, (at) => [rr([0xc0, at], A, [1, 2, 3, 4])]),
  // record 1 (owner → question) is a CNAME whose RDATA points forward to record 2's owner, which points
  // back into that RDATA: each pointer alone is "backwards or forwards", the chain loops
  'a compression loop through two answers': queryWith({ an: 2 }, (at) => {
    const rdata1 = at + 2 + 10;
    return [rr([0xc0, QNAME], CNAME, [0xc0, rdata1 + 2]), rr([0xc0, rdata1], A, [1, 2, 3, 4])];
  }),
  'a CNAME whose RDATA points forward to itself': queryWith({ an: 1 }, (at) => [
    rr([0xc0, QNAME], CNAME, [0xc0, at + 12]),
  ]),
  'an authority NS pointing forward': queryWith({ ns: 1 }, () => [rr([0xc0, 0xff], NS, [0xc0, QNAME])]),
  'a pointer into the header': queryWith({ an: 1 }, () => [rr([0xc0, 4], A, [1, 2, 3, 4])]),
  'a pointer past the end': queryWith({ an: 1 }, () => [rr([0xff, 0xff], A, [1, 2, 3, 4])]),
  'a label with the reserved 0x40 bits': queryWith({ an: 1 }, () => [rr([0x41, 0x61, 0], A, [1, 2, 3, 4])]),
  'an answer cut inside its fixed fields': queryWith({ an: 1 }, () => [
    rr([0xc0, QNAME], A, [1, 2, 3, 4]).subarray(0, 8),
  ]),
  'an RDLENGTH past the end': queryWith({ an: 1 }, () => [
    rr([0xc0, QNAME], A, [1, 2, 3, 4]).subarray(0, 14),
  ]),
  'an A record of 5 bytes': queryWith({ an: 1 }, () => [rr([0xc0, QNAME], A, [1, 2, 3, 4, 5])]),
  'an NS whose name overruns its RDATA': queryWith({ an: 1 }, () => [rr([0xc0, QNAME], NS, [3, 0x61, 0x62])]),
  'one record fewer than ANCOUNT says': queryWith({ an: 2 }, () => [rr([0xc0, QNAME], A, [1, 2, 3, 4])]),
  'bytes after the last record': queryWith({ an: 1 }, () => [
    rr([0xc0, QNAME], A, [1, 2, 3, 4]),
    Buffer.from([0]),
  ]),
  'an OPT in the answer section (RFC 6891 §6.1.1)': queryWith({ an: 1 }, () => [rr([0], OPT, [])]),
  'an OPT not owned by the root (RFC 6891 §6.1.2)': queryWith({ ar: 1 }, () => [rr([1, 0x61, 0], OPT, [])]),
  'two OPTs (RFC 6891 §6.1.1)': queryWith({ ar: 2 }, () => [rr([0], OPT, []), rr([0], OPT, [])]),
  'a TSIG that is not the last record (RFC 8945 §5.1)': queryWith({ ar: 2 }, () => [
    rr([0], TSIG, [0]),
    rr([0], OPT, []),
  ]),
};

const wellFormed: Record<string, Buffer> = {
  'an answer owner compressed to the question': queryWith({ an: 1 }, () => [
    rr([0xc0, QNAME], A, [1, 2, 3, 4]),
  ]),
  'a CNAME whose RDATA compresses to a suffix of the question': queryWith({ an: 1 }, () => [
    rr([0xc0, QNAME], CNAME, [1, 0x78, 0xc0, QNAME + 10]),
  ]),
  'a pointer chain going back twice': queryWith({ an: 2 }, (at) => [
    rr([1, 0x62, 0xc0, QNAME], A, [1, 2, 3, 4]),
    rr([1, 0x63, 0xc0, at], A, [1, 2, 3, 4]),
  ]),
  'an OPT after another additional record': queryWith({ ar: 2 }, () => [
    rr([0xc0, QNAME], A, [1, 2, 3, 4]),
    rr([0], OPT, []),
  ]),
  'an empty RDATA (any record of the type)': queryWith({ an: 1 }, () => [rr([0xc0, QNAME], NS, [])]),
};

/** One UDP socket; `ask` sends a packet, then a sentinel query, and returns the replies before the sentinel's. */
class UdpConversation {
  private readonly socket: UdpSocket = createSocket('udp4');
  private readonly inbox: Buffer[] = [];
  private wake: (() => void) | undefined;
  constructor(private readonly port: number) {
    this.socket.on('message', (m) => {
      this.inbox.push(m);
      this.wake?.();
    });
  }
  private async next(): Promise<Buffer> {
    while (this.inbox.length === 0) await new Promise<void>((r) => (this.wake = r));
    return this.inbox.shift()!;
  }
  async ask(packet: Buffer): Promise<Buffer[]> {
    this.socket.send(packet, this.port, '127.0.0.1');
    this.socket.send(buildQuery('us-east-1.iot.example.com', 1, { id: SENTINEL_ID }), this.port, '127.0.0.1');
    const before: Buffer[] = [];
    for (;;) {
      const m = await within(this.next(), 3000, 'the reply to the sentinel query');
      if (m.length >= 12 && m.readUInt16BE(0) === SENTINEL_ID && m.readUInt16BE(4) === 1 && isSentinel(m)) {
        return before;
      }
      before.push(m);
    }
  }
  close(): void {
    this.socket.close();
  }
}

/** One TCP connection (RFC 1035 §4.2.2 framing), asked the same way. */
class TcpConversation {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private constructor(private readonly socket: Socket) {
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
  }
  static async open(port: number): Promise<TcpConversation> {
    const s = connect(port, '127.0.0.1');
    await within(
      new Promise((resolve, reject) => s.once('connect', resolve).once('error', reject)),
      3000,
      'TCP',
    );
    return new TcpConversation(s);
  }
  private async next(): Promise<Buffer> {
    while (this.buf.length < 2 || this.buf.length < 2 + this.buf.readUInt16BE(0)) {
      if (this.socket.destroyed) throw new Error('the server closed the TCP connection');
      await new Promise<void>((r) => (this.wake = r));
    }
    const len = this.buf.readUInt16BE(0);
    const m = this.buf.subarray(2, 2 + len);
    this.buf = this.buf.subarray(2 + len);
    return m;
  }
  async ask(packet: Buffer): Promise<Buffer[]> {
    const frame = (m: Buffer) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m]);
    this.socket.write(
      Buffer.concat([frame(packet), frame(buildQuery('us-east-1.iot.example.com', 1, { id: SENTINEL_ID }))]),
    );
    const before: Buffer[] = [];
    for (;;) {
      const m = await within(this.next(), 3000, 'the reply to the sentinel query over TCP');
      if (m.readUInt16BE(0) === SENTINEL_ID && isSentinel(m)) return before;
      before.push(m);
    }
  }
  close(): void {
    this.socket.destroy();
  }
}

/** The sentinel's answer: NOERROR with 127.53.0.2 last. */
function isSentinel(m: Buffer): boolean {
  return (m.readUInt16BE(2) & 0xf) === NOERROR && m.subarray(-4).equals(Buffer.from([127, 53, 0, 2]));
}

const rcodeOf = (m: Buffer) => m.readUInt16BE(2) & 0xf;

describe('geo-dns: queries with records it cannot parse', () => {
  it.each(Object.keys(malformed))('FORMERR over UDP and TCP for %s', async (what) => {
    dns = await startSeed();
    const udp = new UdpConversation(endpointOf(dns, 'dns-udp').port);
    const tcp = await TcpConversation.open(endpointOf(dns, 'dns-tcp').port);
    try {
      for (const replies of [await udp.ask(malformed[what]!), await tcp.ask(malformed[what]!)]) {
        expect(replies).toHaveLength(1);
        expect(replies[0]!.readUInt16BE(0)).toBe(ID);
        expect(rcodeOf(replies[0]!)).toBe(FORMERR);
        expect(replies[0]!.readUInt16BE(6)).toBe(0); // no answers
      }
      expect(dns.stats().malformed).toBe(2);
    } finally {
      udp.close();
      tcp.close();
    }
  });

  it.each(Object.keys(wellFormed))('answers a query with %s', async (what) => {
    dns = await startSeed();
    const udp = new UdpConversation(endpointOf(dns, 'dns-udp').port);
    try {
      const replies = await udp.ask(wellFormed[what]!);
      expect(replies).toHaveLength(1);
      expect(rcodeOf(replies[0]!)).toBe(NOERROR);
      expect(replies[0]!.readUInt16BE(6)).toBe(1);
      expect(replies[0]!.includes(Buffer.from([0, 4, 127, 53, 0, 2]))).toBe(true); // RDLENGTH 4, the A
    } finally {
      udp.close();
    }
  });
});

describe('geo-dns: malformed variants of an EDNS query with ECS', () => {
  const good = buildQuery('global.iot.example.com', 1, {
    id: ID,
    ecs: { family: 1, source: 24, address: [127, 53, 1] },
  });

  it('every truncation: dropped below the 12-byte header, FORMERR from there, over UDP and TCP', async () => {
    dns = await startSeed();
    const udp = new UdpConversation(endpointOf(dns, 'dns-udp').port);
    const tcp = await TcpConversation.open(endpointOf(dns, 'dns-tcp').port);
    try {
      for (let n = 0; n < good.length; n++) {
        for (const conv of [udp, tcp]) {
          const replies = await conv.ask(good.subarray(0, n));
          if (n < 12) {
            expect(replies, `${n} bytes`).toHaveLength(0);
            continue;
          }
          expect(replies, `${n} bytes`).toHaveLength(1);
          expect(replies[0]!.readUInt16BE(0)).toBe(ID);
          expect(rcodeOf(replies[0]!), `${n} bytes`).toBe(FORMERR);
        }
      }
      // the whole query still gets its answer (NA via the ECS subnet: the us-east-1 CNAME)
      const [whole] = await udp.ask(good);
      expect(rcodeOf(whole!)).toBe(NOERROR);
      expect(whole!.readUInt16BE(6)).toBe(2);
    } finally {
      udp.close();
      tcp.close();
    }
  });

  it('every byte set to 0x00, 0xc0 or 0xff: one reply with the same ID, or none, and the server goes on', async () => {
    dns = await startSeed();
    const udp = new UdpConversation(endpointOf(dns, 'dns-udp').port);
    const tcp = await TcpConversation.open(endpointOf(dns, 'dns-tcp').port);
    const rcodes = new Set<number>();
    let variants = 0;
    try {
      for (let at = 0; at < good.length; at++) {
        for (const value of [0x00, 0xc0, 0xff]) {
          const p = Buffer.from(good);
          p[at] = value;
          variants++;
          for (const conv of [udp, tcp]) {
            const replies = await conv.ask(p);
            expect(replies.length, `byte ${at} = ${value}`).toBeLessThanOrEqual(1);
            if (replies[0]) {
              expect(replies[0].readUInt16BE(0)).toBe(p.readUInt16BE(0));
              expect(replies[0].readUInt16BE(2) & 0x8000).toBe(0x8000); // QR: a response
              rcodes.add(rcodeOf(replies[0]));
            }
          }
        }
      }
    } finally {
      udp.close();
      tcp.close();
    }
    expect(variants).toBeGreaterThan(150);
    // FORMERR for what it cannot parse, NOTIMP for other opcodes, REFUSED for other classes, and
    // answers (NOERROR, NXDOMAIN) where the change still makes a valid query
    expect([...rcodes].every((r) => [0, 1, 3, 4, 5].includes(r))).toBe(true);
    expect(rcodes.has(FORMERR)).toBe(true);
  });

  it.skipIf(missing('cmd:dig'))('dig still gets answers after the malformed ones', async () => {
    dns = await startSeed();
    const udp = new UdpConversation(endpointOf(dns, 'dns-udp').port);
    try {
      for (const p of Object.values(malformed)) await udp.ask(p);
    } finally {
      udp.close();
    }
    const port = endpointOf(dns, 'dns-udp').port;
    const plain = await dig(port, ['us-east-1.iot.example.com', 'A', '+noedns']);
    expect(plain.status).toBe('NOERROR');
    expect(plain.answers.map((a) => a[4])).toEqual(['127.53.0.2']);
    const tcp = await dig(port, ['global.iot.example.com', 'A', '+tcp', '+subnet=127.53.1.0/24']);
    expect(tcp.status).toBe('NOERROR');
    expect(tcp.ecs).toBe('127.53.1.0/24/24');
  });
});
