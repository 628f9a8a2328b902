import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BackendNetwork, backendFor, startLabOn } from '../../harness/backends/index.js';
import { LinkFaults } from '../../harness/backends/netns/link-faults.js';
import type { CommandResult } from '../../harness/clients/command.js';
import type { Lab } from '../../harness/lab/lab.js';
import { labFor } from '../../harness/lab/variant-lab.js';
import { runAll } from '../../harness/runner/run.js';
import { loadYamlScenario } from '../../harness/scenario/load.js';
import { applyNetns, detectNetem, listRecords } from '../../harness/topology/netns/index.js';
import { renderLinkTable, shapeClassArgs } from '../../harness/topology/netns/links.js';
import { missing } from '../helpers/capability.js';
import { expectAllPassed } from '../helpers/results.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { within } from '../helpers/within.js';

/**
 * issue 14 (3): faults on the link between any two network hosts on netns (`target: proxy~hub`), done by
 * the kernel (nftables drops and resets, htb/netem shaping), in the relay toxics' vocabulary.
 *
 *   device (198.51.100.10), proxy (198.51.100.3) ─lan─ corp (router) ─wan─ hub (203.0.113.20: api)
 */
const SCENARIO = `
name: link-faults
title: faults on the links between lab hosts (test fixture)
backends: [loopback, netns]
requires: ['cmd:curl']
timeout: 30s
lab:
  network:
    segments: [{ name: lan, cidr: 198.51.100.0/24 }, { name: wan, cidr: 203.0.113.0/24 }]
    hosts:
      - { name: device, segments: [{ segment: lan, address: 198.51.100.10 }], routes: [{ to: default, via: 198.51.100.1 }] }
      - name: corp
        forward: true
        segments: [{ segment: lan, address: 198.51.100.1 }, { segment: wan, address: 203.0.113.1 }]
      - name: proxy
        names: [proxy.corp.example.com]
        segments: [{ segment: lan, address: 198.51.100.3 }]
        routes: [{ to: default, via: 198.51.100.1 }]
      - name: hub
        names: [api.iot.example.com]
        segments: [{ segment: wan, address: 203.0.113.20 }]
        routes: [{ to: default, via: 203.0.113.1 }]
  simulators:
    - { name: api, type: https-server, host: api.iot.example.com, port: 8443, options: { routes: { /: { body: hello } } } }
    - name: proxy
      type: connect-proxy
      host: proxy.corp.example.com
      port: 3128
      options: { allowPorts: [8443] }
client:
  type: command
  host: device
  argv: [curl, -sS, --fail, --max-time, '15', -w, '\\ntime_connect=%{time_connect}', --cacert, '\${lab.ca}', -x, 'http://\${proxy.hostport}', 'https://api.iot.example.com:8443/']
variants:
  - name: fixed
    expect: pass
  - name: broken-proxy-hub-blackhole
    description: the proxy's packets to the hub vanish (and the hub's to the proxy)
    faults: [{ target: proxy~hub, type: blackhole, backends: [netns] }]
    expect: { result: fail, class: proxy.bad-gateway }
  - name: broken-device-proxy-refuse
    description: the proxy host refuses the device's new connections
    faults: [{ target: device~proxy, type: refuse, backends: [netns] }]
    expect: { result: fail, class: proxy.unreachable, explains: 'proxy link device~proxy: refuse_downstream' }
  - name: broken-device-proxy-blackhole
    faults: [{ target: device~proxy, type: blackhole, backends: [netns] }]
    expect: { result: fail, class: tcp.timeout, explains: 'link device~proxy: blackhole_downstream .drop all from' }
`;

describe('the kernel rules of a link fault (pure)', () => {
  it('renders one table per fault: drops and resets on input from the peer, shaping marks on output to it', () => {
    const script = renderLinkTable('fllink3', [
      { kind: 'refuse', from: ['198.51.100.10'] },
      { kind: 'classify', to: ['203.0.113.20', '100.64.0.2'], classid: '1:13' },
    ]);
    expect(script).toContain('delete table inet fllink3\n');
    expect(script).toContain(
      'ip saddr 198.51.100.10 tcp flags & (syn | ack) == syn counter reject with tcp reset comment "fl:0"',
    );
    expect(script).toContain(
      'ip daddr { 203.0.113.20, 100.64.0.2 } counter meta priority set 1:13 comment "fl:1"',
    );
    expect(shapeClassArgs('eth0', '1:13', { delayMs: 200, jitterMs: 20 })).toEqual([
      [
        'class',
        'replace',
        'dev',
        'eth0',
        'parent',
        '1:',
        'classid',
        '1:13',
        'htb',
        'rate',
        '10gbit',
        'ceil',
        '10gbit',
      ],
      [
        'qdisc',
        'replace',
        'dev',
        'eth0',
        'parent',
        '1:13',
        'handle',
        '13:',
        'netem',
        'delay',
        '200ms',
        '20ms',
      ],
    ]);
  });
});

