import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runAll } from '../../harness/runner/run.js';
import { loadScenarios } from '../../harness/scenario/load.js';
import { listRecords } from '../../harness/topology/netns/index.js';
import { missing } from '../helpers/capability.js';
import { rootLinks, strayLinks, wireguardGoPids } from './helpers.js';

/**
 * The catalogue's netns-capable scenarios on real namespaces, as `fieldlab run --backend netns` runs
 * them: the seed's Arc AllowedIPs case (with the kernel's explanation) and AMQP behind a real nftables
 * firewall. Every lab is gone afterwards.
 */
describe.skipIf(missing('netns', 'cmd:wireguard-go', 'cmd:wg', 'cmd:curl'))(
  'scenario catalogue on netns',
  () => {
    let state: string;
    let linksBefore: string[];
    let wgBefore: number[];
    beforeAll(() => {
      state = mkdtempSync(join(tmpdir(), 'fl-cat-netns-'));
      process.env.FIELDLAB_STATE_DIR = state;
      linksBefore = rootLinks();
      wgBefore = wireguardGoPids();
    });
    afterAll(() => {
      delete process.env.FIELDLAB_STATE_DIR;
      rmSync(state, { recursive: true, force: true });
    });

    it('arc-allowedips and amqp-port-blocked behave as expected, then leave nothing', {
      timeout: 180_000,
    }, async () => {
      const { loaded, errors } = await loadScenarios(['scenarios']);
      expect(errors).toEqual([]);
      const netns = loaded.filter((l) => l.scenario.backends.includes('netns'));
      expect(netns.map((l) => l.scenario.name).sort()).toEqual(
        expect.arrayContaining(['amqp-port-blocked', 'arc-allowedips']),
      );
      const run = await runAll(netns, { backend: 'netns' });
      for (const r of run.results) {
        expect(
          r.status,
          `${r.scenario}/${r.variant}: ${[...r.explanation, r.error?.message ?? ''].join(' | ')}`,
        ).toBe('passed');
      }
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
      const ours = (await import('node:child_process'))
        .execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => /^fl-v[0-9a-f]{6}-/.test(l));
      expect(ours).toEqual([]);
      expect(strayLinks(linksBefore)).toEqual([]);
      expect(wireguardGoPids().filter((p) => !wgBefore.includes(p))).toEqual([]);
      expect(listRecords()).toEqual([]);
    });
  },
);
