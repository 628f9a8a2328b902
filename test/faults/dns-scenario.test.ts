import { describe, expect, it } from 'vitest';
import { runVariant } from '../../harness/runner/run-variant.js';
import { loadScenarios } from '../../harness/scenario/load.js';
import { expectSchema, faultSchema } from '../../harness/scenario/model.js';
import { missing } from '../helpers/capability.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * A DNS fault declared in a variant's `faults:` reaches the scenario's geo-dns through the runner, and the
 * result shows it as a relay toxic is shown: the fault's events on the timeline, the client's class.
 */
useTempStateDir('fl-dnsfault-scn-');

const { loaded } = await loadScenarios(['scenarios']);

describe.skipIf(missing('cmd:dig'))('DNS faults in a scenario', () => {
  it('a variant fault `{target: dns, type: servfail, qname}` fails dig with dns.servfail', async () => {
    const l = loaded.find((x) => x.scenario.name === 'geo-endpoint-dns');
    const fixed = l?.scenario.variants.find((v) => v.name === 'fixed');
    if (!l || !fixed) throw new Error('geo-endpoint-dns/fixed is not in the catalogue');
    const r = await runVariant(
      l,
      {
        ...fixed,
        name: 'dns-fault-servfail',
        faults: [
          faultSchema.parse({ target: 'dns', type: 'servfail', qname: 'global.iot.example.com', qtype: 'A' }),
        ],
        expect: expectSchema.parse({
          result: 'fail',
          class: 'dns.servfail',
          labSaw: [
            {
              source: 'dns',
              type: 'toxic-applied',
              match: { toxic: 'servfail_global.iot.example.com', type: 'servfail' },
            },
          ],
        }),
      },
      { backend: 'loopback' },
    );
    expect(r.error).toBeUndefined();
    expect(r.status, r.explanation.join('\n')).toBe('passed');
    expect(r.explanation.join('\n')).toMatch(/SERVFAIL for global\.iot\.example\.com/);
    expect(r.explanation.join('\n')).toMatch(/fault servfail/);
  });
});
