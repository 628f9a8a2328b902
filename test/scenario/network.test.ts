import { describe, expect, it } from 'vitest';
import { describeRule } from '../../harness/backends/netns/explain.js';
import { hostOfName, topologyFor } from '../../harness/backends/netns/network.js';
import { neededCapabilities } from '../../harness/runner/run-variant.js';
import { loadYamlScenario, ScenarioError } from '../../harness/scenario/load.js';
import { clientHostOf } from '../../harness/scenario/model.js';
import { planNetns } from '../../harness/topology/netns/index.js';

/** The netns backend's part of the scenario model: validated without root, planned without root. */
const scenario = `
name: vpn
title: VPN
backends: [loopback, netns]
lab:
  network:
    segments: [{ name: lan, cidr: 198.51.100.0/24 }]
    hosts:
      - name: device
        segments: [{ segment: lan, address: 198.51.100.10 }]
        wireguard: &wg
          ifname: wg-x
          address: 100.64.1.2/32
          peers: [{ host: gw, allowedIps: [100.127.0.0/16] }]
      - name: gw
        names: [api.example.com]
        segments: [{ segment: lan, address: 198.51.100.2/24 }]
        wireguard: { address: 100.127.0.1/32, peers: [{ host: device, allowedIps: [100.64.1.2/32], endpoint: false }] }
        firewall: [{ action: drop, proto: tcp, port: 8443 }]
  simulators:
    - { name: api, type: https-server, host: api.example.com, port: 8443 }
client:
  type: command
  argv: [curl, '\${api.url}']
variants:
  - name: broken
    faults: [{ target: api, type: blackhole, backends: [loopback] }]
    expect: { result: fail, class: tcp.timeout, explains: 'firewall: drop' }
  - name: fixed
    network:
      gw: { firewall: [] }
      device:
        wireguard:
          <<: *wg
          peers: [{ host: gw, allowedIps: [100.127.0.0/16, 198.51.100.2/32] }]
    expect: pass
`;

function issuesOf(text: string): string[] {
  try {
    loadYamlScenario('vpn.yaml', text);
  } catch (err) {
    if (err instanceof ScenarioError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  return [];
}

describe('scenario network (netns backend)', () => {
  it('loads lab.network, variant patches (with YAML merge keys) and per-backend faults', () => {
    const s = loadYamlScenario('vpn.yaml', scenario);
    expect(s.lab.network?.hosts.map((h) => h.names)).toEqual([[], ['api.example.com']]);
    const fixed = s.variants[1]!;
    expect(fixed.network.device?.wireguard).toMatchObject({
      ifname: 'wg-x',
      address: '100.64.1.2/32',
      peers: [{ host: 'gw', allowedIps: ['100.127.0.0/16', '198.51.100.2/32'] }],
    });
    expect(s.variants[0]!.faults[0]).toMatchObject({ type: 'blackhole', backends: ['loopback'] });
    expect(clientHostOf(s)).toBe('device');
  });

  it('turns names into hosts-file entries and applies a variant patch field by field', () => {
    const s = loadYamlScenario('vpn.yaml', scenario);
    const net = s.lab.network!;
    const topo = topologyFor(net, s.variants[1]!.network, 'ab12');
    expect(topo.dns).toEqual({ nameservers: [], hosts: { 'api.example.com': '198.51.100.2' } });
    const gw = topo.hosts.find((h) => h.name === 'gw')!;
    expect(gw.firewall).toEqual([]);
    expect(gw.wireguard?.address).toBe('100.127.0.1/32');
    expect(hostOfName(net, 'api.example.com')).toEqual({ host: 'gw', address: '198.51.100.2' });
    expect(hostOfName(net, 'device')).toEqual({ host: 'device', address: '198.51.100.10' });
    expect(hostOfName(net, 'nowhere.example.com')).toBeUndefined();
    // The plan (what would run) routes the new AllowedIPs into the tunnel.
    const plan = planNetns(topo);
    const cmds = plan.steps.map((st) => JSON.stringify(st));
    expect(cmds.some((c) => c.includes('route replace 198.51.100.2/32 dev wg-x'))).toBe(true);
  });

  it('needs root-level tools only on netns, WireGuard tools when a host has an interface', () => {
    const s = loadYamlScenario('vpn.yaml', scenario);
    const v = s.variants[0]!;
    expect(neededCapabilities(s, v, 'loopback')).toEqual(['cmd:curl', 'userns']);
    expect(neededCapabilities(s, v, 'netns')).toEqual(['cmd:curl', 'netns', 'cmd:wireguard-go', 'cmd:wg']);
  });

  it('names what is wrong: no network, an unplaced simulator, an unknown host, a foreign backend', () => {
    const noNetwork = scenario
      .replace(/ {2}network:\n[\s\S]*?(?= {2}simulators:)/, '')
      .replace(/ {4}network:\n[\s\S]*?(?= {4}expect: pass)/, '');
    expect(issuesOf(noNetwork)).toEqual([
      'lab.network: the netns backend needs lab.network (segments and hosts) to build the namespaces from',
    ]);
    // A merge key whose anchor is gone is a scenario error too, not a crash.
    expect(issuesOf(scenario.replace('wireguard: &wg', 'wireguard:'))[0]).toMatch(
      /^\(yaml\): .*<<: \*anchor/,
    );
    expect(issuesOf(scenario.replace('names: [api.example.com]', 'names: []'))).toContain(
      "lab.simulators[0].host: api.example.com is on no lab.network host: add it to one host's names",
    );
    expect(
      issuesOf(scenario.replace('      gw: { firewall: [] }', '      gateway: { firewall: [] }')),
    ).toContain('variants[1].network.gateway: lab.network has no host gateway');
    expect(
      issuesOf(
        scenario.replace("  argv: [curl, '${api.url}']", "  host: phone\n  argv: [curl, '${api.url}']"),
      ),
    ).toEqual([
      'client.host: the client runs on network host phone, which lab.network does not have (hosts: device, gw)',
    ]);
    expect(issuesOf(scenario.replace('backends: [loopback, netns]', 'backends: [loopback]'))).toContain(
      'lab.network: lab.network is for the netns backend: add netns to backends',
    );
    expect(issuesOf(scenario.replace('backends: [loopback] }]', 'backends: [container] }]'))).toEqual([]);
    expect(
      issuesOf(scenario.replace('  - name: fixed\n', '  - name: fixed\n    backends: [container]\n')),
    ).toEqual(["variants[1].backends: container is not one of the scenario's backends (loopback, netns)"]);
  });

  it('describes firewall rules the way the report prints them', () => {
    expect(
      describeRule({ action: 'drop', chain: 'forward', proto: 'tcp', to: '203.0.113.67', port: 8036 }),
    ).toBe('drop tcp to 203.0.113.67 port 8036 (forward)');
    expect(describeRule({ action: 'reject', proto: 'tcp', port: [5670, 5672] })).toBe(
      'reject tcp port 5670-5672 (input+forward)',
    );
  });
});
