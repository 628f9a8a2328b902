import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/index.js';
import {
  type ClientLocation,
  type GeoDnsHandle,
  type GeoLocationInput,
  start,
  ZoneStore,
  zoneSchema,
} from '../../simulators/geo-dns/index.js';
import { buildQuery, dig, udpAsk } from './helpers.js';

const SOA = { mname: 'ns1.p.example', rname: 'hostmaster.p.example', minimum: 60 };

function loc(continent?: string, country?: string, subdivision?: string): ClientLocation {
  return {
    ...(continent ? { continent: continent as ClientLocation['continent'] & string } : {}),
    ...(country ? { country } : {}),
    ...(subdivision ? { subdivision } : {}),
    key: `${continent}/${country}/${subdivision}`,
  } as ClientLocation;
}

/** A store with one geolocation record set at www.p.example: one record per location given. */
function geoStore(locations: GeoLocationInput[]): ZoneStore {
  const s = new ZoneStore();
  s.addZone(
    zoneSchema.parse({
      origin: 'p.example',
      soa: SOA,
      records: locations.map((l, i) => ({
        name: 'www',
        type: 'A',
        routing: 'geolocation',
        location: l,
        value: `127.60.0.${i + 1}`,
        id: typeof l === 'string' ? l : JSON.stringify(l),
      })),
    }),
  );
  return s;
}

const ctx = (l: ClientLocation) => ({ location: l, healthy: () => true, random: Math.random });

describe('geolocation matching (Route 53: subdivision > country > continent > Default)', () => {
  const all: GeoLocationInput[] = ['US-WA', 'US', 'NA', '*', 'DE', 'EU'];
  const cases: Array<{ records: GeoLocationInput[]; client: ClientLocation; want: string | null }> = [
    { records: all, client: loc('NA', 'US', 'WA'), want: 'US-WA' },
    { records: all, client: loc('NA', 'US', 'CA'), want: 'US' },
    { records: all, client: loc('NA', 'CA'), want: 'NA' },
    { records: all, client: loc('EU', 'DE'), want: 'DE' },
    { records: all, client: loc('EU', 'FR'), want: 'EU' },
    { records: all, client: loc('AS', 'JP'), want: '*' },
    { records: all, client: loc(), want: '*' },
    { records: ['NA', '*'], client: loc('NA', 'US', 'WA'), want: 'NA' },
    { records: ['US', 'NA'], client: loc('NA', 'US', 'WA'), want: 'US' },
    { records: ['US-WA', '*'], client: loc('NA', 'US', 'OR'), want: '*' },
    { records: ['NA', 'EU'], client: loc('AS', 'JP'), want: null },
    { records: ['NA', 'EU'], client: loc(), want: null },
    { records: [{ country: 'NA' }, '*'], client: loc('AF', 'NA'), want: '{"country":"NA"}' },
    { records: [{ country: 'NA' }, '*'], client: loc('NA', 'US'), want: '*' },
  ];
  it.each(cases)('$records for $client.key → $want', ({ records, client, want }) => {
    const r = geoStore(records).resolve('www.p.example', 1, ctx(client));
    expect(r.rcode).toBe('NOERROR');
    if (want === null) {
      expect(r.answers).toEqual([]);
      expect(r.authority[0]?.type).toBe('SOA');
      expect(r.reason).toMatch(/no geolocation match .* and no Default record/);
    } else {
      const i = records.findIndex((x) => (typeof x === 'string' ? x : JSON.stringify(x)) === want);
      expect(r.answers.map((a) => a.data)).toEqual([`127.60.0.${i + 1}`]);
      expect(r.locationDependent).toBe(true);
    }
  });
});

