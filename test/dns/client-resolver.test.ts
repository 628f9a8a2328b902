import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLabOn } from '../../harness/backends/index.js';
import { loopback } from '../../harness/backends/loopback/index.js';
import type { BackendLab, CommandRun } from '../../harness/backends/types.js';
import type { LabDefinition } from '../../harness/lab/lab.js';
import { type LabDns, pickedResolverAddress } from '../../harness/lab/lab-dns.js';
import { loadYamlScenario } from '../../harness/scenario/load.js';
import { FieldlabError } from '../../simulators/common/errors.js';
import { missing } from '../helpers/capability.js';
import { expectAllPassed } from '../helpers/results.js';
import { runScenarioText } from '../helpers/scenario-text.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * Issue 18.2: the scenario (or a variant) picks the device's resolver (`client.resolver`). On loopback the
 * program's private resolv.conf names that resolver persona, the hosts file holds only localhost, and so
 * every lab name the program looks up is a query to the resolver picked, never to the lab's own DNS.
 */
useTempStateDir('fl-pick-');

/** Resolver personas on port 53 (the first declared, office, is the lab's own DNS), each forwarding to dns. */
const RESOLVERS = `
    - { name: api, type: https-server, host: api.iot.example.com }
    - name: dns
      type: geo-dns
      host: ns1.example.net
      options:
        zones: [{ origin: iot.example.com, soa: { mname: ns1.example.net, rname: hostmaster.example.net } }]
    - name: office
      type: resolver
      host: resolver.office.example.net
      port: 53
      options: { tls: false, cache: false, forward: [{ zone: iot.example.com, to: [dns] }] }
    - name: isp
      type: resolver
      host: resolver.isp.example.net
      port: 53
      options: { tls: false, cache: false, forward: [{ zone: iot.example.com, to: [dns] }] }
    - name: public
      type: resolver
      host: resolver.public.example.org
      port: 53
      options: { tls: false, cache: false, forward: [{ zone: iot.example.com, to: [dns] }] }`;

const forward = [{ zone: 'iot.example.com', to: ['dns'] }];
const DEF: LabDefinition = {
  name: 'client-resolver-test',
  simulators: [
    { name: 'api', type: 'https-server', host: 'api.iot.example.com' },
    {
      name: 'dns',
      type: 'geo-dns',
      host: 'ns1.example.net',
      options: {
        zones: [
          { origin: 'iot.example.com', soa: { mname: 'ns1.example.net', rname: 'hostmaster.example.net' } },
        ],
      },
    },
    {
      name: 'office',
      type: 'resolver',
      host: 'resolver.office.example.net',
      port: 53,
      options: { tls: false, cache: false, forward },
    },
    {
      name: 'isp',
      type: 'resolver',
      host: 'resolver.isp.example.net',
      port: 53,
      options: { tls: false, cache: false, forward },
    },
  ],
};

describe('pickedResolverAddress (what resolv.conf names for client.resolver)', () => {
  const dns: LabDns = { kind: 'resolver', address: '127.9.9.3', name: 'office' };
  const resolver = (port: number, type = 'resolver') => ({
    decl: { name: 'isp', type, host: 'resolver.isp.example.net', port },
    endpoints: [{ name: 'dns-udp', host: '127.9.9.4', port, protocol: 'dns' }],
  });
  const codeOf = (f: () => unknown): { code: string; message: string; hint: string | undefined } => {
    try {
      f();
    } catch (err) {
      if (err instanceof FieldlabError) return { code: err.code, message: err.message, hint: err.hint };
      throw err;
    }
    throw new Error('no error');
  };

  it("is the picked resolver's own address on port 53", () => {
    expect(pickedResolverAddress(dns, 'isp', resolver(53))).toBe('127.9.9.4');
  });

  it('refuses a pick where port 53 could not be bound (the hosts-file fallback), never using the hosts file', () => {
    const fallback: LabDns = {
      kind: 'hosts-file',
      notice: 'lab DNS: no resolver on port 53: ...',
      reason: 'binding port 53 needs root',
    };
    const e = codeOf(() => pickedResolverAddress(fallback, 'isp', resolver(53)));
    expect(e.code).toBe('E_NO_LAB_DNS');
    expect(e.message).toMatch(
      /client resolver isp: the lab has no DNS on port 53.*binding port 53 needs root/,
    );
    expect(e.hint).toMatch(/root.*CAP_NET_BIND_SERVICE.*dns53/);
    expect(codeOf(() => pickedResolverAddress(undefined, 'isp', resolver(53))).code).toBe('E_NO_LAB_DNS');
  });

  it('refuses a name that is no resolver, or one off port 53 (resolv.conf takes no port)', () => {
    expect(codeOf(() => pickedResolverAddress(dns, 'isp', undefined)).code).toBe('E_NO_SUCH_RESOLVER');
    expect(codeOf(() => pickedResolverAddress(dns, 'isp', resolver(53, 'geo-dns'))).code).toBe(
      'E_NO_SUCH_RESOLVER',
    );
    const off = codeOf(() => pickedResolverAddress(dns, 'isp', resolver(5300)));
    expect(off).toMatchObject({ code: 'E_NO_SUCH_RESOLVER', hint: 'give isp port: 53' });
    expect(off.message).toMatch(/port 5300/);
  });
});

