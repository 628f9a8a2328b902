import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLabOn } from '../../harness/backends/index.js';
import { loopback } from '../../harness/backends/loopback/index.js';
import type { BackendLab, CommandRun } from '../../harness/backends/types.js';
import { port53Check } from '../../harness/capabilities.js';
import { runCommand } from '../../harness/clients/command.js';
import type { LabDefinition } from '../../harness/lab/lab.js';
import { LAB_DNS_NAME } from '../../harness/lab/lab-dns.js';
import { missing } from '../helpers/capability.js';
import { expectAllPassed } from '../helpers/results.js';
import { runScenarioText } from '../helpers/scenario-text.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * Issue 18.1: every command client resolves through the lab's own DNS. The lab runs a resolver on port 53
 * of a lab address, the client's resolv.conf (its private mount namespace on loopback) names it, and the
 * hosts file holds only localhost: curl, dig and a Node program's getaddrinfo ask it, it answers lab names,
 * forwards the geo-dns zones (so DNS faults reach the client) and refuses every other name at once.
 */
useTempStateDir('fl-labdns-');

const ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');

const DEF: LabDefinition = {
  name: 'lab-dns-test',
  simulators: [
    { name: 'api', type: 'https-server', host: 'api.iot.example.com' },
    {
      name: 'dns',
      type: 'geo-dns',
      host: 'ns1.example.net',
      // Honoured on loopback too (it used to be replaced by a free port without a word).
      port: 53,
      options: {
        zones: [
          { origin: 'iot.example.com', soa: { mname: 'ns1.example.net', rname: 'hostmaster.example.net' } },
        ],
      },
    },
  ],
};

describe('port53Check', () => {
  const facts = { uid: 1000, capEff: 0n, unprivilegedPortStart: 1024 };
  it('refuses an unprivileged process and says how to get port 53', () => {
    const c = port53Check(facts);
    expect(c.ok).toBe(false);
    expect(c.reason).toMatch(/port 53.*CAP_NET_BIND_SERVICE.*ip_unprivileged_port_start=53/);
  });
  it('accepts root, CAP_NET_BIND_SERVICE (bit 10) or a kernel that opens port 53 to anyone', () => {
    expect(port53Check({ ...facts, uid: 0 }).ok).toBe(true);
    expect(port53Check({ ...facts, capEff: 1n << 10n }).ok).toBe(true);
    expect(port53Check({ ...facts, capEff: 1n << 12n }).ok).toBe(false);
    expect(port53Check({ ...facts, unprivilegedPortStart: 53 }).ok).toBe(true);
    expect(port53Check({ ...facts, unprivilegedPortStart: 54 }).ok).toBe(false);
  });
});

