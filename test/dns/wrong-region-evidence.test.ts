import { describe, expect, it } from 'vitest';
import { explain } from '../../harness/probe/evidence.js';
import type { LabEvent } from '../../simulators/common/events.js';

/**
 * dns.wrong-region is the lab's verdict, from two things it saw: a resolver's answer that the client's own
 * location does not get (answer-check), then a region whose endpoint that answer named serving the device
 * (domain-connection by SNI). The client's own words never decide it; its success does not hide it.
 */
const at = (n: number, source: string, type: string, data: object): LabEvent => ({
  time: 1_000 + n,
  source,
  type,
  data,
});
const cname = (target: string) => [
  { name: 'global.iot.example.com', type: 'CNAME', ttl: 60, data: `${target}.` },
  { name: `${target}`, type: 'A', ttl: 60, data: '127.20.0.1' },
];
const check = (n: number, got: string, own: string) =>
  at(n, 'public-na', 'answer-check', {
    client: '127.0.0.1',
    name: 'global.iot.example.com',
    type: 'A',
    resolver: 'public-no-ecs-na resolver public-na (NA/US, egress 127.20.0.5, no ECS)',
    answers: cname(got),
    server: 'dns',
    clientLocation: 'EU/DE',
    expected: cname(own),
    agrees: got === own,
  });
const reached = (n: number, region: string) =>
  at(n, region, 'domain-connection', {
    clientId: 'claim-1',
    servername: 'global.iot.example.com',
    domainName: 'global.iot.example.com',
    region,
    endpoint: `${region}.iot.example.com`,
  });

describe('dns.wrong-region evidence', () => {
  it('turns a client success into dns.wrong-region, naming the resolver, its location and the answer', () => {
    const { verdict, explanation } = explain({ ok: true }, [
      check(1, 'us-east-1.iot.example.com', 'eu-west-1.iot.example.com'),
      reached(2, 'us-east-1'),
    ]);
    expect(verdict).toMatchObject({ ok: false, class: 'dns.wrong-region' });
    expect(explanation[0]).toMatch(
      /public-no-ecs-na resolver public-na \(NA\/US.*no ECS\) answered global\.iot\.example\.com A with CNAME us-east-1\.iot\.example\.com.*own location \(EU\/DE\) gets CNAME eu-west-1\.iot\.example\.com.*connected to us-east-1/,
    );
  });

  it('leaves a success alone when the answer agreed with the location', () => {
    const r = explain({ ok: true }, [
      check(1, 'eu-west-1.iot.example.com', 'eu-west-1.iot.example.com'),
      reached(2, 'eu-west-1'),
    ]);
    expect(r).toEqual({ verdict: { ok: true }, explanation: [] });
  });

  it('needs the device to have reached the region the wrong answer named', () => {
    // A disagreeing answer alone (the device never connected with it) is no wrong region.
    expect(
      explain({ ok: true }, [check(1, 'us-east-1.iot.example.com', 'eu-west-1.iot.example.com')]).verdict,
    ).toEqual({
      ok: true,
    });
  });

  it('judges a connection by the last answer checked before it (a later stale answer does not count)', () => {
    const r = explain({ ok: true }, [
      check(1, 'eu-west-1.iot.example.com', 'eu-west-1.iot.example.com'),
      reached(2, 'eu-west-1'),
      // after a failover the cached answer disagrees, but no device connected with it
      check(3, 'eu-west-1.iot.example.com', 'us-east-1.iot.example.com'),
    ]);
    expect(r.verdict).toEqual({ ok: true });
  });

  it('adds the finding to a failure the client reported', () => {
    const r = explain({ ok: false, class: 'client.error', detail: 'exit code 1' }, [
      check(1, 'us-east-1.iot.example.com', 'eu-west-1.iot.example.com'),
      reached(2, 'us-east-1'),
    ]);
    expect(r.verdict).toMatchObject({ ok: false, class: 'dns.wrong-region' });
  });
});
