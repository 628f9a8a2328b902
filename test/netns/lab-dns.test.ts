import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { applyNetns, type NetnsLab } from '../../harness/topology/netns/apply.js';
import { listRecords } from '../../harness/topology/netns/state.js';
import { missing } from '../helpers/capability.js';
import { expectAllPassed } from '../helpers/results.js';
import { runScenarioText } from '../helpers/scenario-text.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { within } from '../helpers/within.js';
import { namespacesOf } from './helpers.js';

/**
 * Issue 18.1 on netns: every namespace resolves through the lab's DNS. Without a resolver of the
 * scenario's on port 53 (and without a geo-dns there), the lab runs its own resolver `lab-dns` on a host
 * of its own with an address on every segment; each namespace's resolv.conf names its own segment's, and
 * the hosts files leave the lab names to it, so a DNS fault on the geo-dns reaches curl. `client.resolver`
 * makes the client's namespace name the resolver the scenario (or the variant) picks.
 */
useTempStateDir('fl-netns-dns-');

describe.skipIf(missing('netns', 'cmd:curl', 'cmd:getent'))('the lab DNS on netns', () => {
  it('without a resolver of its own, the lab resolver answers lab names and a geo-dns fault reaches curl', {
    timeout: 300_000,
  }, async () => {
    const run = await runScenarioText(LAB_RESOLVER, 'netns');
    expectAllPassed(run.results);
    expect(run.results.map((r) => r.variant)).toEqual([
      'fixed',
      'fixed-getent',
      'fixed-other-segment',
      'fixed-resolv-conf',
      'broken-servfail',
    ]);
    const broken = run.results.find((r) => r.variant === 'broken-servfail');
    expect(broken?.client?.stderr).toMatch(/Could not resolve host: api\.iot\.example\.com/);
    // The hosts file leaves the lab names to the resolver; the namespace names stay.
    const files = run.results.find((r) => r.variant === 'fixed-resolv-conf')?.client?.stdout ?? '';
    expect(files).not.toMatch(/api\.iot\.example\.com/);
    expect(files).toMatch(/^198\.51\.100\.1\trouter$/m);
    expect(namespacesOf(/^fl-v[0-9a-f]{6}-/)).toEqual([]);
    expect(listRecords()).toEqual([]);
  });

  it('client.resolver picks one of two resolvers on port 53, and a variant picks the other', {
    timeout: 300_000,
  }, async () => {
    const run = await runScenarioText(CLIENT_RESOLVER, 'netns');
    expectAllPassed(run.results);
    expect(run.results.map((r) => r.variant)).toEqual(['fixed-office', 'fixed-isp', 'broken-unknown-name']);
    expect(namespacesOf(/^fl-v[0-9a-f]{6}-/)).toEqual([]);
  });
});

describe.skipIf(missing('netns'))("a namespace's name files for one run", () => {
  let lab: NetnsLab | undefined;
  let running: ChildProcess | undefined;
  afterAll(async () => {
    running?.kill('SIGKILL');
    await lab?.teardown();
  });

  it('programs started while they are replaced read the new ones, running ones keep theirs, and they come back', async () => {
    lab = await applyNetns({
      labId: `dns${process.pid}`.slice(0, 10),
      segments: [{ name: 'lan', cidr: '198.51.100.0/24' }],
      hosts: [{ name: 'device', segments: [{ segment: 'lan', address: '198.51.100.10' }] }],
      dns: { nameservers: ['198.51.100.53'], hosts: { 'api.iot.example.com': '198.51.100.20' } },
    });
    const cat = async () => (await lab?.execIn('device', ['cat', '/etc/resolv.conf', '/etc/hosts']))?.stdout;
    const before = await cat();
    expect(before).toMatch(/^nameserver 198\.51\.100\.53$/m);
    // Started before: its mount is of the lab's own files (`ip netns exec` bind-mounts them at exec). It
    // says it runs, then prints its resolv.conf once told to (after the files are replaced).
    const child = spawn(
      'ip',
      ['netns', 'exec', lab.ns('device'), 'sh', '-c', 'echo ready; read go; cat /etc/resolv.conf'],
      { stdio: ['pipe', 'pipe', 'ignore'] },
    );
    running = child;
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    await within(
      new Promise<void>((resolve) => {
        const check = () => (out.startsWith('ready\n') ? resolve() : child.stdout.once('data', check));
        check();
      }),
      10_000,
      'the program to start',
    );
    const restore = lab.replaceNameFiles('device', {
      resolvConf: 'nameserver 198.51.100.54\n',
      hosts: '127.0.0.1\tlocalhost\n',
    });
    expect(await cat()).toBe('nameserver 198.51.100.54\n127.0.0.1\tlocalhost\n');
    child.stdin.end('go\n');
    await within(exited, 10_000, 'the program to print its resolv.conf');
    expect(out).toMatch(/^nameserver 198\.51\.100\.53$/m);
    expect(out).not.toMatch(/198\.51\.100\.54/);
    restore();
    expect(await cat()).toBe(before);
  });
});

