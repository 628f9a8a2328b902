import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/index.js';
import { type GeoDnsHandle, start } from '../../simulators/geo-dns/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';
import { buildQuery, dig, startSeed, udpAsk } from './helpers.js';

/**
 * Issue 18.6: what a real `dig` (and a resolver) finds wrong in an authoritative server: ANY, the apex
 * NS, the ECS scope over a subnet holding a more specific location, idle TCP, malformed ECS.
 */

let dns: GeoDnsHandle | undefined;
afterEach(async () => {
  await dns?.stop();
  dns = undefined;
});
const port = () => endpointOf(dns!, 'dns-udp').port;

describe.skipIf(missing('cmd:dig'))('geo-dns correctness with dig', () => {
  it('ANY returns the record sets at the name (SOA and NS at the apex), not an empty NOERROR', async () => {
    dns = await startSeed();
    const apex = await dig(port(), ['iot.example.com', 'ANY']);
    expect(apex.status).toBe('NOERROR');
    expect(apex.answers.map((a) => a[3]).sort()).toEqual(['NS', 'SOA']);
    const two = await dig(port(), ['eu-west-1.iot.example.com', 'ANY']);
    expect(two.answers.map((a) => `${a[3]} ${a[4]}`).sort()).toEqual(['A 127.53.0.3', 'AAAA 2001:db8::3']);
    // A routed record set answers as it would for its own type: this client's choice, not every record.
    const cname = await dig(port(), ['global.iot.example.com', 'ANY', '+subnet=127.53.1.0/24']);
    expect(cname.answers.map((a) => `${a[3]} ${a[4]}`)).toEqual(['CNAME us-east-1.iot.example.com.']);
    expect(cname.ecs).toBe('127.53.1.0/24/24');
    const nx = await dig(port(), ['nope.iot.example.com', 'ANY']);
    expect(nx.status).toBe('NXDOMAIN');
    expect(nx.authority[0]?.[3]).toBe('SOA');
    const ent = await dig(port(), ['sub.iot.example.com', 'ANY']);
    expect(ent.status).toBe('NOERROR');
    expect(ent.answers).toEqual([]);
  });

  it('a zone given without NS has four name servers at its apex, under its own origin, with addresses', async () => {
    dns = await start({
      zones: [
        {
          origin: 'lab.example.net',
          soa: { mname: 'ns-1.lab.example.net', rname: 'hostmaster.lab.example.net' },
          records: [{ name: 'device', type: 'A', value: '198.51.100.10' }],
        },
      ],
    });
    const ns = await dig(port(), ['lab.example.net', 'NS']);
    expect(ns.status).toBe('NOERROR');
    expect(ns.flags).toContain('aa');
    expect(ns.answers.map((a) => a[4]).sort()).toEqual([
      'ns-1.lab.example.net.',
      'ns-2.lab.example.net.',
      'ns-3.lab.example.net.',
      'ns-4.lab.example.net.',
    ]);
    expect(ns.answers[0]?.[1]).toBe('172800');
    const glue = await dig(port(), ['ns-3.lab.example.net', 'A']);
    expect(glue.answers[0]?.[4]).toBe('127.0.0.1');
    const any = await dig(port(), ['lab.example.net', 'ANY']);
    expect(any.answers.filter((a) => a[3] === 'NS')).toHaveLength(4);
  });

  it('ECS scope is never wider than a more specific location inside the client subnet', async () => {
    dns = await startSeed({
      locations: [
        { cidr: '198.51.100.0/24', continent: 'NA', country: 'US' },
        { cidr: '198.51.100.7/32', continent: 'EU', country: 'DE' },
      ],
    });
    // The /25 holds 198.51.100.7 (Europe): an answer scoped /24 would be cached for it too.
    const low = await dig(port(), ['global.iot.example.com', 'A', '+subnet=198.51.100.0/25']);
    expect(low.answers.at(-1)?.[4]).toBe('127.53.0.2');
    expect(low.ecs).toBe('198.51.100.0/25/32');
    // The other half holds no more specific row: the /24 row's scope stands.
    const high = await dig(port(), ['global.iot.example.com', 'A', '+subnet=198.51.100.128/25']);
    expect(high.ecs).toBe('198.51.100.128/25/24');
    const host = await dig(port(), ['global.iot.example.com', 'A', '+subnet=198.51.100.7/32']);
    expect(host.answers.at(-1)?.[4]).toBe('127.53.0.3');
    expect(host.ecs).toBe('198.51.100.7/32/32');
    // A location-independent answer keeps scope 0.
    const plain = await dig(port(), ['us-east-1.iot.example.com', 'A', '+subnet=198.51.100.0/25']);
    expect(plain.ecs).toBe('198.51.100.0/25/0');
  });

  it('dig +tcp +keepopen is answered on one connection', async () => {
    dns = await startSeed();
    const r = await dig(port(), [
      '+tcp',
      '+keepopen',
      'us-east-1.iot.example.com',
      'A',
      'eu-west-1.iot.example.com',
      'A',
    ]);
    expect(r.stdout.match(/status: NOERROR/g), r.stdout).toHaveLength(2);
    expect(dns.stats().tcpQueries).toBe(2);
  });
});

