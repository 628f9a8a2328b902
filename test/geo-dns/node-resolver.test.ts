import { promises as dnsPromises } from 'node:dns';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/index.js';
import type { GeoDnsEvents, GeoDnsHandle } from '../../simulators/geo-dns/index.js';
import { startSeed } from './helpers.js';

function resolver(dns: GeoDnsHandle): dnsPromises.Resolver {
  const r = new dnsPromises.Resolver({ timeout: 1000, tries: 1 });
  r.setServers([`127.0.0.1:${endpointOf(dns, 'dns-udp').port}`]);
  return r;
}

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code;
  }
}

describe('geo-dns with Node dns.promises.Resolver', () => {
  let dns: GeoDnsHandle | undefined;
  afterEach(async () => {
    await dns?.stop();
    dns = undefined;
  });

  it('resolves A, CNAME, TXT, SRV and reports the query event', async () => {
    dns = await startSeed();
    const seen: GeoDnsEvents['query'][] = [];
    dns.events.onEvent('query', (q) => seen.push(q));
    const r = resolver(dns);
    expect(await r.resolve4('us-east-1.iot.example.com')).toEqual(['127.53.0.2']);
    // From 127.0.0.1 (not in the location table): Default → eu-west-1.
    expect(await r.resolveCname('global.iot.example.com')).toEqual(['eu-west-1.iot.example.com']);
    expect(await r.resolve4('global.iot.example.com')).toEqual(['127.53.0.3']);
    expect(await r.resolveTxt('info.iot.example.com')).toEqual([['fieldlab geo dns']]);
    expect(await r.resolveSrv('_mqtt._tcp.iot.example.com')).toEqual([
      { name: 'us-east-1.iot.example.com', port: 8883, priority: 10, weight: 5 },
    ]);
    const q = seen.find((e) => e.name === 'global.iot.example.com' && e.type === 'A');
    expect(q).toMatchObject({ transport: 'udp', rcode: 'NOERROR', location: 'unknown' });
    expect(q?.reason).toMatch(/^Default matched default/);
    expect(q?.answers.map((a) => a.data)).toEqual(['eu-west-1.iot.example.com.', '127.53.0.3']);
    expect(dns.stats().byRcode.NOERROR).toBeGreaterThanOrEqual(5);
  });

  it('maps faults and negative answers to Node error codes', async () => {
    dns = await startSeed();
    const r = resolver(dns);
    expect(await code(r.resolve4('nope.iot.example.com'))).toBe('ENOTFOUND');
    expect(await code(r.resolve6('us-east-1.iot.example.com'))).toBe('ENODATA');
    dns.setFault('us-east-1.iot.example.com', 'servfail');
    expect(await code(r.resolve4('us-east-1.iot.example.com'))).toBe('ESERVFAIL');
    dns.setFault('us-east-1.iot.example.com', 'refused');
    expect(await code(r.resolve4('us-east-1.iot.example.com'))).toBe('EREFUSED');
    dns.setFault('us-east-1.iot.example.com', 'nxdomain');
    expect(await code(r.resolve4('us-east-1.iot.example.com'))).toBe('ENOTFOUND');
    dns.setFault('us-east-1.iot.example.com', 'drop');
    expect(await code(r.resolve4('us-east-1.iot.example.com'))).toBe('ETIMEOUT');
    dns.setFault('us-east-1.iot.example.com', undefined);
    expect(await r.resolve4('us-east-1.iot.example.com')).toEqual(['127.53.0.2']);
    expect(dns.stats().byRcode).toMatchObject({ SERVFAIL: 1, REFUSED: 1, NXDOMAIN: 2 });
  });

  it('adds and replaces records at runtime (the harness registers lab names)', async () => {
    dns = await startSeed();
    const r = resolver(dns);
    await dns.addRecords([{ name: 'proxy.lab.example', type: 'A', value: '127.53.9.1' }]);
    expect(await r.resolve4('proxy.lab.example')).toEqual(['127.53.9.1']);
    await dns.setRecords([{ name: 'proxy.lab.example.', type: 'A', value: ['127.53.9.2', '127.53.9.3'] }]);
    expect((await r.resolve4('proxy.lab.example')).sort()).toEqual(['127.53.9.2', '127.53.9.3']);
    await dns.addRecords([{ name: 'broker', zone: 'iot.example.com', type: 'A', value: '127.53.9.4' }]);
    expect(await r.resolve4('broker.iot.example.com')).toEqual(['127.53.9.4']);
    dns.removeRecords('proxy.lab.example');
    expect(await code(r.resolve4('proxy.lab.example'))).toBe('ENOTFOUND');
  });
});
