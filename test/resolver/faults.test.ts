import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { remoteDnsFaults } from '../../harness/backends/remote/dns-faults.js';
import { httpControlChannel } from '../../harness/backends/remote/http-channel.js';
import { startControlApi } from '../../harness/backends/remote/http-server.js';
import { dnsFaultTarget } from '../../harness/faults/dns.js';
import { startLab } from '../../harness/lab/lab.js';
import { endpointOf, isFieldlabError } from '../../simulators/common/index.js';
import type { GeoDnsHandle } from '../../simulators/geo-dns/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { type ResolverHandle, type ResolverOptions, start } from '../../simulators/resolver/index.js';
import { missing } from '../helpers/capability.js';
import { expectAllPassed } from '../helpers/results.js';
import { runScenarioText } from '../helpers/scenario-text.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { within } from '../helpers/within.js';
import {
  type DigResult,
  dig,
  EU_CLIENT,
  lastAddress,
  NA_CLIENT,
  record,
  startGeo,
  US,
  upstreamOf,
} from './helpers.js';

/**
 * Issue 18.3: DNS faults on a `resolver` (not only on the geo-dns), applied where the resolver answers its
 * client, before its cache and upstream; asked with a real dig over UDP, TCP, DoT and DoH.
 */
useTempStateDir('fl-resolver-faults-');

const NAME = 'global.iot.example.com';
/** An address the lab may hand out (TEST-NET-2), never a real one. */
const WRONG = '198.51.100.77';

let geo: GeoDnsHandle | undefined;
let resolver: ResolverHandle | undefined;
afterEach(async () => {
  await resolver?.stop();
  await geo?.stop();
  resolver = geo = undefined;
});

async function startBoth(ttl = 60, extra: Partial<ResolverOptions> = {}): Promise<ResolverHandle> {
  geo = await startGeo(ttl);
  resolver = await start({
    name: 'resolver',
    forward: [{ zone: 'iot.example.com', upstream: [upstreamOf(geo)] }],
    ecs: true, // the client's subnet decides: the North American client gets us-east-1
    ...extra,
  });
  return resolver;
}

/** dig against the resolver's UDP/TCP port, from the North American client address unless told. */
function ask(args: string[], bind = NA_CLIENT, timeoutMs?: number): Promise<DigResult> {
  const ep = endpointOf(resolver!, 'dns-udp');
  return dig(ep.host, ep.port, args, { bind, ...(timeoutMs ? { timeoutMs } : {}) });
}

/** Asks until `done` accepts the answer (every try bounded, the whole wait bounded). */
function askUntil(args: string[], done: (r: DigResult) => boolean, what: string): Promise<DigResult> {
  return within(
    (async () => {
      for (;;) {
        const r = await ask(args);
        if (done(r)) return r;
        await new Promise((res) => setTimeout(res, 100));
      }
    })(),
    15_000,
    what,
  );
}