/** Opens a TCP connection, asks one query and resolves when the server closes the connection. */
async function tcpAskThenWaitClose(
  p: number,
  q: Buffer,
): Promise<{ answered: boolean; closed: Promise<void> }> {
  const sock = connect({ host: '127.0.0.1', port: p });
  const closed = new Promise<void>((resolve) => {
    sock.on('end', () => resolve());
    sock.on('close', () => resolve());
  });
  sock.on('error', () => {});
  const framed = Buffer.alloc(2 + q.length);
  framed.writeUInt16BE(q.length, 0);
  q.copy(framed, 2);
  const answered = new Promise<boolean>((resolve) => {
    sock.once('data', () => resolve(true));
    sock.once('close', () => resolve(false));
  });
  sock.write(framed);
  return { answered: await within(answered, 5000, 'the TCP answer'), closed };
}

describe('geo-dns over TCP (RFC 7766 §6.2.3)', () => {
  it('closes an idle connection after tcpIdleTimeout', async () => {
    dns = await startSeed({ tcpIdleTimeout: 200 });
    const r = await tcpAskThenWaitClose(port(), buildQuery('us-east-1.iot.example.com', 1));
    expect(r.answered).toBe(true);
    await within(r.closed, 5000, 'the server to close the idle connection');
  });

  it('keeps the connection while a delayed answer is still to come', async () => {
    dns = await startSeed({ tcpIdleTimeout: 100, faults: { 'us-east-1.iot.example.com': { delay: 400 } } });
    const r = await tcpAskThenWaitClose(port(), buildQuery('us-east-1.iot.example.com', 1));
    expect(r.answered).toBe(true);
    await within(r.closed, 5000, 'the close after the answer');
  });
});

/** An OPT RR (root owner unless `owner` given) holding the given options. */
function opt(options: Buffer[], owner: number[] = [0]): Buffer {
  const rdata = Buffer.concat(options);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(41, 0);
  fixed.writeUInt16BE(1232, 2);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([Buffer.from(owner), fixed, rdata]);
}

/** An ECS option (RFC 7871 §6) with the address bytes as given. */
function ecsOption(family: number, source: number, address: number[]): Buffer {
  const b = Buffer.alloc(8 + address.length);
  b.writeUInt16BE(8, 0);
  b.writeUInt16BE(4 + address.length, 2);
  b.writeUInt16BE(family, 4);
  b[6] = source;
  Buffer.from(address).copy(b, 8);
  return b;
}

function withAdditional(...records: Buffer[]): Buffer {
  const q = buildQuery('us-east-1.iot.example.com', 1, { id: 0x4242 });
  const p = Buffer.concat([q, ...records]);
  p.writeUInt16BE(records.length, 10);
  return p;
}

describe('malformed ECS gets FORMERR (RFC 7871 §6, §7.2.1; RFC 6891 §6.1.1)', () => {
  const cases: Record<string, Buffer> = {
    'address bits set past the source prefix': withAdditional(opt([ecsOption(1, 25, [198, 51, 100, 0x81])])),
    'an IPv6 /56 with bits past the prefix': withAdditional(
      opt([ecsOption(2, 52, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0x01])]),
    ),
    'two ECS options': withAdditional(
      opt([ecsOption(1, 24, [198, 51, 100]), ecsOption(1, 24, [203, 0, 113])]),
    ),
    'an OPT not owned by the root': withAdditional(opt([ecsOption(1, 24, [198, 51, 100])], [0xc0, 12])),
    'two OPT records': withAdditional(opt([ecsOption(1, 24, [198, 51, 100])]), opt([])),
  };
  for (const [what, packet] of Object.entries(cases)) {
    it(what, async () => {
      dns = await startSeed();
      const reply = await udpAsk(port(), packet, 3000);
      expect(reply, 'a reply').toBeDefined();
      expect(reply!.readUInt16BE(0)).toBe(0x4242);
      expect(reply!.readUInt16BE(2) & 0xf).toBe(1); // FORMERR
      // The server keeps serving the well-formed query right after.
      const ok = await udpAsk(port(), withAdditional(opt([ecsOption(1, 24, [198, 51, 100])])), 3000);
      expect(ok!.readUInt16BE(2) & 0xf).toBe(0);
    });
  }
});
