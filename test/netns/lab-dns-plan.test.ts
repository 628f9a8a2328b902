import { describe, expect, it } from 'vitest';
import { netnsLabDns } from '../../harness/backends/netns/lab-dns.js';
import type { LabSimulator } from '../../harness/lab/lab.js';
import { LAB_DNS_HOST, LAB_DNS_NAME } from '../../harness/lab/lab-dns.js';
import { networkSchema } from '../../harness/scenario/model.js';
import { planNetns, renderResolvConf } from '../../harness/topology/netns/plan.js';

/**
 * Where a netns lab's DNS is (pure: no namespaces): the scenario's server on port 53, else the lab's own
 * resolver on a host with an address on every segment that nothing of the scenario names.
 */
const network = networkSchema.parse({
  segments: [
    { name: 'lan', cidr: '198.51.100.0/24' },
    { name: 'wan', cidr: '203.0.113.0/24' },
    { name: 'link', cidr: '100.64.0.0/31' },
  ],
  hosts: [
    { name: 'device', segments: [{ segment: 'lan', address: '198.51.100.10' }] },
    {
      name: 'router',
      segments: [
        { segment: 'lan', address: '198.51.100.1' },
        { segment: 'wan', address: '203.0.113.1' },
        { segment: 'link', address: '100.64.0.0' },
      ],
      // A rule about an address nobody has: the lab resolver must not take it.
      firewall: [{ action: 'drop', chain: 'forward', to: '203.0.113.254' }],
    },
    { name: 'cloud', names: ['ns1.example.net'], segments: [{ segment: 'wan', address: '203.0.113.20' }] },
  ],
});

const geoDns = (port?: number): LabSimulator => ({
  name: 'dns',
  type: 'geo-dns',
  host: 'ns1.example.net',
  ...(port !== undefined ? { port } : {}),
  options: {
    zones: [{ origin: 'IoT.example.com.', soa: { mname: 'ns1.example.net', rname: 'h.example.net' } }],
  },
});

describe('netnsLabDns', () => {
  it("without a DNS of the scenario's on port 53, adds the lab resolver's host on every segment it fits", () => {
    // The client's URL names 198.51.100.254: taken too.
    const dns = netnsLabDns(network, [geoDns(5300)], [{ argv: ['curl', 'https://198.51.100.254/'] }]);
    const host = dns.network.hosts.at(-1);
    expect(host).toMatchObject({
      name: 'labdns',
      names: [LAB_DNS_HOST],
      segments: [
        { segment: 'lan', address: '198.51.100.253/24' },
        { segment: 'wan', address: '203.0.113.253/24' },
      ],
      forward: false,
    });
    // The scenario's own network is left as it was.
    expect(network.hosts).toHaveLength(3);
    expect(dns.nameservers).toEqual(['198.51.100.253', '203.0.113.253']);
    expect(dns.answersLabNames).toBe(true);
    expect(dns.server).toEqual({ name: LAB_DNS_NAME, address: '198.51.100.253' });
    expect(dns.resolver).toMatchObject({
      name: LAB_DNS_NAME,
      type: 'resolver',
      host: LAB_DNS_HOST,
      port: 53,
      options: {
        cache: false,
        ecs: { ipv4: 32, ipv6: 128 },
        // The geo-dns by its address in the namespaces: the resolver runs in a process of its own.
        forward: [{ zone: 'iot.example.com', to: ['203.0.113.20:5300'] }],
      },
    });
  });

  it('takes another host name when the scenario has a host called labdns', () => {
    const taken = networkSchema.parse({
      ...network,
      hosts: [...network.hosts, { name: 'labdns', segments: [{ segment: 'lan', address: '198.51.100.2' }] }],
    });
    expect(netnsLabDns(taken, [], []).network.hosts.at(-1)?.name).toBe('labdns2');
  });

  it('a resolver declared on port 53 is the DNS, and answers the lab names', () => {
    const resolver: LabSimulator = { name: 'isp', type: 'resolver', host: 'ns1.example.net', port: 53 };
    const dns = netnsLabDns(network, [geoDns(5300), resolver], []);
    expect(dns).toEqual({
      network,
      nameservers: ['203.0.113.20'],
      answersLabNames: true,
      server: { name: 'isp', address: '203.0.113.20' },
    });
  });

  it('a geo-dns on port 53 (its default on netns) stays the DNS, as before: it locates each device itself', () => {
    expect(netnsLabDns(network, [geoDns()], [])).toEqual({
      network,
      nameservers: ['203.0.113.20'],
      answersLabNames: false,
      server: { name: 'dns', address: '203.0.113.20' },
    });
  });

  it('no lab resolver where no segment has room, or where the scenario uses its names', () => {
    const tiny = networkSchema.parse({
      segments: [{ name: 'link', cidr: '100.64.0.0/31' }],
      hosts: [{ name: 'a', segments: [{ segment: 'link', address: '100.64.0.0' }] }],
    });
    expect(netnsLabDns(tiny, [], [])).toEqual({ network: tiny, nameservers: [], answersLabNames: false });
    const own: LabSimulator = { name: LAB_DNS_NAME, type: 'https-server', host: 'ns1.example.net' };
    expect(netnsLabDns(network, [own], []).resolver).toBeUndefined();
  });
});

describe("a namespace's resolv.conf and hosts file", () => {
  const topology = {
    labId: 't1',
    segments: [
      { name: 'lan', cidr: '198.51.100.0/24' },
      { name: 'wan', cidr: '203.0.113.0/24' },
    ],
    hosts: [
      { name: 'device', segments: [{ segment: 'lan', address: '198.51.100.10' }] },
      { name: 'cloud', segments: [{ segment: 'wan', address: '203.0.113.20' }] },
      { name: 'vpn' },
    ],
    dns: { nameservers: ['198.51.100.254', '203.0.113.254'], hosts: {}, localName: 'buildbox' },
  };
  const plan = planNetns(topology);
  const resolvOf = (host: string) => {
    const h = plan.hosts.find((x) => x.name === host);
    return h ? renderResolvConf(plan.topology, h) : '';
  };

  it('names the server on its own segment only, or every server when it is on none', () => {
    expect(resolvOf('device')).toBe('# fieldlab netns lab\nnameserver 198.51.100.254\n');
    expect(resolvOf('cloud')).toBe('# fieldlab netns lab\nnameserver 203.0.113.254\n');
    expect(resolvOf('vpn')).toBe(
      '# fieldlab netns lab\nnameserver 198.51.100.254\nnameserver 203.0.113.254\n',
    );
  });

  it("keeps the machine's own name at 127.0.1.1, as Debian's hosts file does", () => {
    const hosts = plan.steps.find((s) => s.kind === 'file' && s.path.endsWith('fl-t1-device/hosts'));
    expect(hosts && 'content' in hosts ? hosts.content : '').toMatch(/^127\.0\.1\.1\tbuildbox$/m);
  });
});