describe.skipIf(missing('cmd:dig'))('DNS faults on a resolver, with dig', () => {
  it.each([
    ['servfail', 'SERVFAIL'],
    ['nxdomain', 'NXDOMAIN'],
    ['refused', 'REFUSED'],
  ] as const)('%s answers %s at once, without asking the upstream', async (type, status) => {
    const r = await startBoth();
    const applied = record(r, 'toxic-applied');
    const answers = record(r, 'answer');
    const added = r.addDnsFault({ type, qname: NAME });
    expect(added.name).toBe(`${type}_${NAME}`);
    expect(r.dnsFaults().map((f) => f.name)).toEqual([added.name]);
    const res = await ask([NAME, 'A']);
    expect(res.status).toBe(status);
    expect(res.answers).toEqual([]);
    expect(applied).toEqual([
      { toxic: added.name, type, query: `${NAME} A`, client: NA_CLIENT, transport: 'udp' },
    ]);
    expect(answers[0]).toMatchObject({ rcode: status, reason: expect.stringMatching(`fault .*${type}`) });
    expect(r.stats().upstreamQueries).toBe(0);
    // Removed: the real answer again
    r.removeDnsFault(added.name);
    expect(r.dnsFaults()).toEqual([]);
    const after = await ask([NAME, 'A']);
    expect(after.status).toBe('NOERROR');
    expect(lastAddress(after)).toBe(US);
  });

  it('servfail reaches clients over TCP too', async () => {
    const r = await startBoth();
    r.addDnsFault({ type: 'servfail' });
    const applied = record(r, 'toxic-applied');
    const res = await ask([NAME, 'A', '+tcp']);
    expect(res.status).toBe('SERVFAIL');
    expect(applied.map((a) => a.transport)).toEqual(['tcp']);
  });

  it('drop never answers: dig times out, the answer event says dropped by the fault', async () => {
    const r = await startBoth();
    r.addDnsFault({ type: 'drop', qname: NAME });
    const answers = record(r, 'answer');
    const res = await ask([NAME, 'A', '+time=1', '+tries=1']);
    expect(res.code).toBe(9); // dig: no reply from server
    expect(res.status).toBeUndefined();
    expect(answers).toMatchObject([
      { rcode: 'NONE', reason: expect.stringMatching(/fault .*drop.*: no answer/) },
    ]);
    expect(r.stats().dropped).toBe(1);
    expect(r.stats().upstreamQueries).toBe(0);
  });

  it('delay answers the real answer after the latency', async () => {
    const r = await startBoth();
    r.addDnsFault({ type: 'delay', latency: '700ms', qname: NAME });
    const answers = record(r, 'answer');
    const res = await ask([NAME, 'A']);
    expect(res.status).toBe('NOERROR');
    expect(lastAddress(res)).toBe(US);
    expect(answers).toHaveLength(1);
    expect(answers[0]!.ms).toBeGreaterThanOrEqual(650);
    expect(answers[0]!.reason).toMatch(/fault delay_global\.iot\.example\.com \(delay\)$/);
  });

  it('truncate sets TC over UDP; dig retries over TCP and gets the answer', async () => {
    const r = await startBoth();
    r.addDnsFault({ type: 'truncate', qname: NAME });
    const answers = record(r, 'answer');
    const udpOnly = await ask([NAME, 'A', '+ignore']);
    expect(udpOnly.flags).toContain('tc');
    expect(udpOnly.answers).toEqual([]);
    const retried = await ask([NAME, 'A']);
    expect(retried.status).toBe('NOERROR');
    expect(lastAddress(retried)).toBe(US);
    expect(answers.map((a) => [a.transport, a.source])).toEqual([
      ['udp', 'none'],
      ['udp', 'none'],
      ['tcp', 'upstream'],
    ]);
    expect(answers[0]!.reason).toMatch(/TC set/);
  });

  it('tcp-refused refuses TCP connections (UDP still answers); truncate then fails; removed, TCP serves again', async () => {
    const r = await startBoth();
    const removed = record(r, 'toxic-removed');
    r.addDnsFault({ type: 'tcp-refused' });
    // The listener closes asynchronously: wait (bounded) until TCP is refused.
    const refused = await askUntil([NAME, 'A', '+tcp', '+tries=1'], (x) => x.code !== 0, 'TCP refused');
    expect(refused.stdout).toMatch(/refused|reset/i);
    const udp = await ask([NAME, 'A']);
    expect(udp.status).toBe('NOERROR');
    r.addDnsFault({ type: 'truncate', qname: NAME });
    const truncated = await ask([NAME, 'A', '+tries=1']);
    expect(truncated.status).toBeUndefined();
    expect(truncated.stdout).toMatch(/refused|reset/i);
    r.removeDnsFault('tcp-refused');
    r.removeDnsFault(`truncate_${NAME}`);
    expect(removed.map((x) => x.reason)).toEqual(['removed', 'removed']);
    const back = await askUntil([NAME, 'A', '+tcp'], (x) => x.status === 'NOERROR', 'TCP served again');
    expect(lastAddress(back)).toBe(US);
  });

  it('wrong-answer answers the given address for its type; other types resolve normally', async () => {
    const r = await startBoth();
    r.addDnsFault({ type: 'wrong-answer', address: WRONG, ttl: 5, qname: NAME });
    const res = await ask([NAME, 'A']);
    expect(res.status).toBe('NOERROR');
    expect(res.answers).toEqual([[`${NAME}.`, '5', 'IN', 'A', WRONG]]);
    const txt = await ask(['info.iot.example.com', 'TXT']);
    expect(txt.status).toBe('NOERROR');
    const aaaa = await ask([NAME, 'AAAA']);
    expect(aaaa.answers.some((a) => a.includes(WRONG))).toBe(false);
  });

  it('stale serves the expired cache entry (RFC 8767) without the upstream; none cached: SERVFAIL, said so', async () => {
    // TTL 1 s, and a resolver that does not serve stale by itself
    const r = await startBoth(1, { serveStale: false });
    const first = await ask([NAME, 'A']);
    expect(lastAddress(first)).toBe(US);
    await geo!.stop(); // the upstream is gone: only the cache can answer
    geo = undefined;
    r.addDnsFault({ type: 'stale', ttl: 7 });
    const upstream = r.stats().upstreamQueries;
    const answers = record(r, 'answer');
    const expired = await askUntil(
      [NAME, 'A'],
      (x) => answers.at(-1)?.reason.includes('expired') === true && x.status === 'NOERROR',
      'the stale answer of an expired entry',
    );
    // The CNAME chain as cached, every TTL the fault's
    expect(lastAddress(expired)).toBe(US);
    expect(expired.answers.map((a) => a[1])).toEqual(expired.answers.map(() => '7'));
    expect(answers.at(-1)).toMatchObject({ source: 'stale', reason: expect.stringMatching(/RFC 8767/) });
    expect(r.stats().upstreamQueries).toBe(upstream);
    const uncached = await ask(['info.iot.example.com', 'TXT']);
    expect(uncached.status).toBe('SERVFAIL');
    expect(answers.at(-1)?.reason).toMatch(/no cached answer for info\.iot\.example\.com TXT .*SERVFAIL/);
  });

  it('a stale fault with `record` (a geo-dns record) is refused with E_BAD_FAULT naming the field', async () => {
    const r = await startBoth();
    let err: unknown;
    try {
      r.addDnsFault({ type: 'stale', record: 'us' });
    } catch (e) {
      err = e;
    }
    expect(isFieldlabError(err) && err.code).toBe('E_BAD_FAULT');
    expect(String(err)).toMatch(/fault\.record/);
    expect(r.dnsFaults()).toEqual([]);
  });

  it.each([
    ['qname', { qname: NAME }, [NAME, 'A'], ['info.iot.example.com', 'TXT']],
    ['qtype', { qtype: 'aaaa' }, [NAME, 'AAAA'], [NAME, 'A']],
  ] as const)('a %s filter faults only the queries it names', async (_, filter, hit, miss) => {
    const r = await startBoth();
    r.addDnsFault({ type: 'servfail', ...filter });
    expect((await ask([...hit])).status).toBe('SERVFAIL');
    expect((await ask([...miss])).status).toBe('NOERROR');
  });

  it('a cidr filter faults only clients inside it (their source address)', async () => {
    const r = await startBoth();
    r.addDnsFault({ type: 'refused', cidr: '127.53.2.0/24' });
    expect((await ask([NAME, 'A'], EU_CLIENT)).status).toBe('REFUSED');
    expect((await ask([NAME, 'A'], NA_CLIENT)).status).toBe('NOERROR');
  });

  it('a scheduled fault starts after `start` and removes itself after `duration`', async () => {
    const r = await startBoth();
    const seen: string[] = [];
    r.events.onEvent('toxic-started', () => seen.push('started'));
    r.events.onEvent('toxic-removed', (e) => seen.push(`removed ${e.reason}`));
    r.events.onEvent('answer', (e) => seen.push(e.rcode));
    r.addDnsFault({ type: 'servfail', qname: NAME, start: '800ms', duration: '1500ms' });
    expect((await ask([NAME, 'A'])).status).toBe('NOERROR');
    await askUntil([NAME, 'A'], (x) => x.status === 'SERVFAIL', 'the fault to start');
    await askUntil([NAME, 'A'], (x) => x.status === 'NOERROR', 'the fault to expire');
    expect(seen[0]).toBe('NOERROR');
    const started = seen.indexOf('started');
    const expired = seen.indexOf('removed expired');
    expect(started).toBeGreaterThan(0);
    expect(seen.indexOf('SERVFAIL')).toBeGreaterThan(started);
    expect(expired).toBeGreaterThan(seen.indexOf('SERVFAIL'));
    expect(seen.slice(0, started)).not.toContain('SERVFAIL');
    expect(seen.slice(expired)).not.toContain('SERVFAIL');
    expect(r.dnsFaults()).toEqual([]);
  });
});