describe('a scenario that picks a resolver', () => {
  const scenario = (client: string, variants: string) =>
    loadYamlScenario(
      'pick.yaml',
      `
name: pick
title: picks a resolver
backends: [loopback]
lab:
  simulators:${RESOLVERS}
client:
  type: command
  argv: [getent, hosts, api.iot.example.com]${client}
variants:${variants}
`,
    );

  it('is refused when the resolver is not a resolver simulator on port 53 (scenario or variant)', () => {
    const pair = (fixed: string) =>
      `\n  - { name: fixed, ${fixed}expect: { result: pass } }\n  - { name: broken, expect: { result: pass } }`;
    expect(() => scenario('\n  resolver: dns', pair(''))).toThrow(
      /client\.resolver: client resolver dns is not a resolver simulator on port 53 \(have: office, isp, public\)/,
    );
    expect(() => scenario('', pair('client: { resolver: api }, '))).toThrow(
      /variants\[0\]\.client\.resolver: client resolver api is not a resolver simulator on port 53/,
    );
  });

  it('needs dns53 on loopback (a machine that cannot bind port 53 skips it) only where a resolver is picked', () => {
    const s = scenario(
      '',
      `
  - { name: fixed-lab-dns, expect: { result: pass } }
  - { name: broken-picked, client: { resolver: isp }, expect: { result: pass } }`,
    );
    const [plain, picked] = s.variants;
    if (!plain || !picked) throw new Error('two variants');
    expect(loopback.capabilities(s, plain)).not.toContain('dns53');
    expect(loopback.capabilities(s, picked)).toEqual(expect.arrayContaining(['dns53', 'userns']));
  });
});

