import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runAll } from '../../harness/runner/run.js';
import { loadYamlScenario } from '../../harness/scenario/load.js';
import { listRecords } from '../../harness/topology/netns/index.js';
import { missing } from '../helpers/capability.js';
import { assertBuilt } from '../helpers/cli.js';
import { expectAllPassed } from '../helpers/results.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * issue 14 (4): tunnel-ssh on netns, every part in its own host: sshd and the destination localproxy on
 * the device's, ssh and the source localproxy on the operator's, the tunnel service in the cloud, the
 * proxy and the inspector on the office LAN. The office firewall that lets only the proxy out to the
 * data endpoint turns the operator's direct connection into tcp.timeout; through the proxy it passes.
 */
const FILE = 'scenarios/tunnel-ssh.yaml';

describe.skipIf(missing('netns', 'cmd:ssh', 'cmd:sshd', 'cmd:nft'))('tunnel-ssh on netns', () => {
  useTempStateDir('fl-tunnel-ssh-netns-');

  it('every variant behaves as on loopback, and the firewall variants as the kernel makes them', {
    timeout: 480_000,
  }, async () => {
    assertBuilt();
    const scenario = loadYamlScenario(FILE, readFileSync(FILE, 'utf8'));
    expect(scenario.backends).toEqual(expect.arrayContaining(['loopback', 'container', 'netns']));
    const run = await runAll([{ scenario, file: FILE }], { backend: 'netns' });
    expectAllPassed(run.results);
    const by = (v: string) => run.results.find((r) => r.variant === v);
    // The operator's SYNs to the data endpoint, counted by the router's rule (the kernel's word).
    expect(by('broken-firewall-direct')?.explanation.join('\n')).toMatch(
      /corp firewall: drop tcp from 198\.51\.100\.0\/24 to 203\.0\.113\.30 port 8443 \(forward\) matched \d+ packet/,
    );
    // The device's sshd saw the tunnel's connection from its own host (the destination localproxy is
    // there), not from the operator's.
    const accepted = by('fixed')?.events.find((e) => e.source === 'device' && e.type === 'accepted');
    expect(JSON.stringify(accepted?.data)).toContain('203.0.113.40');
    expect(listRecords()).toEqual([]);
  });
});
