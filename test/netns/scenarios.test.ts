import { beforeAll, describe, expect, it } from 'vitest';
import { runAll } from '../../harness/runner/run.js';
import { loadScenarios, loadYamlScenario } from '../../harness/scenario/load.js';
import { listRecords } from '../../harness/topology/netns/index.js';
import { missing } from '../helpers/capability.js';
import { expectAllPassed } from '../helpers/results.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { namespacesOf, rootLinks, strayLinks, wireguardGoPids } from './helpers.js';

/**
 * The catalogue's netns-capable scenarios on real namespaces, as `fieldlab run --backend netns` runs
 * them: the seed's Arc AllowedIPs case (with the kernel's explanation) and AMQP behind a real nftables
 * firewall. Every lab is gone afterwards.
 */
describe.skipIf(missing('netns', 'cmd:wireguard-go', 'cmd:wg', 'cmd:curl'))(
  'scenario catalogue on netns',
  () => {
    useTempStateDir('fl-cat-netns-');
    let linksBefore: string[];
    let wgBefore: number[];
    beforeAll(() => {
      linksBefore = rootLinks();
      wgBefore = wireguardGoPids();
    });

    // Every netns scenario of the catalogue: each simulator is a process of its own now (bounded generously:
    // the machine is shared). Two labs at once: each has namespaces, bridges and nftables tables of its
    // own; the runner keeps labs that name one WireGuard interface (arc-allowedips's wg-arc) apart.
    it('arc-allowedips and amqp-port-blocked behave as expected, then leave nothing', {
      timeout: 900_000,
    }, async () => {
      const { loaded, errors } = await loadScenarios(['scenarios']);
      expect(errors).toEqual([]);
      const netns = loaded.filter((l) => l.scenario.backends.includes('netns'));
      expect(netns.map((l) => l.scenario.name)).toEqual(
        expect.arrayContaining(['amqp-port-blocked', 'arc-allowedips']),
      );
      const run = await runAll(netns, { backend: 'netns', concurrency: 2 });
      expectAllPassed(run.results);
      const arcBroken = run.results.find((r) => r.scenario === 'arc-allowedips' && r.variant === 'broken');
      expect(arcBroken?.explanation).toContain(
        'SYN to 203.0.113.67:8036 left via eth0, not wg-arc: AllowedIPs lacks it (has 100.127.0.0/16); ' +
          'fix: add 203.0.113.67/32 to AllowedIPs',
      );
      // curl's SYN and its retransmissions, each counted by the rule.
      expect(arcBroken?.explanation).toEqual(
        expect.arrayContaining([
          expect.stringMatching(
            /^inet firewall: drop tcp to 203\.0\.113\.67 port 8036 \(forward\) matched \d+ packet/,
          ),
        ]),
      );
      const refused = run.results.find(
        (r) => r.scenario === 'amqp-port-blocked' && r.variant === 'broken-refused',
      );
      expect(refused?.observed).toMatchObject({ result: 'fail', class: 'tcp.refused' });

      // Nothing left: namespaces of ours, links, wireguard-go processes, state records.
      expect(namespacesOf(/^fl-v[0-9a-f]{6}-/)).toEqual([]);
      expect(strayLinks(linksBefore)).toEqual([]);
      expect(wireguardGoPids().filter((p) => !wgBefore.includes(p))).toEqual([]);
      expect(listRecords()).toEqual([]);
    });
  },
);

/**
 * The lab's DNS server inside the namespaces: every namespace's resolv.conf points at it, so dig (given
 * no server) resolves through it, and its records give the namespace addresses of lab hosts.
 */
const dnsScenario = `
name: netns-dns
title: dig resolves a lab name through the lab DNS server in the namespaces
backends: [netns]
requires: ['cmd:dig']
lab:
  network:
    segments: [{ name: lan, cidr: 198.51.100.0/24 }, { name: wan, cidr: 203.0.113.0/24 }]
    hosts:
      - { name: device, segments: [{ segment: lan, address: 198.51.100.10 }], routes: [{ to: default, via: 198.51.100.1 }] }
      - name: router
        forward: true
        segments: [{ segment: lan, address: 198.51.100.1 }, { segment: wan, address: 203.0.113.1 }]
      - { name: ns1, names: [ns1.iot.example.com], segments: [{ segment: lan, address: 198.51.100.53 }] }
      - name: api
        names: [api.iot.example.com]
        segments: [{ segment: wan, address: 203.0.113.30 }]
        routes: [{ to: default, via: 203.0.113.1 }]
  simulators:
    - name: dns
      type: geo-dns
      host: ns1.iot.example.com
      options:
        zones:
          - origin: global.example.com
            soa: { mname: ns1.iot.example.com, rname: hostmaster.iot.example.com, minimum: 60 }
            records: [{ name: device-api, type: CNAME, value: api.iot.example.com }]
    - { name: api, type: https-server, host: api.iot.example.com, port: 8443, options: { routes: { /: { body: hello } } } }
client:
  type: command
  # No server given: dig asks the one in the namespace's resolv.conf.
  argv: [dig, +time=1, +tries=1, device-api.global.example.com, A]
variants:
  - name: broken
    simulators: { dns: { faults: { device-api.global.example.com: nxdomain } } }
    expect:
      result: fail
      class: dns.nxdomain
      labSaw: [{ source: dns, type: query, match: { name: device-api.global.example.com, rcode: NXDOMAIN } }]
  - name: fixed
    expect:
      result: pass
      # The CNAME, then the API host's namespace address (the lab's own names are served too).
      output: 'api\\.iot\\.example\\.com\\.\\s+\\d+\\s+IN\\s+A\\s+203\\.0\\.113\\.30'
      labSaw: [{ source: dns, type: query, match: { name: device-api.global.example.com } }]
`;

describe.skipIf(missing('netns', 'cmd:dig'))('the lab DNS server on netns', () => {
  useTempStateDir('fl-netns-dns-');
  it('answers programs in every namespace through their resolv.conf', { timeout: 60_000 }, async () => {
    const scenario = loadYamlScenario('netns-dns.yaml', dnsScenario);
    const run = await runAll([{ scenario, file: 'netns-dns.yaml' }], { backend: 'netns' });
    expectAllPassed(run.results);
    // The DNS server saw the query from the device's own address (it is in the device's network).
    const fixed = run.results.find((r) => r.variant === 'fixed');
    const query = fixed?.events.find((e) => e.source === 'dns' && e.type === 'query');
    expect(query?.data).toMatchObject({ client: expect.stringMatching(/^198\.51\.100\.10\b/) });
    expect(listRecords()).toEqual([]);
  });
});