describe.skipIf(missing('dns53', 'userns', 'cmd:unshare', 'cmd:dig'))('client.resolver on loopback', () => {
  let b: BackendLab;
  beforeAll(async () => {
    b = await startLabOn(loopback, DEF, {
      scenario: { name: DEF.name, lab: { hosts: [], simulators: [] } },
    });
  }, 60_000);
  afterAll(async () => {
    await b?.lab.stop();
  });
  const run = (argv: string[], more: Partial<CommandRun> = {}) =>
    b.network.runCommand(b.lab, {
      host: 'device',
      argv,
      env: {},
      timeoutMs: 20_000,
      resolve: 'lab',
      ...more,
    });
  const asked = (t: number, source: string) =>
    b.lab
      .eventsSince(t)
      .filter((e) => e.source === source && e.type === 'query')
      .filter((e) => (e.data as { name: string }).name === 'api.iot.example.com');
  const dig = ['dig', '+short', '+tries=1', '+time=3', 'api.iot.example.com', 'A'];

  it('dig and getaddrinfo ask the picked resolver, not the lab DNS', async () => {
    expect(b.lab.dns).toMatchObject({ kind: 'resolver', name: 'office' });
    const api = b.lab.hosts.get('api.iot.example.com');
    const t = Date.now();
    const r = await run(dig, { resolver: 'isp' });
    expect(r.stdout.trim(), r.stderr).toBe(api);
    expect(asked(t, 'isp').length).toBeGreaterThan(0);
    expect(asked(t, 'office')).toEqual([]);

    const t2 = Date.now();
    const node = await run(
      [
        process.execPath,
        '-e',
        "require('node:dns').lookup('api.iot.example.com', (e, a) => console.log(e ? e.code : a))",
      ],
      { resolver: 'isp' },
    );
    expect(node.stdout.trim(), node.stderr).toBe(api);
    expect(asked(t2, 'isp').length).toBeGreaterThan(0);
    expect(asked(t2, 'office')).toEqual([]);
  });

  it("writes the pick's own resolv.conf and leaves lab names out of the hosts file", () => {
    const isp = b.lab.hosts.get('resolver.isp.example.net');
    expect(readFileSync(join(b.lab.dir, 'resolv-isp.conf'), 'utf8')).toMatch(
      new RegExp(`^nameserver ${isp?.replaceAll('.', '\\.')}$`, 'm'),
    );
    expect(readFileSync(b.lab.hostsFile, 'utf8')).not.toContain('api.iot.example.com');
  });

  it('without a pick the lab DNS answers, as before', async () => {
    const t = Date.now();
    const r = await run(dig);
    expect(r.stdout.trim(), r.stderr).toBe(b.lab.hosts.get('api.iot.example.com'));
    expect(asked(t, 'office').length).toBeGreaterThan(0);
    expect(asked(t, 'isp')).toEqual([]);
  });

  it('refuses a pick that is no resolver, and one without the lab namespace, before running anything', async () => {
    await expect(run(dig, { resolver: 'dns' })).rejects.toMatchObject({ code: 'E_NO_SUCH_RESOLVER' });
    await expect(run(dig, { resolver: 'isp', resolve: 'none' })).rejects.toMatchObject({
      code: 'E_SCENARIO',
      message: expect.stringMatching(/client resolver isp needs client\.resolve: lab/),
    });
  });
});

describe.skipIf(missing('dns53', 'userns', 'cmd:unshare', 'cmd:getent'))(
  'a scenario picks the resolver an unmodified client asks, and a variant switches it',
  () => {
    it('getent asks isp, or public where the variant picks it (faults too); never the lab DNS', {
      timeout: 120_000,
    }, async () => {
      const run = await runScenarioText(SCENARIO, 'loopback');
      expectAllPassed(run.results);
      expect(run.results.map((r) => r.variant)).toEqual([
        'fixed-isp-picked',
        'fixed-public-by-variant',
        'broken-servfail-through-public',
      ]);
    });
  },
);

const SCENARIO = `
name: client-resolver-pick
title: a variant picks the device's resolver
requires: [dns53, userns]
backends: [loopback]
timeout: 40s
lab:
  simulators:${RESOLVERS}
client:
  type: command
  resolver: isp
  argv: [getent, hosts, api.iot.example.com]
variants:
  - name: fixed-isp-picked
    description: the scenario's pick is the resolver the device asks; the lab DNS (office) never hears of it
    expect:
      result: pass
      output: '^127\\.\\d+\\.\\d+\\.\\d+\\s+api\\.iot\\.example\\.com'
      labSaw: [{ source: isp, type: query, match: { name: api.iot.example.com } }]
      labNeverSaw: [{ source: office, type: query }, { source: public, type: query }]
  - name: fixed-public-by-variant
    description: the variant picks the public resolver instead
    client: { resolver: public }
    expect:
      result: pass
      output: '^127\\.\\d+\\.\\d+\\.\\d+\\s+api\\.iot\\.example\\.com'
      labSaw: [{ source: public, type: query, match: { name: api.iot.example.com } }]
      labNeverSaw: [{ source: office, type: query }, { source: isp, type: query }]
  - name: broken-servfail-through-public
    description: the authoritative server answers SERVFAIL; the picked resolver passes it on to the device
    client: { resolver: public }
    faults: [{ target: dns, type: servfail, qname: api.iot.example.com }]
    expect:
      result: fail
      class: dns.servfail
      labSaw: [{ source: public, type: answer, match: { name: api.iot.example.com, rcode: SERVFAIL } }]
      labNeverSaw: [{ source: office, type: query }, { source: isp, type: query }]
`;
