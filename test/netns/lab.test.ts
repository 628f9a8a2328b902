import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { applyNetns, type NetnsLab } from '../../harness/topology/netns/apply.js';
import { leftoverEtcNetns } from '../../harness/topology/netns/clean.js';
import { runSync } from '../../harness/topology/netns/exec.js';
import type { TopologyInput } from '../../harness/topology/netns/model.js';
import { detectNetem } from '../../harness/topology/netns/netem.js';
import { switchNamespace } from '../../harness/topology/netns/plan.js';
import { listRecords } from '../../harness/topology/netns/state.js';
import { missing } from '../helpers/capability.js';
import { connectFrom, namespacesOf, rootLinks, serveIn, strayLinks } from './helpers.js';

const id = (s: string): string => `${s}${process.pid}`.slice(0, 10);

describe.skipIf(missing('netns'))('netns labs', () => {
  describe.sequential('build, reach, firewall, shape, tear down', () => {
    let state: string;
    let lab: NetnsLab | undefined;
    let linksBefore: string[];

    beforeAll(() => {
      state = mkdtempSync(join(tmpdir(), 'fl-netns-'));
      process.env.FIELDLAB_STATE_DIR = state;
      linksBefore = rootLinks();
    });
    afterEach(async () => {
      const labId = lab?.labId;
      await lab?.teardown();
      lab = undefined;
      if (labId) {
        expect(namespacesOf(labId)).toEqual([]);
        expect(leftoverEtcNetns().filter((n) => n.startsWith(`fl-${labId}-`))).toEqual([]);
      }
      expect(strayLinks(linksBefore)).toEqual([]);
      expect(listRecords()).toEqual([]);
    });
    afterAll(() => {
      delete process.env.FIELDLAB_STATE_DIR;
      rmSync(state, { recursive: true, force: true });
    });

    it('two namespaces on one segment reach each other over real TCP, and nothing else', async () => {
      const labId = id('two');
      lab = await applyNetns({
        labId,
        segments: [{ name: 'lan', cidr: '198.51.100.0/24' }],
        hosts: [
          { name: 'device', segments: [{ segment: 'lan', address: '198.51.100.10' }] },
          { name: 'cloud', segments: [{ segment: 'lan', address: '198.51.100.20' }] },
        ],
      });
      expect(namespacesOf(labId).sort()).toEqual([
        `fl-${labId}-cloud`,
        `fl-${labId}-device`,
        `fl-${labId}-sw`,
      ]);
      await serveIn(lab, 'cloud', '198.51.100.20', [7000]);
      expect((await connectFrom(lab, 'device', '198.51.100.20', 7000)).result).toBe('ok');
      // By name, through /etc/netns/<ns>/hosts.
      const byName = await lab.execIn('device', ['getent', 'hosts', 'cloud']);
      expect(byName.stdout).toMatch(/^198\.51\.100\.20\s+cloud/);
      expect((await connectFrom(lab, 'device', '198.51.100.20', 7001)).result).toBe('refused');
      // No route out of the lab: only the segment's own network, no default.
      const routes = await lab.execIn('device', ['ip', '-j', 'route', 'show']);
      expect((JSON.parse(routes.stdout) as Array<{ dst: string }>).map((r) => r.dst)).toEqual([
        '198.51.100.0/24',
      ]);
      const out = await lab.execIn('device', ['ip', 'route', 'get', '198.18.0.1']);
      expect(out.exitCode).not.toBe(0); // "Network is unreachable"
    });

    it('device, router, corporate firewall, cloud: matrix; DROP times out, REJECT refuses', async () => {
      const labId = id('four');
      const topo: TopologyInput = {
        labId,
        segments: [
          { name: 'lan', cidr: '198.51.100.0/24' },
          { name: 'dmz', cidr: '100.64.1.0/24' },
          { name: 'wan', cidr: '203.0.113.0/24' },
        ],
        hosts: [
          {
            name: 'device',
            segments: [{ segment: 'lan', address: '198.51.100.10' }],
            routes: [{ to: 'default', via: '198.51.100.1' }],
          },
          {
            name: 'router',
            forward: true,
            segments: [
              { segment: 'lan', address: '198.51.100.1' },
              { segment: 'dmz', address: '100.64.1.1' },
            ],
            routes: [{ to: 'default', via: '100.64.1.2' }],
          },
          {
            name: 'corpfw',
            forward: true,
            segments: [
              { segment: 'dmz', address: '100.64.1.2' },
              { segment: 'wan', address: '203.0.113.1' },
            ],
            routes: [{ to: '198.51.100.0/24', via: '100.64.1.1' }],
            firewall: [
              { action: 'drop', proto: 'tcp', port: 8883 },
              { action: 'reject', proto: 'tcp', port: 5671 },
              { action: 'drop', proto: 'tcp', to: '203.0.113.10', port: 7443, from: '198.51.100.0/24' },
            ],
          },
          {
            name: 'cloud',
            segments: [{ segment: 'wan', address: '203.0.113.10' }],
            routes: [{ to: 'default', via: '203.0.113.1' }],
          },
        ],
      };
      lab = await applyNetns(topo);
      await serveIn(lab, 'cloud', '203.0.113.10', [443, 8883, 5671, 7443]);
      await serveIn(lab, 'router', '100.64.1.1', [443]);

      const [https, mqtt, amqp, router] = await Promise.all([
        connectFrom(lab, 'device', '203.0.113.10', 443),
        connectFrom(lab, 'device', '203.0.113.10', 8883, 2_000),
        connectFrom(lab, 'device', '203.0.113.10', 5671, 2_000),
        connectFrom(lab, 'device', '100.64.1.1', 443),
      ]);
      expect(https.result).toBe('ok');
      expect(router.result).toBe('ok');
      expect(mqtt.result).toBe('timeout'); // DROP: SYNs vanish, the 2 s connect timeout fires
      expect(mqtt.ms).toBeGreaterThanOrEqual(1_900);
      expect(amqp.result).toBe('refused'); // REJECT: a real RST
      expect(amqp.ms).toBeLessThan(1_000);
      // The source-specific DROP applies to the device's network only: the firewall itself gets through.
      expect((await connectFrom(lab, 'corpfw', '203.0.113.10', 7443)).result).toBe('ok');
      expect((await connectFrom(lab, 'device', '203.0.113.10', 7443, 1_000)).result).toBe('timeout');

      const counters = await lab.firewallCounters('corpfw');
      const fwd = (i: number) => counters.find((c) => c.index === i && c.chain === 'forward');
      expect(fwd(0)).toMatchObject({ action: 'drop' });
      expect(fwd(0)?.packets).toBeGreaterThanOrEqual(2); // the SYN and at least one retransmission
      expect(fwd(1)).toMatchObject({ action: 'reject', packets: 1 });
      expect(fwd(2)?.packets).toBeGreaterThanOrEqual(1);

      // The fixed variant: the firewall lets 8883 through.
      await lab.setFirewall('corpfw', [{ action: 'reject', proto: 'tcp', port: 5671 }]);
      expect((await connectFrom(lab, 'device', '203.0.113.10', 8883)).result).toBe('ok');
    });

    // Shaping is judged by what load cannot fake: a busy machine only makes a transfer slower, so the
    // test asserts the ceiling (never faster than the rate) and the kernel's own account that tbf held
    // packets back at the configured rate. How close to the rate a transfer gets is a benchmark's job.
    it('tc tbf caps a transfer at the configured rate, egress and ingress', async () => {
      lab = await applyNetns({
        labId: id('tbf'),
        segments: [{ name: 'lan', cidr: '198.18.0.0/24' }],
        hosts: [
          { name: 'device', segments: [{ segment: 'lan', address: '198.18.0.10' }] },
          {
            name: 'cloud',
            segments: [{ segment: 'lan', address: '198.18.0.20' }],
            bandwidth: [{ rate: '4mbit' }],
          },
        ],
      });
      await serveIn(lab, 'cloud', '198.18.0.20', [9000]);
      const size = 500_000;
      const r = await connectFrom(lab, 'device', '198.18.0.20', 9000, 20_000, size);
      expect(r.result).toBe('ok');
      expect(transferBps(r, size)).toBeLessThan(4e6 * 1.25);
      const cloudIf = lab.host('cloud').interfaces[0];
      const egress = tbfStats(lab.ns('cloud'), cloudIf?.ifname ?? '');
      expect(egress).toMatchObject({ kind: 'tbf', options: { rate: 4e6 / 8 } });
      expect(egress.bytes).toBeGreaterThanOrEqual(size);
      expect(egress.overlimits).toBeGreaterThan(0); // tbf, not the link, set the pace

      // Ingress shaping on the switch side slows the device's downloads the same way.
      await lab.setBandwidth('device', '2mbit', { direction: 'ingress' });
      const slow = await connectFrom(lab, 'device', '198.18.0.20', 9000, 20_000, 250_000);
      expect(slow.result).toBe('ok');
      expect(transferBps(slow, 250_000)).toBeLessThan(2e6 * 1.25);
      const peer = lab.host('device').interfaces[0]?.peer ?? '';
      const ingress = tbfStats(switchNamespace(lab.labId), peer);
      expect(ingress).toMatchObject({ kind: 'tbf', options: { rate: 2e6 / 8 } });
      expect(ingress.bytes).toBeGreaterThanOrEqual(250_000);
      expect(ingress.overlimits).toBeGreaterThan(0);
    });

    it('rolls back everything when apply fails half-way', async () => {
      const labId = id('bad');
      await expect(
        applyNetns({
          labId,
          segments: [{ name: 'lan', cidr: '198.51.100.0/24' }],
          hosts: [
            {
              name: 'device',
              segments: [{ segment: 'lan', address: '198.51.100.10' }],
              // Valid for the plan, refused by the kernel: the gateway is not on a connected network.
              routes: [
                { to: '203.0.113.0/24', via: '198.51.100.99', dev: 'lan' },
                { to: '100.64.0.0/24', via: '203.0.113.1', dev: 'lan' },
              ],
            },
          ],
        }),
      ).rejects.toMatchObject({ code: 'E_NETNS_COMMAND' });
      expect(namespacesOf(labId)).toEqual([]);
    });

    it('reports whether netem exists in this kernel', async () => {
      const netem = await detectNetem();
      expect(typeof netem.available).toBe('boolean');
      if (!netem.available) expect(netem.reason).toMatch(/netem/);
      expect(runSync(['ip', 'netns', 'list']).stdout).not.toContain(`flprobe-netem-${process.pid}`);
    });
  });
});

/** Bits per second of a timed download; the first 16 KiB burst leaves at line rate, so it is left out. */
function transferBps(r: { ms: number; firstByteAt?: number }, size: number): number {
  return ((size - 16 * 1024) * 8) / ((r.ms - (r.firstByteAt ?? 0)) / 1000);
}

interface TbfStats {
  kind: string;
  options: { rate: number };
  bytes: number;
  overlimits: number;
}

/** The root qdisc of an interface with its counters, as `tc -s -j` reports it. */
function tbfStats(ns: string, ifname: string): TbfStats {
  const r = runSync(['ip', 'netns', 'exec', ns, 'tc', '-s', '-j', 'qdisc', 'show', 'dev', ifname]);
  const all = JSON.parse(r.stdout) as (TbfStats & { root?: boolean })[];
  const root = all.find((q) => q.root);
  if (!root) throw new Error(`no root qdisc on ${ifname} in ${ns}: ${r.stdout}`);
  return root;
}
