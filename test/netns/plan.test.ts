import { describe, expect, it } from 'vitest';
import { parseNftCounters } from '../../harness/topology/netns/apply.js';
import { explainRoute } from '../../harness/topology/netns/explain.js';
import type { TopologyInput } from '../../harness/topology/netns/model.js';
import { describePlan, planNetns, renderNftTable } from '../../harness/topology/netns/plan.js';

function twoHosts(): TopologyInput {
  return {
    labId: 't1',
    segments: [{ name: 'lan', cidr: '198.51.100.0/24' }],
    hosts: [
      { name: 'device', segments: [{ segment: 'lan', address: '198.51.100.10' }] },
      { name: 'cloud', segments: [{ segment: 'lan', address: '198.51.100.20' }] },
    ],
  };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('netns plan (no root)', () => {
  it('puts bridges in the switch namespace and veth peers straight into it; nothing in the root ns', () => {
    const cmds = describePlan(planNetns(twoHosts()));
    expect(cmds).toContain('ip netns add fl-t1-sw');
    expect(cmds).toContain('ip netns add fl-t1-device');
    expect(cmds).toContain('ip -n fl-t1-sw link add br0-lan type bridge');
    expect(cmds).toContain('ip -n fl-t1-device link add eth0 type veth peer name device-0.0 netns fl-t1-sw');
    expect(cmds).toContain('ip -n fl-t1-device addr add 198.51.100.10/24 dev eth0');
    expect(cmds).toContain('ip -n fl-t1-sw link set device-0.0 master br0-lan');
    expect(cmds).toContain('write /etc/netns/fl-t1-device/resolv.conf');
    // Every link command names a lab namespace: no `ip link` in the root namespace.
    for (const c of cmds.filter((x) => x.startsWith('ip ') && !x.startsWith('ip netns'))) {
      expect(c).toMatch(/^ip -n fl-t1-/);
    }
  });

  it('keeps every interface name within 15 characters', () => {
    const t: TopologyInput = {
      labId: 'abcdefghij',
      segments: [{ name: 'a-very-long-segment', cidr: '100.64.0.0/24' }],
      hosts: [
        {
          name: 'averyveryverylonghost',
          segments: [{ segment: 'a-very-long-segment', address: '100.64.0.2' }],
        },
      ],
    };
    expect(codeOf(() => planNetns(t))).toBe('E_BAD_OPTION'); // host name > 20 chars
    t.hosts[0]!.name = 'averyveryverylongho';
    const plan = planNetns(t);
    const names = [plan.hosts[0]!.interfaces[0]!.peer, plan.hosts[0]!.interfaces[0]!.bridge];
    for (const n of names) expect(n.length).toBeLessThanOrEqual(15);
  });

  it.each([
    ['172.16.5.10', 'E_ADDRESS_NOT_LAB'],
    ['192.168.1.10', 'E_ADDRESS_NOT_LAB'],
    ['169.254.1.10', 'E_ADDRESS_NOT_LAB'],
    ['10.0.0.1', 'E_ADDRESS_NOT_LAB'],
    ['198.51.100.300', 'E_BAD_ADDRESS'],
  ])('rejects %s with %s', (addr, code) => {
    const t = twoHosts();
    t.segments = [{ name: 'lan', cidr: `${addr}/24` }];
    expect(codeOf(() => planNetns(t))).toBe(code);
  });

  it('names the lab ranges in the error and accepts the four lab ranges', () => {
    const t = twoHosts();
    t.segments = [{ name: 'lan', cidr: '172.16.5.0/24' }];
    expect(() => planNetns(t)).toThrow(
      /outside the lab address plan \(198\.51\.100\.0\/24, 203\.0\.113\.0\/24/,
    );
    for (const cidr of ['198.51.100.0/24', '203.0.113.0/24', '100.64.0.0/24', '198.19.0.0/24']) {
      const base = cidr.split('/')[0]!.split('.').slice(0, 3).join('.');
      const ok = twoHosts();
      ok.segments = [{ name: 'lan', cidr }];
      ok.hosts[0]!.segments![0]!.address = `${base}.10`;
      ok.hosts[1]!.segments![0]!.address = `${base}.20`;
      expect(planNetns(ok).hosts).toHaveLength(2);
    }
  });

  it('rejects an address off its segment, a duplicate, an unknown segment, a far gateway', () => {
    const t = twoHosts();
    t.hosts[0]!.segments![0]!.address = '203.0.113.5';
    expect(codeOf(() => planNetns(t))).toBe('E_TOPOLOGY');
    const dup = twoHosts();
    dup.hosts[1]!.segments![0]!.address = '198.51.100.10';
    expect(codeOf(() => planNetns(dup))).toBe('E_TOPOLOGY');
    const seg = twoHosts();
    seg.hosts[0]!.segments![0]!.segment = 'wan';
    expect(codeOf(() => planNetns(seg))).toBe('E_TOPOLOGY');
    const gw = twoHosts();
    gw.hosts[0]!.routes = [{ to: 'default', via: '198.18.0.1' }];
    expect(codeOf(() => planNetns(gw))).toBe('E_TOPOLOGY');
    const outside = twoHosts();
    outside.hosts[0]!.routes = [{ to: '172.16.0.0/24', via: '198.51.100.20' }];
    expect(codeOf(() => planNetns(outside))).toBe('E_ADDRESS_NOT_LAB');
  });

  it('renders DROP and REJECT rules with counters and fl:<index> comments', () => {
    const nft = renderNftTable([
      { action: 'drop', proto: 'tcp', port: 8883 },
      { action: 'reject', proto: 'tcp', port: 5671, to: '203.0.113.10' },
      { action: 'reject', proto: 'udp', port: [1000, 2000], chain: 'output' },
    ]);
    expect(nft).toContain('table inet fieldlab {');
    expect(nft).toContain('tcp dport 8883 counter drop comment "fl:0"');
    expect(nft).toContain(
      'ip daddr 203.0.113.10/32 tcp dport 5671 counter reject with tcp reset comment "fl:1"',
    );
    expect(nft).toContain(
      'udp dport 1000-2000 counter reject with icmpx type port-unreachable comment "fl:2"',
    );
    // Default chains: input and forward.
    expect(nft.match(/comment "fl:0"/g)).toHaveLength(2);
    expect(nft.match(/comment "fl:2"/g)).toHaveLength(1);
    expect(codeOf(() => renderNftTable([{ action: 'drop', port: 80 }]))).toBe('E_TOPOLOGY');
    expect(codeOf(() => renderNftTable([{ action: 'drop', from: '192.168.1.1' }]))).toBe('E_ADDRESS_NOT_LAB');
  });

  it('parses nft JSON counters back to rules', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        {
          rule: {
            chain: 'input',
            comment: 'fl:0',
            expr: [{ counter: { packets: 3, bytes: 180 } }, { drop: null }],
          },
        },
        {
          rule: {
            chain: 'forward',
            comment: 'fl:1',
            expr: [{ counter: { packets: 1, bytes: 60 } }, { reject: {} }],
          },
        },
        { rule: { chain: 'input', expr: [{ accept: null }] } },
      ],
    });
    expect(parseNftCounters(json)).toEqual([
      { index: 0, chain: 'input', action: 'drop', packets: 3, bytes: 180 },
      { index: 1, chain: 'forward', action: 'reject', packets: 1, bytes: 60 },
    ]);
  });

  it('plans WireGuard: config with AllowedIPs and endpoint, wireguard-go, routes via the interface', () => {
    const t = twoHosts();
    t.hosts[0]!.wireguard = {
      ifname: 'wg-arc',
      address: '100.127.10.2/32',
      peers: [{ host: 'cloud', allowedIps: ['100.127.0.0/16'] }],
    };
    t.hosts[1]!.wireguard = {
      address: '100.127.0.1/32',
      peers: [{ host: 'device', allowedIps: ['100.127.10.2/32'], endpoint: false }],
    };
    const plan = planNetns(t, { workDir: '/tmp/x' });
    const conf = plan.steps.find((s) => s.kind === 'file' && s.path === '/tmp/x/wg-arc.conf');
    expect(conf && 'content' in conf ? conf.content : '').toMatch(
      new RegExp(
        'PrivateKey = <private-key:device>[\\s\\S]*PublicKey = <public-key:cloud>\\n' +
          'AllowedIPs = 100\\.127\\.0\\.0/16\\nEndpoint = 198\\.51\\.100\\.20:51820',
      ),
    );
    const cmds = describePlan(plan);
    expect(cmds).toContain('ip netns exec fl-t1-device wireguard-go wg-arc');
    expect(cmds).toContain('ip -n fl-t1-device route replace 100.127.0.0/16 dev wg-arc');
    expect(plan.hosts[1]!.wgIfname).toBe('flt1w1');
    t.hosts[1]!.wireguard.ifname = 'wg-arc';
    expect(codeOf(() => planNetns(t))).toBe('E_TOPOLOGY');
  });

  it('plans tbf on the host side for egress and on the switch side for ingress', () => {
    const t = twoHosts();
    t.hosts[0]!.bandwidth = [{ rate: '2mbit', direction: 'both' }];
    const cmds = describePlan(planNetns(t));
    expect(
      cmds.some((c) => /^ip netns exec fl-t1-device tc qdisc replace dev eth0 root tbf rate 2mbit/.test(c)),
    ).toBe(true);
    expect(
      cmds.some((c) =>
        /^ip netns exec fl-t1-sw tc qdisc replace dev device-0\.0 root tbf rate 2mbit/.test(c),
      ),
    ).toBe(true);
  });

  it('explains a route that misses the tunnel, in the report sentence', () => {
    const e = explainRoute({
      destination: '203.0.113.67',
      port: 8036,
      dev: 'eth0',
      wgIfname: 'wg-arc',
      allowedIps: ['100.127.0.0/16'],
    });
    expect(e.sentence).toBe(
      'SYN to 203.0.113.67:8036 left via eth0, not wg-arc: AllowedIPs lacks it (has 100.127.0.0/16); ' +
        'fix: add 203.0.113.67/32 to AllowedIPs',
    );
    expect(e.viaTunnel).toBe(false);
    const ok = explainRoute({
      destination: '203.0.113.67',
      dev: 'wg-arc',
      wgIfname: 'wg-arc',
      allowedIps: ['100.127.0.0/16', '203.0.113.67/32'],
    });
    expect(ok.viaTunnel && ok.allowed).toBe(true);
  });
});