describe.skipIf(missing('dns53', 'userns', 'cmd:unshare', 'cmd:dig', 'cmd:curl'))(
  'the lab resolver on loopback',
  () => {
    let b: BackendLab;
    beforeAll(async () => {
      b = await startLabOn(loopback, DEF, {
        scenario: { name: DEF.name, lab: { hosts: [], simulators: [] } },
      });
    }, 60_000);
    afterAll(async () => {
      await b?.lab.stop();
    });
    const run = (argv: string[]) => {
      const spec: CommandRun = { host: 'device', argv, env: {}, timeoutMs: 20_000, resolve: 'lab' };
      return b.network.runCommand(b.lab, spec);
    };
    const queries = (t: number, name: string) =>
      b.lab
        .eventsSince(t)
        .filter((e) => e.source === LAB_DNS_NAME && e.type === 'query')
        .filter((e) => (e.data as { name: string }).name === name);

    it("points the client's resolv.conf at the resolver on port 53 and keeps lab names out of the hosts file", () => {
      const dns = b.lab.dns;
      expect(dns?.kind).toBe('resolver');
      const address = dns?.kind === 'resolver' ? dns.address : '';
      expect(readFileSync(b.lab.resolvConf, 'utf8')).toContain(`nameserver ${address}\n`);
      expect(readFileSync(b.lab.hostsFile, 'utf8')).not.toContain('api.iot.example.com');
      const udp = b.lab.sim(LAB_DNS_NAME).endpoints.find((e) => e.name === 'dns-udp');
      expect(udp).toMatchObject({ host: address, port: 53 });
      const geo = b.lab.sim('dns').endpoints.find((e) => e.name === 'dns-udp');
      expect(geo).toMatchObject({ host: b.lab.hosts.get('ns1.example.net'), port: 53 });
    });

    it('dig resolves a forwarded lab name and a lab host name through it', async () => {
      const t = Date.now();
      const api = b.lab.hosts.get('api.iot.example.com');
      const r = await run(['dig', '+short', '+tries=1', '+time=3', 'api.iot.example.com', 'A']);
      expect(r.stdout.trim()).toBe(api);
      expect(queries(t, 'api.iot.example.com').length).toBeGreaterThan(0);
      // Forwarded: the authoritative geo-dns saw the query too.
      expect(b.lab.eventsSince(t).some((e) => e.source === 'dns' && e.type === 'query')).toBe(true);
      const ns = await run(['dig', '+short', '+tries=1', '+time=3', 'ns1.example.net', 'A']);
      expect(ns.stdout.trim()).toBe(b.lab.hosts.get('ns1.example.net'));
    });

    it("curl and a Node program's getaddrinfo resolve through it", async () => {
      const t = Date.now();
      const api = b.lab.sim('api').endpoints[0];
      const url = `https://api.iot.example.com:${api?.port}/`;
      const curl = await run([
        'curl',
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--cacert',
        b.lab.pki.trust.bundlePath,
        url,
      ]);
      expect(curl.stderr).toBe('');
      expect(curl.stdout).toMatch(/^[1-5]\d\d$/);
      expect(queries(t, 'api.iot.example.com').length).toBeGreaterThan(0);

      const t2 = Date.now();
      const node = await run([
        process.execPath,
        '-e',
        "require('node:dns').lookup('api.iot.example.com', (e, a) => console.log(e ? e.code : a))",
      ]);
      expect(node.stdout.trim()).toBe(b.lab.hosts.get('api.iot.example.com'));
      expect(queries(t2, 'api.iot.example.com').length).toBeGreaterThan(0);
    });

    it('refuses a name outside the lab at once, without forwarding it anywhere', async () => {
      const t = Date.now();
      const r = await run(['dig', '+tries=1', '+time=3', 'updates.vendor.example', 'A']);
      expect(r.stdout).toMatch(/status: REFUSED/);
      const mine = b.lab.eventsSince(t).filter((e) => e.source === LAB_DNS_NAME);
      expect(mine.some((e) => e.type === 'answer' && (e.data as { rcode: string }).rcode === 'REFUSED')).toBe(
        true,
      );
      expect(mine.some((e) => e.type === 'upstream-query')).toBe(false);
      expect(b.lab.eventsSince(t).some((e) => e.source === 'dns')).toBe(false);
    });
  },
);

describe.skipIf(missing('dns53', 'userns', 'cmd:unshare', 'cmd:curl'))(
  'a DNS fault on the geo-dns reaches curl through the lab resolver',
  () => {
    it('servfail on the zone: curl cannot resolve, the lab says dns.servfail', {
      timeout: 90_000,
    }, async () => {
      const run = await runScenarioText(SCENARIO, 'loopback');
      expectAllPassed(run.results);
      const broken = run.results.find((r) => r.variant === 'broken-servfail');
      expect(broken?.client?.stderr).toMatch(/Could not resolve host: api\.iot\.example\.com/);
    });
  },
);