describe('latency, weighted and failover routing', () => {
  let dns: GeoDnsHandle | undefined;
  let tcp: Server | undefined;
  afterEach(async () => {
    await dns?.stop();
    dns = undefined;
    await new Promise<void>((r) => (tcp?.listening ? tcp.close(() => r()) : r()));
    tcp = undefined;
  });

  it('latency: the region with the lowest latency for the client location answers', async () => {
    dns = await start({
      zones: [
        {
          origin: 'p.example',
          soa: SOA,
          records: [
            {
              name: 'api',
              type: 'A',
              routing: 'latency',
              region: 'us-east-1',
              value: '127.60.1.1',
              id: 'use1',
            },
            {
              name: 'api',
              type: 'A',
              routing: 'latency',
              region: 'eu-west-1',
              value: '127.60.1.2',
              id: 'euw1',
            },
            { name: 'api', type: 'A', routing: 'latency', region: 'ap-northeast-1', value: '127.60.1.3' },
          ],
        },
      ],
      locations: [
        { cidr: '127.53.1.0/24', continent: 'NA', country: 'US' },
        { cidr: '127.53.2.0/24', continent: 'EU', country: 'DE' },
        { cidr: '127.53.3.0/24', continent: 'AS', country: 'JP' },
      ],
      latency: [
        { location: 'NA', regions: { 'us-east-1': 20, 'eu-west-1': 90, 'ap-northeast-1': 150 } },
        { location: 'EU', regions: { 'us-east-1': 90, 'eu-west-1': 15, 'ap-northeast-1': 230 } },
        { location: 'JP', regions: { 'us-east-1': 160, 'eu-west-1': 230, 'ap-northeast-1': 8 } },
      ],
    });
    const port = endpointOf(dns, 'dns-udp').port;
    const a = async (subnet: string) =>
      (await dig(port, ['api.p.example', `+subnet=${subnet}`])).answers[0]?.[4];
    expect(await a('127.53.1.0/24')).toBe('127.60.1.1');
    expect(await a('127.53.2.0/24')).toBe('127.60.1.2');
    expect(await a('127.53.3.0/24')).toBe('127.60.1.3');
    dns.setHealth('euw1', false);
    expect(await a('127.53.2.0/24')).toBe('127.60.1.1');
  });

  it('weighted: seeded, distribution follows weights, weight 0 excluded', async () => {
    const opts = {
      seed: 42,
      zones: [
        {
          origin: 'p.example',
          soa: SOA,
          records: [
            { name: 'w', type: 'A' as const, routing: 'weighted' as const, weight: 3, value: '127.60.2.1' },
            { name: 'w', type: 'A' as const, routing: 'weighted' as const, weight: 1, value: '127.60.2.2' },
            { name: 'w', type: 'A' as const, routing: 'weighted' as const, weight: 0, value: '127.60.2.3' },
          ],
        },
      ],
    };
    const sample = async (): Promise<string[]> => {
      const h = await start(opts);
      const port = endpointOf(h, 'dns-udp').port;
      const out: string[] = [];
      for (let i = 0; i < 200; i++) {
        const reply = await udpAsk(port, buildQuery('w.p.example', 1, { id: i }));
        expect(reply).toBeDefined();
        out.push(Array.from(reply!.subarray(reply!.length - 4)).join('.'));
      }
      await h.stop();
      return out;
    };
    const first = await sample();
    const second = await sample();
    expect(second).toEqual(first); // same seed → same sequence
    const n = (ip: string) => first.filter((x) => x === ip).length;
    expect(n('127.60.2.3')).toBe(0);
    expect(n('127.60.2.1')).toBeGreaterThan(120); // expected 150 of 200
    expect(n('127.60.2.1')).toBeLessThan(180);
    expect(n('127.60.2.2')).toBeGreaterThan(20);
  });

  it('failover: PRIMARY while its TCP health check connects, SECONDARY when the port closes', async () => {
    tcp = createServer((s) => s.destroy());
    await new Promise<void>((r) => tcp!.listen(0, '127.0.0.1', () => r()));
    const hcPort = (tcp.address() as { port: number }).port;
    dns = await start({
      zones: [
        {
          origin: 'p.example',
          soa: SOA,
          records: [
            {
              name: 'f',
              type: 'A',
              routing: 'failover',
              failover: 'PRIMARY',
              id: 'primary',
              value: '127.60.3.1',
              healthCheck: { port: hcPort, interval: 100, timeout: 200 },
            },
            {
              name: 'f',
              type: 'A',
              routing: 'failover',
              failover: 'SECONDARY',
              id: 'secondary',
              value: '127.60.3.2',
            },
          ],
        },
      ],
    });
    const port = endpointOf(dns, 'dns-udp').port;
    const a = async () => (await dig(port, ['f.p.example'])).answers[0]?.[4];
    expect(await a()).toBe('127.60.3.1');
    const unhealthy = new Promise<unknown>((r) => dns!.events.onceEvent('health', r));
    await new Promise<void>((r) => tcp!.close(() => r()));
    await expect(unhealthy).resolves.toMatchObject({ id: 'primary', healthy: false });
    expect(await a()).toBe('127.60.3.2');
    dns.setHealth('primary', true);
    expect(await a()).toBe('127.60.3.1');
    dns.setHealth('primary', undefined);
    expect(await a()).toBe('127.60.3.2');
  });
});