describe('link fault targets in scenario files', () => {
  it('a link fault must be restricted to netns, and takes only the toxics the kernel has', () => {
    const bad = SCENARIO.replace(
      'faults: [{ target: device~proxy, type: refuse, backends: [netns] }]',
      'faults: [{ target: device~proxy, type: refuse }, { target: device~proxy, type: slicer, average_size: 10, backends: [netns] }]',
    );
    expect(bad).not.toBe(SCENARIO);
    let message = '';
    try {
      loadYamlScenario('link-faults.yaml', bad);
    } catch (err) {
      message = String((err as Error).message);
    }
    expect(message).toMatch(/device~proxy is a link between two network hosts.*add `backends: \[netns\]`/s);
    expect(message).toMatch(
      /slicer has no kernel equivalent on a link \(device~proxy\); a link takes latency, bandwidth, timeout, reset_peer, mtu_blackhole, blackhole, refuse/,
    );
  });

  it('the loopback backend refuses a link fault with the fix', () => {
    const network = backendFor('loopback');
    expect(network.name).toBe('loopback');
    // The relay faults of loopback and container: a link target is named and the fix given.
    return import('../../harness/backends/common.js').then(({ relayFaults }) => {
      expect(() => relayFaults.applyFault({} as Lab, 'proxy~hub', { type: 'blackhole' })).toThrow(
        expect.objectContaining({
          code: 'E_LINK_FAULT_BACKEND',
          hint: expect.stringContaining('backends: [netns]'),
        }),
      );
    });
  });
});

describe.skipIf(missing('netns', 'cmd:curl', 'cmd:nft', 'cmd:tc'))('link faults on netns', () => {
  useTempStateDir('fl-link-faults-');
  const scenario = loadYamlScenario('link-faults.yaml', SCENARIO);

  it('blackhole, refuse between hosts change the outcome as the kernel makes them', {
    timeout: 180_000,
  }, async () => {
    const run = await runAll([{ scenario, file: 'link-faults.yaml' }], { backend: 'netns' });
    const by = (v: string) => run.results.find((r) => r.variant === v);
    expectAllPassed(run.results);
    // The kernel's counters name the link fault in the explanation.
    expect(by('broken-device-proxy-refuse')?.explanation.join('\n')).toMatch(
      /proxy link device~proxy: refuse_downstream \(reject tcp SYN from 198\.51\.100\.10\) matched \d+ packet/,
    );
    expect(by('broken-proxy-hub-blackhole')?.events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: 'firewall-match', source: 'hub link proxy~hub' }),
      ]),
    );
    // Every lab of this run is gone (its records are in this test's own state directory).
    expect(listRecords()).toEqual([]);
  });

  describe('on a running lab', () => {
    const fixed = scenario.variants[0];
    if (!fixed) throw new Error('no variant');
    let lab: Lab | undefined;
    let network: BackendNetwork;
    const curl = (): Promise<CommandResult> => {
      const client = scenario.client;
      if (client?.type !== 'command') throw new Error('a command client');
      return network.runCommand(lab as Lab, {
        host: 'device',
        argv: (lab as Lab).interpolate(client.argv, 'client'),
        env: {},
        timeoutMs: 20_000,
        resolve: 'lab',
      });
    };
    beforeAll(async () => {
      const started = await startLabOn(backendFor('netns'), labFor(scenario, fixed), {
        scenario,
        variant: fixed,
      });
      lab = started.lab;
      network = started.network;
    }, 120_000);
    afterAll(async () => {
      await lab?.stop();
    }, 60_000);

    it('a blackhole between proxy and hub fails the request, and removing it restores it', {
      timeout: 60_000,
    }, async () => {
      const running = lab as Lab;
      expect((await curl()).exitCode).toBe(0);
      network.applyFault(running, 'proxy~hub', { type: 'blackhole', name: 'cut' });
      await within(running.faultsApplied(), 15_000, 'the link fault to be in place');
      const cut = await curl();
      // The proxy answers the CONNECT with 502/504 when its own connection times out (curl exit 56).
      expect(cut.exitCode).not.toBe(0);
      expect(cut.stderr).toMatch(/CONNECT.*50[24]|50[24]/);
      network.removeFault(running, 'proxy~hub', 'cut');
      await within(running.faultsApplied(), 15_000, 'the link fault to be removed');
      const back = await curl();
      expect({ exit: back.exitCode, out: back.stdout }).toMatchObject({ exit: 0, out: /^hello/ });
    });

    it('latency between device and proxy shows in curl’s connect time (or a clear error without netem)', {
      timeout: 60_000,
    }, async () => {
      const running = lab as Lab;
      network.applyFault(running, 'device~proxy', { type: 'latency', latency: 400, name: 'slow' });
      const netem = await detectNetem();
      if (!netem.available) {
        await expect(running.faultsApplied()).rejects.toMatchObject({
          code: 'E_LINK_NO_NETEM',
          message: expect.stringContaining('netem'),
        });
        network.removeFault(running, 'device~proxy', 'slow');
        await running.faultsApplied();
        return;
      }
      await within(running.faultsApplied(), 15_000, 'the latency to be in place');
      const slow = await curl();
      expect(slow.exitCode).toBe(0);
      // downstream (the default): proxy → device, so the SYN-ACK waits 400 ms: a lower bound only.
      const connect = Number(/time_connect=([\d.]+)/.exec(slow.stdout)?.[1]);
      expect(connect).toBeGreaterThanOrEqual(0.38);
      network.removeFault(running, 'device~proxy', 'slow');
      await within(running.faultsApplied(), 15_000, 'the latency to be removed');
    });

    it('a toxic without a kernel equivalent is refused, naming the ones that work', () => {
      expect(() => network.applyFault(lab as Lab, 'device~proxy', { type: 'limit_data', bytes: 10 })).toThrow(
        expect.objectContaining({
          code: 'E_LINK_FAULT',
          message: 'device~proxy: limit_data has no kernel equivalent on a link',
          hint: expect.stringContaining(
            'a link takes latency, bandwidth, timeout, reset_peer, mtu_blackhole, blackhole, refuse',
          ),
        }),
      );
      expect(() => network.applyFault(lab as Lab, 'device~nowhere', { type: 'blackhole' })).toThrow(
        expect.objectContaining({ code: 'E_NETNS_HOST', hint: expect.stringContaining('device') }),
      );
    });
  });
});