/** A lab started by an unprivileged user (nobody, no capabilities) from dist/: what it says and writes. */
const UNPRIVILEGED_PROBE = `
import { readFileSync } from 'node:fs';
const { startLab } = await import(process.argv[2] + '/dist/harness/lab/lab.js');
const def = { name: 'unpriv', simulators: [{ name: 'api', type: 'https-server', host: 'api.iot.example.com' }] };
const lab = await startLab(def);
try {
  const events = lab.events.filter((e) => e.source === 'lab-dns').map((e) => e.type);
  const files = { hosts: readFileSync(lab.hostsFile, 'utf8'), resolv: readFileSync(lab.resolvConf, 'utf8') };
  const again = await startLab(def).then(async (l) => (await l.stop(), l.dns?.kind));
  // A geo-dns given port 53 is refused with a clear error, not moved to a free port.
  const geo = { name: 'dns', type: 'geo-dns', host: 'ns1.example.net', port: 53, options: { zones: [] } };
  const refused = await startLab({ name: 'unpriv53', simulators: [geo] }).then(
    async (l) => (await l.stop(), 'started'),
    (e) => ({ code: e.code, message: e.message, hint: e.hint }),
  );
  console.log(JSON.stringify({ dns: lab.dns, events, ...files, again, refused }));
} finally {
  await lab.stop();
}
`;

