import { describe, expect, it } from 'vitest';
import { backendFor } from '../../harness/backends/index.js';
import { workerGroups } from '../../harness/backends/netns/peers.js';
import type { LabSimulator } from '../../harness/lab/lab.js';
import { loadYamlScenario } from '../../harness/scenario/load.js';

/**
 * issue 14 (3): on netns, simulators that reach each other's handles (a DPS's hub, Krypton's DPS) run in
 * one worker process, which serves in one namespace: they must share a network host. And what runs in
 * the fieldlab process (a load; the scenario check refuses a probe client) is refused there, before any namespace is built.
 */
const hub: LabSimulator = { name: 'hub', type: 'iot-hub', host: 'hub.iot.example.com' };
const dps: LabSimulator = {
  name: 'dps',
  type: 'dps',
  host: 'global.dps.example.com',
  options: { hub: 'hub' },
};
const krypton: LabSimulator = {
  name: 'krypton',
  type: 'krypton',
  host: 'krypton.soracom.io',
  options: { dps: 'dps' },
};
const proxy: LabSimulator = { name: 'proxy', type: 'connect-proxy', host: 'proxy.corp.example.com' };

describe('netns worker groups', () => {
  it('puts peers (transitively) in one group in declaration order, and every other simulator alone', () => {
    const oneHost = () => 'cloud';
    const groups = workerGroups([hub, proxy, dps, krypton], oneHost);
    expect(groups.map((g) => g.map((s) => s.name))).toEqual([['hub', 'dps', 'krypton'], ['proxy']]);
  });

  it('refuses peers on different network hosts, naming both and the fix', () => {
    const hosts: Record<string, string> = {
      'hub.iot.example.com': 'hub',
      'global.dps.example.com': 'dps',
    };
    let err: unknown;
    try {
      workerGroups([hub, dps], (name) => hosts[name]);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({
      code: 'E_NETNS_PEERS',
      message: expect.stringMatching(
        /dps \(dps\) works with hub \(iot-hub\).*dps is on network host dps and hub on hub/,
      ),
      hint: expect.stringContaining(
        'list global.dps.example.com and hub.iot.example.com in the names of the same host',
      ),
    });
  });
});

const loadScenario = `
name: netns-load
title: a load on netns
backends: [netns]
lab:
  network:
    segments: [{ name: lan, cidr: 198.51.100.0/24 }]
    hosts:
      - { name: device, segments: [{ segment: lan, address: 198.51.100.10 }] }
      - { name: server, names: [broker.lab.example], segments: [{ segment: lan, address: 198.51.100.20 }] }
  simulators:
    - { name: broker, type: mqtt-broker, host: broker.lab.example }
load:
  driver: node
  script: mqtt-fleet
  vus: 2
  duration: 2s
  options: { url: 'mqtt://\${broker.hostport}' }
variants:
  - { name: broken, expect: { result: fail, class: tcp.refused } }
  - { name: fixed, expect: pass }
`;

describe('in-process clients on netns', () => {
  it('a load (it runs in the fieldlab process) is refused before any namespace is built, with the fix', async () => {
    const scenario = loadYamlScenario('netns-load.yaml', loadScenario);
    await expect(
      backendFor('netns').prepare({ scenario, variant: scenario.variants[0] }),
    ).rejects.toMatchObject({
      code: 'E_NETNS_UNSUPPORTED',
      message: expect.stringContaining('a load runs in the fieldlab process'),
      hint: expect.stringContaining('use a command client on a lab host'),
    });
  });
});
