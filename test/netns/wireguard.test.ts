import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { applyNetns, type NetnsLab } from '../../harness/topology/netns/apply.js';
import { explainPath } from '../../harness/topology/netns/explain.js';
import { missing } from '../helpers/capability.js';
import { connectFrom, namespacesOf, rootLinks, serveIn, strayLinks, wireguardGoPids } from './helpers.js';

const labId = `wg${process.pid}`.slice(0, 10);
const wgA = `flwga${process.pid}`.slice(0, 15);
const wgB = `flwgb${process.pid}`.slice(0, 15);

/** rx/tx bytes of the (only) peer of a WireGuard interface. */
async function transfer(lab: NetnsLab, host: string, ifname: string): Promise<{ rx: number; tx: number }> {
  const r = await lab.execIn(host, ['wg', 'show', ifname, 'transfer']);
  const [, rx, tx] = r.stdout.trim().split('\t');
  return { rx: Number(rx ?? 0), tx: Number(tx ?? 0) };
}

describe.skipIf(missing('netns', 'cmd:wireguard-go', 'cmd:wg'))('netns WireGuard', () => {
  describe.sequential('a pair of peers', () => {
    let state: string;
    let lab: NetnsLab | undefined;
    let linksBefore: string[];
    let wgBefore: number[];

    beforeAll(() => {
      state = mkdtempSync(join(tmpdir(), 'fl-netns-wg-'));
      process.env.FIELDLAB_STATE_DIR = state;
      linksBefore = rootLinks();
      wgBefore = wireguardGoPids();
    });
    afterEach(async () => {
      await lab?.teardown();
      lab = undefined;
      expect(namespacesOf(labId)).toEqual([]);
      expect(strayLinks(linksBefore)).toEqual([]);
      expect(wireguardGoPids().filter((p) => !wgBefore.includes(p))).toEqual([]);
    });
    afterAll(() => {
      delete process.env.FIELDLAB_STATE_DIR;
      rmSync(state, { recursive: true, force: true });
    });

    it('AllowedIPs decide what goes through the tunnel', async () => {
      lab = await applyNetns({
        labId,
        segments: [{ name: 'lan', cidr: '198.51.100.0/24' }],
        hosts: [
          {
            name: 'a',
            segments: [{ segment: 'lan', address: '198.51.100.10' }],
            wireguard: {
              ifname: wgA,
              address: '100.127.0.2/32',
              peers: [{ host: 'b', allowedIps: ['100.127.0.0/16'], persistentKeepalive: 0 }],
            },
          },
          {
            name: 'b',
            segments: [{ segment: 'lan', address: '198.51.100.20' }],
            wireguard: {
              ifname: wgB,
              address: '100.127.0.1/32',
              peers: [{ host: 'a', allowedIps: ['100.127.0.2/32'] }],
            },
          },
        ],
      });
      expect(wireguardGoPids().filter((p) => !wgBefore.includes(p))).toHaveLength(2);
      const allowed = await lab.execIn('a', ['wg', 'show', wgA, 'allowed-ips']);
      expect(allowed.stdout).toContain('100.127.0.0/16');
      await serveIn(lab, 'b', '100.127.0.1,198.51.100.20', [7100]);

      // Inside AllowedIPs: through the tunnel, and the transfer counters move.
      const before = await transfer(lab, 'a', wgA);
      expect((await connectFrom(lab, 'a', '100.127.0.1', 7100)).result).toBe('ok');
      const after = await transfer(lab, 'a', wgA);
      expect(after.tx).toBeGreaterThan(before.tx);
      expect(after.rx).toBeGreaterThan(before.rx);
      const inside = await explainPath(lab.ns('a'), '100.127.0.1', { port: 7100, wgIfname: wgA });
      expect(inside.viaTunnel).toBe(true);
      expect(inside.facts.dev).toBe(wgA);

      // Outside AllowedIPs: the ordinary route (eth0), the tunnel sees nothing.
      expect((await connectFrom(lab, 'a', '198.51.100.20', 7100)).result).toBe('ok');
      const outside = await transfer(lab, 'a', wgA);
      expect(outside.tx).toBe(after.tx);
      const e = await explainPath(lab.ns('a'), '198.51.100.20', { port: 7100, wgIfname: wgA });
      expect(e.viaTunnel).toBe(false);
      expect(e.sentence).toBe(
        `SYN to 198.51.100.20:7100 left via eth0, not ${wgA}: AllowedIPs lacks it (has 100.127.0.0/16); ` +
          'fix: add 198.51.100.20/32 to AllowedIPs',
      );
    });

    it('refuses an interface name whose UAPI socket another namespace holds', async () => {
      lab = await applyNetns({
        labId,
        segments: [{ name: 'lan', cidr: '198.51.100.0/24' }],
        hosts: [
          {
            name: 'a',
            segments: [{ segment: 'lan', address: '198.51.100.10' }],
            wireguard: { ifname: wgA, address: '100.127.0.2/32' },
          },
        ],
      });
      await expect(
        applyNetns({
          labId: `wgd${process.pid}`.slice(0, 10),
          segments: [{ name: 'lan', cidr: '198.51.100.0/24' }],
          hosts: [
            {
              name: 'a',
              segments: [{ segment: 'lan', address: '198.51.100.10' }],
              wireguard: { ifname: wgA, address: '100.127.0.2/32' },
            },
          ],
        }),
      ).rejects.toMatchObject({ code: 'E_WG_IFNAME_IN_USE' });
    });
  });
});
