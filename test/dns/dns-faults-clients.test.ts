import { describe, expect, it } from 'vitest';
import { runAll } from '../../harness/runner/run.js';
import { loadScenarios } from '../../harness/scenario/load.js';
import { missing } from '../helpers/capability.js';
import { expectAllPassed } from '../helpers/results.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * Issue 18.5: DNS faults on the authoritative server reach unmodified clients through their resolver
 * (resolv.conf → the lab resolver on port 53, the lab's DNS): curl, and azure-iot-device over MqttWs resolving its
 * proxy. Each broken variant fails with the class the lab's evidence gives, and the explanation keeps
 * what the client itself said.
 */
useTempStateDir('fl-dnsfaults-');

describe.skipIf(missing('dns53', 'userns', 'cmd:unshare', 'cmd:curl'))(
  'dns-faults-clients scenario',
  async () => {
    const { loaded, errors } = await loadScenarios(['scenarios/dns-faults-clients.yaml']);

    it('every variant behaves as expected on loopback', { timeout: 180_000 }, async () => {
      expect(errors.map((e) => e.message)).toEqual([]);
      const run = await runAll(loaded, { backend: 'loopback', concurrency: 2 });
      expectAllPassed(run.results);
      const azure = run.results.find((r) => r.variant === 'broken-azure-servfail');
      // The SDK called it "Not authorized ... EAI_AGAIN"; the lab knows the resolver answered SERVFAIL.
      expect(azure?.client?.stderr).toMatch(/UnauthorizedError.*EAI_AGAIN proxy\.corp\.example\.com/);
      expect(azure?.observed).toMatchObject({ result: 'fail', class: 'dns.servfail' });
    });
  },
);
