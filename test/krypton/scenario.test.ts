import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { runAll } from '../../harness/runner/run.js';
import { loadScenarios } from '../../harness/scenario/load.js';
import { missing } from '../helpers/capability.js';
import { expectAllPassed } from '../helpers/results.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * Seed 002's scenario on real namespaces, as `fieldlab run --backend netns scenarios/arc-allowedips.yaml`
 * runs it: fixed = Krypton registers the device at DPS by X.509 and the device connects to the hub with the
 * returned certificate; broken-outside-sim-network = Krypton's 403, classed and explained. The scenario's
 * client is dist/examples/arc-device.js (`npm run build`).
 */
describe.skipIf(missing('netns', 'cmd:wireguard-go', 'cmd:wg', 'cmd:curl'))(
  'arc-allowedips on netns: Krypton X.509 provisioning',
  () => {
    useTempStateDir('fl-krypton-netns-');
    // Not built is a set-up mistake, not a missing capability: fail with the fix rather than skip quietly.
    beforeAll(() => {
      if (!existsSync('dist/examples/arc-device.js')) {
        throw new Error(
          'dist/examples/arc-device.js is missing: run `npm run build` first (`npm test` does)',
        );
      }
    });

    it('fixed provisions through Krypton (DPS X.509) to the hub; outside the SIM network is a 403', {
      timeout: 120_000,
    }, async () => {
      const { loaded, errors } = await loadScenarios(['scenarios/arc-allowedips.yaml']);
      expect(errors).toEqual([]);
      const run = await runAll(loaded, { backend: 'netns' });
      expectAllPassed(run.results);
      expect(run.results.map((r) => r.variant)).toEqual(['broken', 'fixed', 'broken-outside-sim-network']);
      const outside = run.results.find((r) => r.variant === 'broken-outside-sim-network');
      expect(outside?.observed).toMatchObject({ result: 'fail', class: 'http.status' });
      expect(outside?.explanation).toContain(
        'krypton answered 403: the request came from 198.51.100.10, outside the SIM network (100.64.0.0/10); ' +
          'send it through SORACOM Air or Arc (add the service address to AllowedIPs and route it into the tunnel)',
      );
    });
  },
);