/** A device behind a router, the API and its geo-dns (on 5300, so it is not the DNS) on the WAN. */
const LAB_RESOLVER = `
name: netns-lab-resolver
title: the lab's own resolver answers a device in its namespace
requires: [netns]
backends: [netns]
timeout: 60s
lab:
  network:
    segments: [{ name: lan, cidr: 198.51.100.0/24 }, { name: wan, cidr: 203.0.113.0/24 }]
    hosts:
      - { name: device, segments: [{ segment: lan, address: 198.51.100.10 }], routes: [{ to: default, via: 198.51.100.1 }] }
      - name: router
        forward: true
        segments: [{ segment: lan, address: 198.51.100.1 }, { segment: wan, address: 203.0.113.1 }]
      - name: cloud
        names: [api.iot.example.com, ns1.example.net]
        segments: [{ segment: wan, address: 203.0.113.20 }]
        routes: [{ to: default, via: 203.0.113.1 }]
  simulators:
    - { name: api, type: https-server, host: api.iot.example.com, port: 8443 }
    - name: dns
      type: geo-dns
      host: ns1.example.net
      port: 5300
      options:
        zones: [{ origin: iot.example.com, soa: { mname: ns1.example.net, rname: hostmaster.example.net } }]
client:
  type: command
  host: device
  argv: [curl, --silent, --show-error, --fail, --max-time, '10', --cacert, '\${lab.ca}', 'https://api.iot.example.com:8443/']
variants:
  - name: fixed
    description: curl's lookup reaches the lab resolver from the device's address and is forwarded to the zone's geo-dns
    expect:
      result: pass
      labSaw:
        - { source: lab-dns, type: query, match: { client: 198.51.100.10, name: api.iot.example.com } }
        - { source: lab-dns, type: answer, match: { name: api.iot.example.com, type: A, rcode: NOERROR, source: upstream } }
        - { source: dns, type: query, match: { name: api.iot.example.com } }
  - name: fixed-getent
    description: the system's resolver (getaddrinfo) asks it too
    client: { argv: [getent, hosts, api.iot.example.com] }
    expect:
      result: pass
      output: '^203\\.0\\.113\\.20\\s+api\\.iot\\.example\\.com'
      labSaw: [{ source: lab-dns, type: query, match: { client: 198.51.100.10, name: api.iot.example.com } }]
  - name: fixed-other-segment
    description: a namespace on the WAN (the cloud host's) asks the lab resolver's address on the WAN
    client: { argv: [sh, -c, 'ns=$(ip netns identify $$); exec ip netns exec $\${ns%-device}-cloud getent hosts api.iot.example.com'] }
    expect:
      result: pass
      output: '^203\\.0\\.113\\.20\\s+api\\.iot\\.example\\.com'
      labSaw: [{ source: lab-dns, type: query, match: { client: 203.0.113.20, name: api.iot.example.com } }]
  - name: fixed-resolv-conf
    description: the device's resolv.conf names the lab resolver's address on the device's own segment
    client: { argv: [cat, /etc/resolv.conf, /etc/hosts] }
    expect: { result: pass, output: '^nameserver 198\\.51\\.100\\.254$' }
  - name: broken-servfail
    description: the geo-dns answers SERVFAIL for the name; the lab resolver passes it on
    faults: [{ target: dns, type: servfail, qname: api.iot.example.com }]
    expect:
      result: fail
      class: dns.servfail
      labSaw:
        - { source: dns, type: toxic-applied, match: { type: servfail } }
        - { source: lab-dns, type: answer, match: { name: api.iot.example.com, type: A, rcode: SERVFAIL } }
`;

/** Two resolvers on port 53 (an ISP's, an office's): the scenario picks the office's, a variant the ISP's. */
const CLIENT_RESOLVER = `
name: netns-client-resolver
title: client.resolver names the device's resolver in its namespace
requires: [netns]
backends: [netns]
timeout: 60s
lab:
  network:
    segments: [{ name: lan, cidr: 198.51.100.0/24 }]
    hosts:
      - { name: device, segments: [{ segment: lan, address: 198.51.100.10 }] }
      - { name: isp, names: [isp.resolver.example], segments: [{ segment: lan, address: 198.51.100.53 }] }
      - { name: office, names: [office.resolver.example], segments: [{ segment: lan, address: 198.51.100.54 }] }
      - { name: cloud, names: [api.iot.example.com], segments: [{ segment: lan, address: 198.51.100.20 }] }
  simulators:
    - { name: api, type: https-server, host: api.iot.example.com, port: 8443 }
    - { name: isp, type: resolver, host: isp.resolver.example, port: 53, options: { tls: false, cache: false } }
    - { name: office, type: resolver, host: office.resolver.example, port: 53, options: { tls: false, cache: false } }
client:
  type: command
  host: device
  resolver: office
  argv: [getent, hosts, api.iot.example.com]
variants:
  - name: fixed-office
    description: the scenario's pick (the ISP's resolver, declared first, is every other namespace's DNS)
    expect:
      result: pass
      output: '^198\\.51\\.100\\.20\\s+api\\.iot\\.example\\.com'
      labSaw: [{ source: office, type: query, match: { client: 198.51.100.10, name: api.iot.example.com } }]
      labNeverSaw: [{ source: isp, type: query }]
  - name: fixed-isp
    description: the variant picks the ISP's resolver
    client: { resolver: isp }
    expect:
      result: pass
      output: '^198\\.51\\.100\\.20\\s+api\\.iot\\.example\\.com'
      labSaw: [{ source: isp, type: query, match: { client: 198.51.100.10, name: api.iot.example.com } }]
      labNeverSaw: [{ source: office, type: query }]
  - name: broken-unknown-name
    description: a name outside the lab, asked of the ISP's resolver, is refused
    client: { resolver: isp, argv: [curl, --silent, --show-error, --max-time, '10', 'https://updates.vendor.example/'] }
    expect:
      result: fail
      class: dns.refused
      labSaw: [{ source: isp, type: answer, match: { name: updates.vendor.example, rcode: REFUSED } }]
      labNeverSaw: [{ source: office, type: query }]
`;
