import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendFor, startLabOn } from '../../harness/backends/index.js';
import type { Lab } from '../../harness/lab/lab.js';
import { labFor } from '../../harness/lab/variant-lab.js';
import { runAll } from '../../harness/runner/run.js';
import { loadYamlScenario } from '../../harness/scenario/load.js';
import { listRecords } from '../../harness/topology/netns/index.js';
import { missing } from '../helpers/capability.js';
import { assertBuilt } from '../helpers/cli.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * issue 14 (3): on netns every simulator runs as its own process in its network host's namespace, so
 * every hop crosses the scenario's network, the simulators' own hops included: a firewall rule between
 * the proxy's host and the hub's host (nothing the client itself crosses) changes the outcome.
 *
 *   device, proxy ─lan─ corp (router) ─wan─ hub (https-server)
 */
const scenarioYaml = `
name: netns-placement
title: a proxy's own hop to the server crosses the router's firewall
backends: [netns]
requires: ['cmd:curl']
timeout: 40s
lab:
  network:
    segments: [{ name: lan, cidr: 198.51.100.0/24 }, { name: wan, cidr: 203.0.113.0/24 }]
    hosts:
      - { name: device, segments: [{ segment: lan, address: 198.51.100.10 }], routes: [{ to: default, via: 198.51.100.1 }] }
      - name: corp
        forward: true
        segments: [{ segment: lan, address: 198.51.100.1 }, { segment: wan, address: 203.0.113.1 }]
        # The device goes out only by the proxy.
        firewall: [{ action: reject, chain: forward, proto: tcp, from: 198.51.100.10 }]
      - name: proxy
        names: [proxy.corp.example.com]
        segments: [{ segment: lan, address: 198.51.100.3 }]
        routes: [{ to: default, via: 198.51.100.1 }]
      - name: hub
        names: [api.iot.example.com]
        segments: [{ segment: wan, address: 203.0.113.10 }]
        routes: [{ to: default, via: 203.0.113.1 }]
  simulators:
    - { name: api, type: https-server, host: api.iot.example.com, port: 8443, options: { routes: { /hello: { body: placed } } } }
    - name: proxy
      type: connect-proxy
      host: proxy.corp.example.com
      port: 3128
      # Its connect timeout: 10 s, then 504 (curl waits longer).
      options: { allowPorts: [8443] }
client:
  type: command
  host: device
  argv: [curl, -sS, --max-time, '25', --cacert, '\${lab.ca}', -x, 'http://proxy.corp.example.com:3128', 'https://api.iot.example.com:8443/hello']
variants:
  - name: fixed
    expect: { result: pass, output: placed }
  - name: broken
    description: the router drops what the proxy sends to the hub (the device's own traffic is untouched)
    network:
      corp:
        firewall:
          - { action: reject, chain: forward, proto: tcp, from: 198.51.100.10 }
          - { action: drop, chain: forward, proto: tcp, from: 198.51.100.3, to: 203.0.113.10, comment: proxy to hub }
    expect:
      result: fail
      class: proxy.bad-gateway
      explains: 'corp firewall: drop tcp from 198\\.51\\.100\\.3 to 203\\.0\\.113\\.10 \\(forward\\) matched \\d+ packet'
      labSaw: [{ source: proxy, type: upstream-error }]
      labNeverSaw: [{ source: api, type: request }]
`;

const scenario = loadYamlScenario('netns-placement.yaml', scenarioYaml);

/** Listening TCP sockets in a namespace (root: none given) as `address:port pid`. */
function listeners(ns?: string): string[] {
  const argv = ['ss', '-Htlnp'];
  const out = ns
    ? execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', timeout: 10_000 })
    : execFileSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', timeout: 10_000 });
  return out
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const cols = line.trim().split(/\s+/);
      const pids = [...line.matchAll(/pid=(\d+)/g)].map((m) => m[1]).join(',');
      return `${cols[3]} ${pids}`;
    });
}

describe.skipIf(missing('netns', 'cmd:curl', 'cmd:ss'))('simulators placed in their namespaces', () => {
  useTempStateDir('fl-place-netns-');
  beforeAll(() => assertBuilt());

  describe('a running lab', () => {
    let lab: Lab;
    beforeAll(async () => {
      const variant = scenario.variants[0];
      lab = (await startLabOn(backendFor('netns'), labFor(scenario, variant), { scenario, variant })).lab;
    }, 60_000);
    afterAll(async () => {
      await lab?.stop();
    });

    it('each simulator listens in its own host namespace, on its host address, and nothing of the lab in the root one', () => {
      const record = listRecords().find((r) => r.pid === process.pid);
      expect(record).toBeDefined();
      const nsOf = (host: string) => record?.namespaces.find((n) => n.endsWith(`-${host}`));
      const placed = { api: ['hub', '203.0.113.10:8443'], proxy: ['proxy', '198.51.100.3:3128'] } as const;
      const pids: string[] = [];
      for (const [sim, [host, listen]] of Object.entries(placed)) {
        // A worker's handle reports its process (backends/remote/worker-process.ts).
        const pid = String((lab.sim(sim).handle.stats() as { pid: number }).pid);
        // It is the process the namespace's record holds, started there.
        expect(record?.processes.find((p) => String(p.pid) === pid)?.ns).toBe(nsOf(host));
        pids.push(pid);
        const ns = nsOf(host);
        expect(ns, `namespace of ${host} in ${record?.namespaces.join(', ')}`).toBeDefined();
        expect(listeners(ns)).toContain(`${listen} ${pid}`);
        // Not in the other's namespace.
        const other = nsOf(host === 'hub' ? 'proxy' : 'hub');
        expect(listeners(other).some((l) => l.endsWith(` ${pid}`))).toBe(false);
      }
      // The workers' and this process's sockets: none in the root namespace.
      const root = listeners();
      for (const pid of [...pids, String(process.pid)]) {
        expect(root.filter((l) => l.split(' ')[1]?.split(',').includes(pid))).toEqual([]);
      }
      // The lab's view and the client's are the namespace's.
      expect(lab.resolveRef('api.address')).toBe('203.0.113.10');
      expect(lab.resolveRef('proxy.port', 'client')).toBe('3128');
    });
  });

  it('a drop between the proxy host and the hub host turns a pass into proxy.bad-gateway', {
    timeout: 120_000,
  }, async () => {
    const run = await runAll([{ scenario, file: 'netns-placement.yaml' }], { backend: 'netns' });
    const by = Object.fromEntries(run.results.map((r) => [r.variant, r]));
    const said = (v: string) => [...(by[v]?.explanation ?? []), by[v]?.error?.message ?? ''].join(' | ');
    expect(by.fixed?.status, said('fixed')).toBe('passed');
    expect(by.broken?.observed, said('broken')).toMatchObject({ result: 'fail', class: 'proxy.bad-gateway' });
    expect(by.broken?.status, said('broken')).toBe('passed');
  });
});