describe.skipIf(missing('root', 'cmd:setpriv') || !existsSync(join(ROOT, 'dist/harness/lab/lab-dns.js')))(
  'where port 53 cannot be bound',
  () => {
    it('the hosts file stays, and the run says so once (a notice, not an error)', {
      timeout: 60_000,
    }, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'fl-labdns-nobody-'));
      try {
        chmodSync(dir, 0o777);
        writeFileSync(join(dir, 'probe.mjs'), UNPRIVILEGED_PROBE);
        const r = await runCommand({
          argv: [
            'setpriv',
            '--reuid',
            'nobody',
            '--regid',
            'nogroup',
            '--clear-groups',
            '--inh-caps=-all',
            '--bounding-set=-all',
            process.execPath,
            join(dir, 'probe.mjs'),
            ROOT,
          ],
          // A state directory of nobody's own (fieldlab refuses one another user owns).
          env: { FIELDLAB_STATE_DIR: join(dir, 'state') },
          timeoutMs: 45_000,
        });
        expect(r.exitCode, r.stderr).toBe(0);
        const out = JSON.parse(r.stdout) as {
          dns: { kind: string; notice: string };
          events: string[];
          hosts: string;
          resolv: string;
          again: string;
          refused: { code: string; message: string; hint: string } | string;
        };
        expect(out.dns.kind).toBe('hosts-file');
        expect(out.dns.notice).toMatch(/no resolver on port 53: .*CAP_NET_BIND_SERVICE.*hosts file/);
        expect(out.events).toEqual(['fallback']);
        expect(out.hosts).toMatch(/^127\.\d+\.\d+\.\d+\tapi\.iot\.example\.com$/m);
        expect(out.resolv).toMatch(/options timeout:1 attempts:1/);
        // Two labs in one process: one notice on stderr, no stack trace.
        expect(out.again).toBe('hosts-file');
        expect(r.stderr.match(/fieldlab: note: lab DNS: no resolver on port 53/g)).toHaveLength(1);
        expect(r.stderr).not.toMatch(/\n\s+at /);
        expect(out.refused).toMatchObject({
          code: 'E_LISTEN',
          message: expect.stringMatching(/dns \(geo-dns\): cannot listen on 127\.\d+\.\d+\.\d+:53: EACCES/),
          hint: expect.stringMatching(/CAP_NET_BIND_SERVICE.*dns53/),
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);

describe.skipIf(missing('netns', 'cmd:curl', 'cmd:dig'))('the lab resolver on netns', () => {
  it("a namespace's resolv.conf names the resolver declared on port 53: lab names and other names", {
    timeout: 240_000,
  }, async () => {
    const run = await runScenarioText(NETNS_SCENARIO, 'netns');
    expectAllPassed(run.results);
    expect(run.results.map((r) => r.variant)).toEqual(['fixed', 'broken-other-names-refused']);
  });
});

/** The device, the name servers' host (the resolver on 53, the authoritative geo-dns beside it) and the API. */
const NETNS_SCENARIO = `
name: lab-dns-netns
title: a device in its namespace resolves through the lab resolver
requires: [netns]
backends: [netns]
timeout: 60s
lab:
  network:
    segments: [{ name: lan, cidr: 198.51.100.0/24 }]
    hosts:
      - { name: device, segments: [{ segment: lan, address: 198.51.100.10 }] }
      - { name: ns, names: [ns1.example.net, resolver.example.net], segments: [{ segment: lan, address: 198.51.100.53 }] }
      - { name: api, names: [api.iot.example.com], segments: [{ segment: lan, address: 198.51.100.20 }] }
  simulators:
    - { name: api, type: https-server, host: api.iot.example.com, port: 8443 }
    - name: dns
      type: geo-dns
      host: ns1.example.net
      port: 5300
      options:
        zones: [{ origin: iot.example.com, soa: { mname: ns1.example.net, rname: hostmaster.example.net } }]
    - name: resolver
      type: resolver
      host: resolver.example.net
      port: 53
      options: { tls: false, cache: false, forward: [{ zone: iot.example.com, to: [dns] }] }
client:
  type: command
  host: device
  argv: [curl, --silent, --show-error, --fail, --max-time, '10', --cacert, '\${lab.ca}', 'https://api.iot.example.com:8443/']
variants:
  - name: fixed
    description: the device's query reaches the resolver from the device's own address, and is forwarded
    expect:
      result: pass
      labSaw:
        - { source: resolver, type: query, match: { client: 198.51.100.10, name: api.iot.example.com } }
        - { source: resolver, type: answer, match: { name: api.iot.example.com, type: A, rcode: NOERROR, source: upstream } }
  - name: broken-other-names-refused
    description: a name outside the lab is refused at once, never forwarded
    client: { argv: [curl, --silent, --show-error, --max-time, '10', 'https://updates.vendor.example/'] }
    expect:
      result: fail
      class: dns.refused
      labSaw: [{ source: resolver, type: answer, match: { name: updates.vendor.example, rcode: REFUSED } }]
      labNeverSaw: [{ source: resolver, type: upstream-query }]
`;

const SCENARIO = `
name: lab-dns-servfail
title: curl resolves through the lab resolver
requires: [dns53, userns]
backends: [loopback]
timeout: 40s
lab:
  simulators:
    - { name: api, type: https-server, host: api.iot.example.com, port: 8443 }
    - name: dns
      type: geo-dns
      host: ns1.example.net
      options:
        zones: [{ origin: iot.example.com, soa: { mname: ns1.example.net, rname: hostmaster.example.net } }]
client:
  type: command
  argv: [curl, --silent, --show-error, --fail, --max-time, '10', --cacert, '\${lab.ca}', 'https://api.iot.example.com:8443/']
variants:
  - name: fixed
    description: the name resolves through the lab resolver
    expect:
      result: pass
      labSaw: [{ source: ${LAB_DNS_NAME}, type: answer, match: { name: api.iot.example.com, type: A, rcode: NOERROR } }]
  - name: broken-servfail
    description: the authoritative server answers SERVFAIL, the lab resolver passes it on
    faults: [{ target: dns, type: servfail, qname: api.iot.example.com }]
    expect:
      result: fail
      class: dns.servfail
      labSaw: [{ source: ${LAB_DNS_NAME}, type: answer, match: { name: api.iot.example.com, type: A, rcode: SERVFAIL } }]
  - name: broken-lab-dns-refused
    description: a fault on the lab's own resolver (no simulator of the scenario's) reaches the client too
    faults: [{ target: ${LAB_DNS_NAME}, type: refused }]
    expect:
      result: fail
      class: dns.refused
      labSaw: [{ source: ${LAB_DNS_NAME}, type: toxic-applied, match: { type: refused } }]
`;
