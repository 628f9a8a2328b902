import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf, isFieldlabError } from '../../simulators/common/index.js';
import type { GeoDnsHandle } from '../../simulators/geo-dns/index.js';
import { type ResolverHandle, type ResolverOptions, start } from '../../simulators/resolver/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';
import {
  dig,
  EU,
  EU_CLIENT,
  lastAddress,
  NA_CLIENT,
  NA_CLIENT_2,
  NA_EGRESS,
  record,
  startGeo,
  US,
  upstreamOf,
} from './helpers.js';

let geo: GeoDnsHandle | undefined;
let resolver: ResolverHandle | undefined;
let dropper: Socket | undefined;
afterEach(async () => {
  await resolver?.stop();
  await geo?.stop();
  dropper?.close();
  resolver = geo = dropper = undefined;
});

async function startResolver(extra: Partial<ResolverOptions>): Promise<ResolverHandle> {
  resolver = await start({
    name: 'resolver',
    forward: geo ? [{ zone: 'iot.example.com', upstream: [upstreamOf(geo)] }] : [],
    ...extra,
  });
  return resolver;
}
const port = (): number => endpointOf(resolver!, 'dns-udp').port;

/** Asks until `done` accepts the answer (every try bounded, the whole wait bounded). */
async function digUntil(
  args: string[],
  done: (r: Awaited<ReturnType<typeof dig>>) => boolean,
  what: string,
  ms = 15_000,
): Promise<Awaited<ReturnType<typeof dig>>> {
  return within(
    (async () => {
      for (;;) {
        const r = await dig('127.0.0.1', port(), args);
        if (done(r)) return r;
        await new Promise((res) => setTimeout(res, 200));
      }
    })(),
    ms,
    what,
  );
}

describe('resolver options', () => {
  it('names the bad field', async () => {
    const bad = [
      { forward: [{ zone: 'iot.example.com', upstream: ['127.0.0.1'] }] },
      { persona: 'isp-mars' },
      { ecs: { ipv4: 40 } },
      { hosts: { 'broker.lab': 'not-an-ip' } },
    ];
    for (const options of bad) {
      const err = await start(options as ResolverOptions).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isFieldlabError(err) && err.code).toBe('E_BAD_OPTION');
      expect(String(err)).toMatch(/options\.(forward|persona|ecs|hosts)/);
    }
  });

  it('describes its persona for reports', async () => {
    const r = await startResolver({ persona: 'public-no-ecs-na', egress: NA_EGRESS });
    expect(r.description).toContain('public-no-ecs-na');
    expect(r.description).toContain('NA/US');
    expect(r.description).toContain(`egress ${NA_EGRESS}`);
    expect(r.description).toContain('no ECS');
  });
});