describe.skipIf(missing('cmd:dig'))('DNS faults on a resolver over DoT and DoH', () => {
  let pki: PkiHandle;
  beforeAll(async () => {
    pki = await startPki({ name: 'pki' });
  });
  afterAll(() => pki.stop());

  it('servfail answers DoT and DoH clients; truncate leaves them alone (whole answers there)', async () => {
    const cert = await pki.issueServer(['resolver.lab', '127.0.0.1']);
    const r = await startBoth(60, { tls: { certPem: cert.chainPem, keyPem: cert.keyPem } });
    const verify = [`+tls-ca=${pki.trust.bundlePath}`, '+tls-hostname=resolver.lab'];
    const applied = record(r, 'toxic-applied');
    r.addDnsFault({ type: 'servfail', qtype: 'A' });
    r.addDnsFault({ type: 'truncate' });
    const dot = endpointOf(r, 'dot');
    const doh = endpointOf(r, 'doh');
    const overTls = await dig(dot.host, dot.port, [NAME, 'A', '+tls', ...verify], { bind: NA_CLIENT });
    const overHttps = await dig(doh.host, doh.port, [NAME, 'A', '+https', ...verify], { bind: NA_CLIENT });
    expect(overTls.status).toBe('SERVFAIL');
    expect(overHttps.status).toBe('SERVFAIL');
    expect(applied.map((a) => [a.type, a.transport])).toEqual([
      ['servfail', 'dot'],
      ['servfail', 'doh'],
    ]);
    const txt = await dig(dot.host, dot.port, ['info.iot.example.com', 'TXT', '+tls', ...verify]);
    expect(txt.status).toBe('NOERROR');
    expect(txt.flags).not.toContain('tc');
  });
});

