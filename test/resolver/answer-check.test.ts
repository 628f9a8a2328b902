import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/index.js';
import type { GeoDnsHandle } from '../../simulators/geo-dns/index.js';
import { type AnswerCheck, type ResolverHandle, start } from '../../simulators/resolver/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';
import {
  dig,
  EU,
  EU_CLIENT,
  lastAddress,
  NA_CLIENT,
  NA_EGRESS,
  record,
  startGeo,
  US,
  upstreamOf,
} from './helpers.js';

let geo: GeoDnsHandle | undefined;
let resolver: ResolverHandle | undefined;
afterEach(async () => {
  await resolver?.stop();
  await geo?.stop();
  resolver = geo = undefined;
});

/** The lab adapter's check: what the geo-dns gives the client's own address (TestDNSAnswer). */
const checkWith =
  (dns: GeoDnsHandle): AnswerCheck =>
  ({ client, name, type }) => {
    const own = dns.testDnsAnswer(name, type, client);
    return { server: dns.name, location: own.location, answers: own.answers };
  };

describe.skipIf(missing('cmd:dig'))(
  'resolver answer-check (the lab’s look at what a device was told)',
  () => {
    it('geo-dns testDnsAnswer answers a client address as dig with that /32 client subnet gets it', async () => {
      geo = await startGeo(60);
      const ep = endpointOf(geo, 'dns-udp');
      for (const [client, where, address] of [
        [EU_CLIENT, 'EU/DE', EU],
        [NA_CLIENT, 'NA/US', US],
      ] as const) {
        const own = geo.testDnsAnswer('global.iot.example.com', 'A', client);
        const wire = await dig('127.0.0.1', ep.port, ['global.iot.example.com', 'A', `+subnet=${client}/32`]);
        expect(own.location).toBe(where);
        expect(own.answers.map((a) => a.data)).toEqual(wire.answers.map((a) => a[4]));
        expect(own.answers.at(-1)?.data).toBe(address);
      }
      expect(() => geo!.testDnsAnswer('global.iot.example.com', 'BOGUS', EU_CLIENT)).toThrow(
        /unknown type BOGUS/,
      );
    });

    it('a public resolver without ECS tells a European device North America’s answer: agrees false', async () => {
      geo = await startGeo(60);
      resolver = await start({
        name: 'public',
        persona: 'public-no-ecs-na',
        egress: NA_EGRESS,
        forward: [{ zone: 'iot.example.com', upstream: [upstreamOf(geo)] }],
        check: checkWith(geo),
      });
      const checks = record(resolver, 'answer-check');
      const port = endpointOf(resolver, 'dns-udp').port;
      const eu = await dig('127.0.0.1', port, ['global.iot.example.com', 'A'], { bind: EU_CLIENT });
      expect(lastAddress(eu)).toBe(US);
      await within(
        (async () => {
          while (checks.length === 0) await new Promise((r) => setTimeout(r, 20));
        })(),
        5000,
        'the answer-check event',
      );
      expect(checks[0]).toMatchObject({
        client: EU_CLIENT,
        name: 'global.iot.example.com',
        type: 'A',
        clientLocation: 'EU/DE',
        server: 'route53',
        agrees: false,
      });
      expect(checks[0]?.resolver).toMatch(
        /public-no-ecs-na resolver public \(NA\/US, egress 127\.53\.1\.53, no ECS/,
      );
      expect(checks[0]?.answers.at(-1)?.data).toBe(US);
      expect(checks[0]?.expected.at(-1)?.data).toBe(EU);

      // A North American device behind it gets its own location's answer, from the cache: agrees.
      await dig('127.0.0.1', port, ['global.iot.example.com', 'A'], { bind: NA_CLIENT });
      await within(
        (async () => {
          while (checks.length < 2) await new Promise((r) => setTimeout(r, 20));
        })(),
        5000,
        'the second answer-check',
      );
      expect(checks[1]).toMatchObject({ client: NA_CLIENT, clientLocation: 'NA/US', agrees: true });
    });

    it('a resolver that sends ECS agrees with the device’s location; names it answers itself are not checked', async () => {
      geo = await startGeo(60);
      resolver = await start({
        name: 'isp',
        persona: 'isp-eu',
        forward: [{ zone: 'iot.example.com', upstream: [upstreamOf(geo)] }],
        hosts: { 'broker.lab.example': '127.53.0.9' },
        check: checkWith(geo),
      });
      const checks = record(resolver, 'answer-check');
      const answers = record(resolver, 'answer');
      const port = endpointOf(resolver, 'dns-udp').port;
      expect(
        lastAddress(await dig('127.0.0.1', port, ['global.iot.example.com', 'A'], { bind: EU_CLIENT })),
      ).toBe(EU);
      await dig('127.0.0.1', port, ['broker.lab.example', 'A'], { bind: EU_CLIENT });
      await within(
        (async () => {
          while (answers.length < 2) await new Promise((r) => setTimeout(r, 20));
        })(),
        5000,
        'both answers',
      );
      expect(checks.map((c) => [c.name, c.agrees])).toEqual([['global.iot.example.com', true]]);
    });
  },
);