describe.skipIf(missing('cmd:dig'))('resolver with dig', () => {
  it('forwards over UDP and TCP, answers RA=1 without AA, and caches', async () => {
    geo = await startGeo(60);
    const r = await startResolver({ ecs: true });
    const answers = record(r, 'answer');
    const first = await dig('127.0.0.1', port(), ['us-east-1.iot.example.com', 'A'], { bind: NA_CLIENT });
    expect(first.status).toBe('NOERROR');
    expect(first.flags).toEqual(expect.arrayContaining(['qr', 'rd', 'ra']));
    expect(first.flags).not.toContain('aa');
    expect(first.answers[0]?.slice(3)).toEqual(['A', US]);
    const tcp = await dig('127.0.0.1', port(), ['us-east-1.iot.example.com', 'A', '+tcp'], {
      bind: NA_CLIENT,
    });
    expect(lastAddress(tcp)).toBe(US);
    expect(Number(tcp.answers[0]?.[1])).toBeLessThanOrEqual(60);
    expect(answers.map((a) => a.source)).toEqual(['upstream', 'cache']);
    expect(r.stats()).toMatchObject({ upstreamQueries: 1, cacheHits: 1, byTransport: { udp: 1, tcp: 1 } });
    expect(geo.stats().queries).toBe(1);
  });

  it('caches NXDOMAIN for the SOA negative TTL (RFC 2308) and relays TXT records unchanged', async () => {
    geo = await startGeo(60);
    const r = await startResolver({});
    const answers = record(r, 'answer');
    const nx = await dig('127.0.0.1', port(), ['nope.iot.example.com', 'A']);
    expect(nx.status).toBe('NXDOMAIN');
    expect(nx.stdout).toMatch(
      /AUTHORITY SECTION:\niot\.example\.com\.\s+30\s+IN\s+SOA\s+ns1\.iot\.example\.com\./,
    );
    expect((await dig('127.0.0.1', port(), ['nope.iot.example.com', 'A'])).status).toBe('NXDOMAIN');
    const txt = await dig('127.0.0.1', port(), ['info.iot.example.com', 'TXT']);
    expect(txt.stdout).toContain('"fieldlab geo dns"');
    expect(answers.map((a) => [a.rcode, a.source])).toEqual([
      ['NXDOMAIN', 'upstream'],
      ['NXDOMAIN', 'cache'],
      ['NOERROR', 'upstream'],
    ]);
  });

  it('answers lab host names itself, refuses names outside its zones and non-recursive queries', async () => {
    geo = await startGeo(60);
    await startResolver({ hosts: { 'broker.lab': '127.60.0.7' } });
    const host = await dig('127.0.0.1', port(), ['broker.lab', 'A']);
    expect(host.answers[0]?.slice(3)).toEqual(['A', '127.60.0.7']);
    const nodata = await dig('127.0.0.1', port(), ['broker.lab', 'AAAA']);
    expect(nodata.status).toBe('NOERROR');
    expect(nodata.answers).toEqual([]);
    expect((await dig('127.0.0.1', port(), ['example.org', 'A'])).status).toBe('REFUSED');
    expect((await dig('127.0.0.1', port(), ['us-east-1.iot.example.com', 'A', '+norecurse'])).status).toBe(
      'REFUSED',
    );
    expect(geo.stats().queries).toBe(0);
  });

  it('serves a cached answer until its TTL runs out, then asks again', async () => {
    geo = await startGeo(2);
    const r = await startResolver({});
    const answers = record(r, 'answer');
    const first = await dig('127.0.0.1', port(), ['us-east-1.iot.example.com', 'A']);
    expect(lastAddress(first)).toBe(US);
    // The record changes at the authority; the resolver keeps the cached one while it is fresh.
    await geo.setRecords([
      { zone: 'iot.example.com', name: 'us-east-1', type: 'A', value: '127.53.0.9', ttl: 2 },
    ]);
    const next = await digUntil(
      ['us-east-1.iot.example.com', 'A'],
      (x) => lastAddress(x) === '127.53.0.9',
      'the new record after the TTL',
    );
    expect(next.status).toBe('NOERROR');
    const cached = answers.filter((a) => a.source === 'cache');
    for (const a of cached) {
      expect(a.answers[0]?.data).toBe(US);
      expect(a.answers[0]?.ttl).toBeLessThanOrEqual(2);
    }
    expect(answers.at(-1)?.source).toBe('upstream');
    expect(r.stats().upstreamQueries).toBe(2);
  });

  it('caches by ECS scope: clients in two /24s get their own region, the cache does not mix them', async () => {
    geo = await startGeo(60);
    const r = await startResolver({ persona: 'isp-na' });
    const upstream = record(r, 'upstream-query');
    const na = await dig('127.0.0.1', port(), ['global.iot.example.com', 'A'], { bind: NA_CLIENT });
    const eu = await dig('127.0.0.1', port(), ['global.iot.example.com', 'A'], { bind: EU_CLIENT });
    const na2 = await dig('127.0.0.1', port(), ['global.iot.example.com', 'A'], { bind: NA_CLIENT_2 });
    expect(lastAddress(na)).toBe(US);
    expect(lastAddress(eu)).toBe(EU);
    expect(lastAddress(na2)).toBe(US);
    // RFC 7871 §11.1 defaults: the client's address truncated to /24.
    expect(upstream.map((u) => u.ecs)).toEqual(['127.53.1.0/24', '127.53.2.0/24']);
    expect(r.stats().cacheHits).toBe(1);
  });

  it('without ECS every client gets the answer for the resolver’s own location', async () => {
    geo = await startGeo(60);
    const r = await startResolver({ persona: 'public-no-ecs-na', egress: NA_EGRESS });
    const seen: Array<{ client: string; ecs?: string }> = [];
    geo.events.onEvent('query', (q) => seen.push(q));
    const eu = await dig('127.0.0.1', port(), ['global.iot.example.com', 'A'], { bind: EU_CLIENT });
    const na = await dig('127.0.0.1', port(), ['global.iot.example.com', 'A'], { bind: NA_CLIENT });
    expect(lastAddress(eu)).toBe(US); // a device in Europe lands in us-east-1
    expect(lastAddress(na)).toBe(US);
    expect(seen.map((q) => [q.client.split(':')[0], q.ecs])).toEqual([[NA_EGRESS, undefined]]);
    expect(r.stats().cacheHits).toBe(1);
  });

  it('leaves from the first address of its location CIDR: an office in Europe sends a US device to Europe', async () => {
    geo = await startGeo(60);
    const r = await startResolver({
      persona: 'office-eu',
      location: { continent: 'EU', country: 'DE', cidr: '127.53.2.0/24' },
    });
    const upstream = record(r, 'upstream-query');
    const na = await dig('127.0.0.1', port(), ['global.iot.example.com', 'A'], { bind: NA_CLIENT });
    expect(lastAddress(na)).toBe(EU);
    expect(upstream.map((u) => [u.egress, u.ecs])).toEqual([['127.53.2.1', undefined]]);
    expect(r.description).toContain('EU/DE/127.53.2.0/24');
    const err = await start({ location: { continent: 'EU', cidr: '127.53.2.0/24' }, egress: NA_EGRESS }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isFieldlabError(err) && err.code).toBe('E_BAD_OPTION');
    expect(String(err)).toContain('outside options.location.cidr');
  });

  it('sends a configured IPv6 /56 subnet and reads the scope of the answer (dns2 would lose that OPT)', async () => {
    geo = await startGeo(60, {
      locations: [{ cidr: '2001:db8::/32', continent: 'NA', country: 'US' }],
    });
    const r = await startResolver({ persona: 'isp-eu', ecs: { subnet: '2001:db8:0:1100::/56' } });
    const sent = record(r, 'upstream-query');
    const got = record(r, 'upstream-answer');
    const eu = await dig('127.0.0.1', port(), ['global.iot.example.com', 'A'], { bind: EU_CLIENT });
    expect(lastAddress(eu)).toBe(US); // the subnet, not the client's address, decides
    expect(sent.map((u) => u.ecs)).toEqual(['2001:db8:0:1100::/56']);
    expect(got.map((a) => a.scope)).toEqual([32]);
    const again = await dig('127.0.0.1', port(), ['global.iot.example.com', 'A'], { bind: NA_CLIENT });
    expect(lastAddress(again)).toBe(US);
    expect(r.stats()).toMatchObject({ upstreamQueries: 1, cacheHits: 1 });
  });

  it('answers SERVFAIL when the upstream never answers, after its retries', async () => {
    dropper = createSocket('udp4');
    const drop = dropper;
    drop.on('message', () => {}); // reads and drops
    await new Promise<void>((res) => drop.bind(0, '127.0.0.1', res));
    const r = await startResolver({
      forward: [{ zone: 'iot.example.com', upstream: [`127.0.0.1:${drop.address().port}`] }],
      timeout: 200,
      retries: 1,
    });
    const timeouts = record(r, 'upstream-timeout');
    const res = await dig('127.0.0.1', port(), ['global.iot.example.com', 'A']);
    expect(res.status).toBe('SERVFAIL');
    expect(res.flags).toContain('ra');
    expect(timeouts.map((t) => t.attempt)).toEqual([1, 2]);
    expect(r.stats().byRcode).toEqual({ SERVFAIL: 1 });
  });

  it('serves the expired answer (RFC 8767) once the upstream has gone away, SERVFAIL without serveStale', async () => {
    geo = await startGeo(1);
    const forward = [{ zone: 'iot.example.com', upstream: [upstreamOf(geo)] }];
    const r = await startResolver({ forward, serveStale: true, timeout: 200, retries: 0 });
    const plain = await start({ name: 'no-stale', forward, serveStale: false, timeout: 200, retries: 0 });
    try {
      const plainPort = endpointOf(plain, 'dns-udp').port;
      expect(lastAddress(await dig('127.0.0.1', port(), ['us-east-1.iot.example.com', 'A']))).toBe(US);
      expect(lastAddress(await dig('127.0.0.1', plainPort, ['us-east-1.iot.example.com', 'A']))).toBe(US);
      await geo.stop();
      geo = undefined;
      const stale = await digUntil(
        ['us-east-1.iot.example.com', 'A'],
        (x) => x.answers[0]?.[1] === '30',
        'a stale answer',
      );
      expect(stale.status).toBe('NOERROR');
      expect(lastAddress(stale)).toBe(US);
      expect(r.stats().staleServed).toBeGreaterThanOrEqual(1);
      const failed = await within(
        (async () => {
          for (;;) {
            const x = await dig('127.0.0.1', plainPort, ['us-east-1.iot.example.com', 'A']);
            if (x.status !== 'NOERROR') return x;
            await new Promise((res) => setTimeout(res, 200));
          }
        })(),
        15_000,
        'SERVFAIL from the resolver without serve-stale',
      );
      expect(failed.status).toBe('SERVFAIL');
    } finally {
      await plain.stop();
    }
  });

  it('answers FORMERR to a malformed query and keeps serving', async () => {
    geo = await startGeo(60);
    await startResolver({});
    const sock = createSocket('udp4');
    const reply = await within(
      new Promise<Buffer>((res) => {
        sock.on('message', (m) => res(m));
        // A header claiming one question, and a question that runs past the end.
        sock.send(
          Buffer.from([0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, 0x61]),
          port(),
          '127.0.0.1',
        );
      }),
      5000,
      'a FORMERR',
    ).finally(() => sock.close());
    expect(reply.readUInt16BE(0)).toBe(0xabcd);
    expect(reply.readUInt16BE(2) & 0x800f).toBe(0x8001);
    expect(lastAddress(await dig('127.0.0.1', port(), ['us-east-1.iot.example.com', 'A']))).toBe(US);
  });
});
