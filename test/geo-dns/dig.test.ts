import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/index.js';
import type { GeoDnsHandle } from '../../simulators/geo-dns/index.js';
import { missing } from '../helpers/capability.js';
import { dig, startSeed } from './helpers.js';

describe.skipIf(missing('cmd:dig'))('geo-dns with dig', () => {
  let dns: GeoDnsHandle | undefined;
  afterEach(async () => {
    await dns?.stop();
    dns = undefined;
  });
  const port = () => endpointOf(dns!, 'dns-udp').port;

  it('serves UDP and TCP on the same port', async () => {
    dns = await startSeed();
    expect(endpointOf(dns, 'dns-tcp').port).toBe(port());
    expect(dns.endpoints.map((e) => e.protocol)).toEqual(['dns', 'dns']);
    const udp = await dig(port(), ['us-east-1.iot.example.com', 'A']);
    expect(udp.status).toBe('NOERROR');
    expect(udp.flags).toContain('aa');
    expect(udp.answers).toEqual([['us-east-1.iot.example.com.', '60', 'IN', 'A', '127.53.0.2']]);
    const tcp = await dig(port(), ['us-east-1.iot.example.com', 'A', '+tcp']);
    expect(tcp.answers[0]?.[4]).toBe('127.53.0.2');
    expect(dns.stats().tcpQueries).toBe(1);
  });

  it('answers the seed name by ECS location: NA → us-east-1, else eu-west-1, with scope', async () => {
    dns = await startSeed();
    const na = await dig(port(), ['global.iot.example.com', 'A', '+subnet=127.53.1.0/24']);
    expect(na.answers.map((a) => a[4])).toEqual(['us-east-1.iot.example.com.', '127.53.0.2']);
    expect(na.answers[0]?.[3]).toBe('CNAME');
    // RFC 7871 §7.2.1: the reply echoes the option with a SCOPE prefix-length (table row /24).
    expect(na.ecs).toBe('127.53.1.0/24/24');
    const eu = await dig(port(), ['global.iot.example.com', 'A', '+subnet=127.53.2.0/24']);
    expect(eu.answers.map((a) => a[4])).toEqual(['eu-west-1.iot.example.com.', '127.53.0.3']);
    // No ECS: the source address (127.0.0.1) is not in the table → Default.
    const src = await dig(port(), ['global.iot.example.com', 'A']);
    expect(src.answers.at(-1)?.[4]).toBe('127.53.0.3');
  });

  it('parses an IPv6 /56 client subnet (odd byte count dns2 drops)', async () => {
    dns = await startSeed();
    const r = await dig(port(), ['global.iot.example.com', 'A', '+subnet=2001:db8::/56']);
    expect(r.status).toBe('NOERROR');
    expect(r.answers.at(-1)?.[4]).toBe('127.53.0.2');
    expect(r.ecs).toBe('2001:db8::/56/32');
  });

  it('NXDOMAIN and NODATA carry the SOA in AUTHORITY with the negative TTL', async () => {
    dns = await startSeed();
    const nx = await dig(port(), ['nope.iot.example.com', 'A']);
    expect(nx.status).toBe('NXDOMAIN');
    expect(nx.flags).toContain('aa');
    expect(nx.answers).toEqual([]);
    // RFC 2308 §3, §5: SOA TTL = min(SOA MINIMUM 30, SOA TTL 60).
    expect(nx.authority[0]?.slice(0, 4)).toEqual(['iot.example.com.', '30', 'IN', 'SOA']);
    const nodata = await dig(port(), ['us-east-1.iot.example.com', 'AAAA']);
    expect(nodata.status).toBe('NOERROR');
    expect(nodata.answers).toEqual([]);
    expect(nodata.authority[0]?.[3]).toBe('SOA');
    // An empty non-terminal exists (RFC 8020): NODATA, not NXDOMAIN.
    const ent = await dig(port(), ['sub.iot.example.com', 'A']);
    expect(ent.status).toBe('NOERROR');
    const refused = await dig(port(), ['example.org', 'A']);
    expect(refused.status).toBe('REFUSED');
    expect(refused.flags).not.toContain('aa');
  });

  it('answers TXT, SRV, NS, SOA, AAAA', async () => {
    dns = await startSeed();
    const txt = await dig(port(), ['info.iot.example.com', 'TXT']);
    expect(txt.answers[0]?.slice(1, 4)).toEqual(['120', 'IN', 'TXT']);
    expect(txt.stdout).toContain('"fieldlab geo dns"');
    const srv = await dig(port(), ['_mqtt._tcp.iot.example.com', 'SRV']);
    expect(srv.answers[0]?.slice(4)).toEqual(['10', '5', '8883', 'us-east-1.iot.example.com.']);
    const ns = await dig(port(), ['iot.example.com', 'NS']);
    expect(ns.answers[0]?.[4]).toBe('ns1.iot.example.com.');
    const soa = await dig(port(), ['iot.example.com', 'SOA']);
    expect(soa.answers[0]?.slice(3, 6)).toEqual([
      'SOA',
      'ns1.iot.example.com.',
      'hostmaster.iot.example.com.',
    ]);
    const aaaa = await dig(port(), ['eu-west-1.iot.example.com', 'AAAA']);
    expect(aaaa.answers[0]?.[4]).toBe('2001:db8::3');
  });

  it('sets TC on UDP answers over 512 bytes (or the EDNS size); TCP gets the whole answer', async () => {
    dns = await startSeed();
    const tc = await dig(port(), ['big.iot.example.com', 'TXT', '+ignore', '+noedns']);
    expect(tc.flags).toContain('tc');
    expect(tc.answers).toEqual([]);
    const small = await dig(port(), ['big.iot.example.com', 'TXT', '+ignore', '+bufsize=1000']);
    expect(small.flags).toContain('tc');
    const big = await dig(port(), ['big.iot.example.com', 'TXT', '+ignore', '+bufsize=4096']);
    expect(big.flags).not.toContain('tc');
    expect(big.answers).toHaveLength(8);
    // Without +ignore dig retries over TCP by itself.
    const retry = await dig(port(), ['big.iot.example.com', 'TXT', '+noedns']);
    expect(retry.answers).toHaveLength(8);
    expect(dns.stats().truncated).toBeGreaterThanOrEqual(3);
    expect(dns.stats().tcpQueries).toBeGreaterThanOrEqual(1);
  });

  it('drop: dig times out; delay: the answer comes late', async () => {
    dns = await startSeed();
    dns.setFault('us-east-1.iot.example.com', 'drop');
    const dropped = await dig(port(), ['us-east-1.iot.example.com', 'A', '+time=1', '+tries=1']);
    expect(dropped.code).toBe(9); // dig: no reply from any server
    expect(dns.stats().dropped).toBe(1);
    dns.setFault('us-east-1.iot.example.com', { delay: '300ms' });
    const t0 = performance.now();
    const late = await dig(port(), ['us-east-1.iot.example.com', 'A']);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
    expect(late.answers[0]?.[4]).toBe('127.53.0.2');
    dns.setFault('us-east-1.iot.example.com', undefined);
    const fast = await dig(port(), ['us-east-1.iot.example.com', 'A']);
    expect(fast.status).toBe('NOERROR');
  });

  it('ttl and answerFrom faults; per-CIDR faults', async () => {
    dns = await startSeed();
    dns.setFault('global.iot.example.com', { answerFrom: 'default', ttl: 5 });
    const stale = await dig(port(), ['global.iot.example.com', 'A', '+subnet=127.53.1.0/24']);
    expect(stale.answers[0]?.[4]).toBe('eu-west-1.iot.example.com.');
    expect(stale.answers[0]?.[1]).toBe('5');
    dns.setFault('global.iot.example.com', { rcode: 'servfail', cidr: '127.53.2.0/24' });
    const eu = await dig(port(), ['global.iot.example.com', 'A', '+subnet=127.53.2.0/24']);
    expect(eu.status).toBe('SERVFAIL');
    const na = await dig(port(), ['global.iot.example.com', 'A', '+subnet=127.53.1.0/24']);
    expect(na.status).toBe('NOERROR');
  });
});