/** Shaping between two namespaces, without a scenario: htb classifies only the peer's packets. */
describe.skipIf(missing('netns', 'cmd:nft', 'cmd:tc'))('link bandwidth in the kernel', () => {
  useTempStateDir('fl-link-bw-');
  it('a bandwidth toxic slows what one host sends to the other', {
    timeout: 60_000,
  }, async () => {
    const net = await applyNetns({
      labId: `lb${process.pid.toString(36)}`.slice(0, 10),
      segments: [{ name: 'lan', cidr: '198.18.40.0/24' }],
      hosts: [
        { name: 'a', segments: [{ segment: 'lan', address: '198.18.40.1' }] },
        { name: 'b', segments: [{ segment: 'lan', address: '198.18.40.2' }] },
      ],
    });
    const links = new LinkFaults(net);
    try {
      // downstream: b → a at 20 KB/s.
      await links.apply(['a', 'b'], { type: 'bandwidth', rate: 20 });
      const send = (from: string, to: string) =>
        net.execIn(from, [
          process.execPath,
          '-e',
          `const t=performance.now();const s=require('net').connect(9000,'${to}',()=>s.end(Buffer.alloc(80000)));s.on('close',()=>console.log(Math.round(performance.now()-t)))`,
        ]);
      const serve = (host: string, address: string) =>
        net.spawnIn(host, [
          process.execPath,
          '-e',
          `require('net').createServer(s=>{s.resume();s.on('end',()=>s.end())}).listen(9000,'${address}',()=>console.log('up'))`,
        ]);
      const server = serve('a', '198.18.40.1');
      await within(
        new Promise<void>((resolve) => server.stdout?.once('data', () => resolve())),
        10_000,
        'a server on a',
      );
      const shaped = await send('b', '198.18.40.1');
      expect(shaped.exitCode).toBe(0);
      // 80 KB at 20 KB/s: seconds, whatever the load (a lower bound only).
      expect(Number(shaped.stdout.trim())).toBeGreaterThanOrEqual(2_000);
      // The class carried it; b → c is not in it.
      const before = await links.explain();
      expect(before.join('\n')).toMatch(
        /bandwidth_downstream on a~b \(rate 20 KB\/s\) held \d+ packet\(s\) from b to a/,
      );
      await links.remove('bandwidth_downstream');
      const free = await send('b', '198.18.40.1');
      expect(free.exitCode).toBe(0);
      expect(await links.explain()).toEqual([]);
    } finally {
      links.close();
      await net.teardown();
    }
  });
});
