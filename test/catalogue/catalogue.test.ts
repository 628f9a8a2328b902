import { describe, expect, it } from 'vitest';
import { loadScenarios } from '../../harness/scenario/load.js';
import { catalogueRun, hasLoad } from '../helpers/catalogue-run.js';
import { expectAllPassed } from '../helpers/results.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * The catalogue is the product: every scenario's broken variants must fail the way they say, and the
 * fixed ones must pass, with real clients on the loopback backend. A variant skipped for a missing
 * capability says why (and fails under FIELDLAB_REQUIRE=all, as the runner marks it errored).
 */
useTempStateDir('fl-cat-');
// Scenario loads run their short form here (fleet-reconnect: 200 devices, not 1,000): the suite checks the
// mechanism and the thresholds both ways, never the machine's speed. A value set outside wins.
process.env.FIELDLAB_LOAD_SCALE ??= '0.2';

describe('scenario catalogue on loopback', async () => {
  const { loaded, errors } = await loadScenarios(['scenarios']);
  // Every variant in its own lab (its own loopback block), three at once across scenarios: a variant that
  // waits out a timeout by design overlaps other scenarios' variants. Scenarios with a load run afterwards
  // on their own, their variants two at once as before.
  const run = catalogueRun(loaded, {
    backend: 'loopback',
    concurrency: 3,
    alone: hasLoad,
    aloneConcurrency: 2,
  });
  it('every scenario file is valid', () => {
    expect(errors.map((e) => e.message)).toEqual([]);
    expect(loaded.length).toBeGreaterThan(0);
  });
  for (const l of loaded) {
    // Bounded by the whole run (a scenario's variants may be among the last to start), not by its own.
    it(`${l.scenario.name}: every variant behaves as expected`, { timeout: 600_000 }, async () => {
      expectAllPassed(await run.of(l.scenario.name), { allowSkipped: true });
    });
  }
});
