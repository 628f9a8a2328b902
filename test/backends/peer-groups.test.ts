import { describe, expect, it } from 'vitest';
import { containerGroups } from '../../harness/backends/container/groups.js';
import { groupSimulators, peersOf } from '../../harness/backends/peer-groups.js';
import type { LabSimulator } from '../../harness/lab/lab.js';

/** Which simulators must share a process: the adapters' own `peers`, then what a backend adds (a host). */
const sim = (name: string, type: string, host: string, options: Record<string, unknown> = {}) =>
  ({ name, type, host, options }) satisfies LabSimulator;

const lab = [
  sim('proxy', 'connect-proxy', 'proxy.example.com'),
  sim('hub', 'iot-hub', 'hub.example.com'),
  sim('dps', 'dps', 'dps.example.com', { hub: 'hub', linkedHubs: ['hub2'] }),
  sim('hub2', 'iot-hub', 'hub2.example.com'),
  sim('web', 'https-server', 'proxy.example.com'),
  sim('tunnels', 'tunnel-service', 'tunnels.example.com', { notify: 'nowhere' }),
];

describe('peer groups', () => {
  it('reads peers from each adapter, ignoring names that are no simulator of the lab', () => {
    const declared = new Set(lab.map((s) => s.name));
    expect(peersOf(lab[2] as LabSimulator, declared)).toEqual(['hub', 'hub2']);
    expect(peersOf(lab[5] as LabSimulator, declared)).toEqual([]);
    expect(peersOf(lab[0] as LabSimulator, declared)).toEqual([]);
  });

  it('groups peers transitively in declaration order, everyone else alone', () => {
    const names = groupSimulators(lab).map((g) => g.map((s) => s.name));
    expect(names).toEqual([['proxy'], ['hub', 'dps', 'hub2'], ['web'], ['tunnels']]);
  });

  it('on the container backend, simulators of one lab host share its container too', () => {
    const names = containerGroups(lab).map((g) => g.map((s) => s.name));
    expect(names).toEqual([['proxy', 'web'], ['hub', 'dps', 'hub2'], ['tunnels']]);
  });
});