describe.skipIf(missing('cmd:dig'))('a scenario fault that targets a resolver', () => {
  it("servfail on the device's resolver: dig reports dns.servfail, the lab names the fault", async () => {
    const run = await runScenarioText(
      `
name: resolver-fault
title: DNS faults on the device's resolver
requires: ['cmd:dig']
backends: [loopback]
timeout: 20s
lab:
  simulators:
    - name: dns
      type: geo-dns
      host: ns1.iot.example.com
      options:
        zones:
          - origin: iot.example.com
            soa: { mname: ns1.iot.example.com, rname: hostmaster.iot.example.com }
            records: [{ name: global, type: A, value: 198.51.100.20 }]
    - name: isp
      type: resolver
      host: resolver.isp.example.net
      options: { tls: false, forward: [{ zone: iot.example.com, to: [dns] }] }
client:
  type: command
  resolve: none
  argv: [dig, '@\${isp.address}', -p, '\${isp.port}', global.iot.example.com, A, +time=1, +tries=1]
variants:
  - name: fixed
    expect: { result: pass, output: 'global\\.iot\\.example\\.com\\.\\s+\\d+\\s+IN\\s+A\\s+198\\.51\\.100\\.20' }
  - name: broken-servfail
    faults: [{ target: isp, type: servfail, qname: global.iot.example.com }]
    expect:
      result: fail
      class: dns.servfail
      labSaw:
        - { source: isp, type: toxic-applied, match: { toxic: servfail_global.iot.example.com, type: servfail } }
        - { source: isp, type: answer, match: { name: global.iot.example.com, rcode: SERVFAIL } }
  - name: broken-dropped
    faults: [{ target: isp, type: drop }]
    expect: { result: fail, class: dns.timeout, labSaw: [{ source: isp, type: toxic-applied, match: { type: drop } }] }
`,
      'loopback',
    );
    expectAllPassed(run.results);
    const servfail = run.results.find((x) => x.variant === 'broken-servfail');
    expect(servfail?.explanation.join('\n')).toMatch(/fault servfail/);
  });
});

describe.skipIf(missing('cmd:dig'))("DNS faults on a worker's resolver, over the control protocol", () => {
  it('a fault added through the worker API acts on the resolver; removed, it is gone', async () => {
    const lab = await startLab({
      name: 'remote-resolver',
      simulators: [
        { name: 'isp', type: 'resolver', host: 'resolver.isp.example.net', options: { tls: false } },
      ],
    });
    const cleanups: Array<() => Promise<unknown>> = [() => lab.stop()];
    try {
      const token = randomBytes(32).toString('base64url');
      const server = await startControlApi(lab, { token, host: '127.0.0.1', port: 0 });
      cleanups.unshift(() => new Promise((r) => server.close(r)));
      const remote = remoteDnsFaults({
        target: 'isp',
        channel: httpControlChannel({
          host: '127.0.0.1',
          port: (server.address() as AddressInfo).port,
          token,
        }),
        faults: lab,
      });
      const local = dnsFaultTarget(lab, 'isp');
      remote.addDnsFault({ type: 'servfail', qname: NAME });
      await within(lab.faultsApplied(), 10_000, 'add');
      expect(local.dnsFaults()).toMatchObject([{ name: `servfail_${NAME}`, type: 'servfail' }]);
      const ep = endpointOf(lab.sim('isp').handle, 'dns-udp');
      expect((await dig(ep.host, ep.port, [NAME, 'A'])).status).toBe('SERVFAIL');
      remote.removeDnsFault(`servfail_${NAME}`);
      await within(lab.faultsApplied(), 10_000, 'remove');
      expect(local.dnsFaults()).toEqual([]);
      // No fault: a name outside its forward zones is REFUSED, as before
      expect((await dig(ep.host, ep.port, [NAME, 'A'])).status).toBe('REFUSED');
    } finally {
      for (const c of cleanups) await c();
    }
  });
});
