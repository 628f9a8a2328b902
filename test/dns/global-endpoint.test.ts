import { describe, expect, it } from 'vitest';
import { runAll } from '../../harness/runner/run.js';
import { loadScenarios } from '../../harness/scenario/load.js';
import { missing } from '../helpers/capability.js';
import { expectAllPassed } from '../helpers/results.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * Seed 003 end to end (issue 18.4): aws-iot-device-sdk-v2 is given global.iot.example.com unchanged and
 * resolves it through resolv.conf → the resolver persona the variant picks (`client.resolver`) → the lab's
 * geo-dns; each region serves the custom domain's certificate by SNI. The broken variant's dns.wrong-region
 * comes from the lab's evidence while the SDK itself reports success.
 */
useTempStateDir('fl-global-');

describe.skipIf(missing('dns53', 'userns', 'cmd:unshare', 'cmd:dig'))(
  'geo-endpoint-global scenario',
  async () => {
    const { loaded, errors } = await loadScenarios(['scenarios/geo-endpoint-global.yaml']);

    it('loads, and picks the device resolver with client.resolver instead of its own unshare script', () => {
      expect(errors.map((e) => e.message)).toEqual([]);
      expect(loaded.map((l) => l.scenario.name)).toEqual(['geo-endpoint-global']);
      const s = loaded[0]?.scenario;
      expect(s?.client).toMatchObject({ type: 'command', resolve: 'lab', resolver: 'isp-eu' });
      const argvs = [
        s?.client?.type === 'command' ? s.client.argv : [],
        ...(s?.variants ?? []).map((v) => v.client?.argv ?? []),
      ];
      expect(argvs.flat().filter((a) => /unshare|mount --bind/.test(a))).toEqual([]);
      expect(s?.requires).not.toContain('root');
    });

    it('every variant behaves as expected on loopback', { timeout: 180_000 }, async () => {
      const run = await runAll(loaded, { backend: 'loopback', concurrency: 2 });
      expectAllPassed(run.results);
      const wrong = run.results.find((r) => r.variant === 'broken-public-resolver-without-ecs');
      // The client said it registered; the lab's verdict is another region than the device's location's.
      expect(wrong?.client?.stdout).toMatch(
        /registered dev-0102 via global\.iot\.example\.com \{"region":"us-east-1"\}/,
      );
      expect(wrong?.observed).toMatchObject({ result: 'fail', class: 'dns.wrong-region' });
      // The variant's pick (public-na) is the resolver the device asked, not the scenario's (isp-eu).
      const asked = (source: string) =>
        wrong?.events.some(
          (e) =>
            e.source === source &&
            e.type === 'query' &&
            (e.data as { name?: string }).name === 'global.iot.example.com',
        );
      expect(asked('public-na')).toBe(true);
      expect(asked('isp-eu')).toBe(false);
    });
  },
);
