import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VariantResult } from '../../harness/runner/result.js';
import { runVariant } from '../../harness/runner/run-variant.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Variant } from '../../harness/scenario/model.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * `fleet-reconnect` in its CI form: FIELDLAB_LOAD_SCALE=0.2 (200 MQTT.js devices, the ramp scaled with
 * them) against the hub's connect throttle (100 CONNECTs/s). Lockstep reconnects keep the throttle's
 * window full (CONNACK 3, devices not back: the thresholds fail the load); backoff with jitter gets
 * everyone back. Thresholds here test the mechanism (throttle, policy), not the machine's speed.
 */
useTempStateDir('fl-fleet-');

const loaded = await loadScenario('scenarios/fleet-reconnect.yaml');
const variant = (name: string, duration: number): Variant => {
  const v = loaded.scenario.variants.find((x) => x.name === name);
  if (!v) throw new Error(`no variant ${name}`);
  return { ...v, load: { ...v.load, duration } };
};
const run = (v: Variant): Promise<VariantResult> => runVariant(loaded, v, { backend: 'loopback' });

let saved: string | undefined;
beforeAll(() => {
  saved = process.env.FIELDLAB_LOAD_SCALE;
  process.env.FIELDLAB_LOAD_SCALE = '0.2';
});
afterAll(() => {
  if (saved === undefined) delete process.env.FIELDLAB_LOAD_SCALE;
  else process.env.FIELDLAB_LOAD_SCALE = saved;
});

describe('fleet-reconnect', () => {
  it('fixed: backoff with jitter brings all 200 devices back through the throttle', async () => {
    // Full jitter is random and the cap is 32 s: the fleet gets as long as the scenario's own remainder,
    // and the load ends as soon as every device is back (no fixed wait).
    const r = await run(variant('fixed', 60_000));
    expect(r.error).toBeUndefined();
    expect(r.status, `${r.explanation.join('\n')}\n${r.load?.output}`).toBe('passed');
    const l = r.load!;
    expect(l.vus).toBe(200);
    expect(l.metrics.reconnected?.values).toMatchObject({ passes: 200, fails: 0 });
    expect(l.metrics.reconnect_ms?.values.count).toBe(200);
    // The reconnect-time distribution is reported: a histogram over all 200 devices.
    expect(l.histogram?.metric).toBe('reconnect_ms');
    expect(l.histogram?.buckets.reduce((a, b) => a + b.count, 0)).toBe(200);
    expect(l.metrics.reconnect_ms?.values['p(99)']).toBeGreaterThan(0);
    // The hub did throttle: some CONNACKs were 3, and the devices saw them.
    expect(
      r.events.some(
        (e) => e.type === 'client-rejected' && (e.data as { returnCode?: number }).returnCode === 3,
      ),
    ).toBe(true);
  }, 90_000);

  it('broken: lockstep reconnects stay throttled, the thresholds fail the load', async () => {
    const r = await run(variant('broken', 6_000));
    expect(r.error).toBeUndefined();
    expect(r.status, `${r.explanation.join('\n')}\n${r.load?.output}`).toBe('passed');
    expect(r.observed?.class).toBe('load.threshold');
    const l = r.load!;
    expect(l.metrics.connack_refused?.values.count).toBeGreaterThan(0);
    expect(l.metrics.reconnected?.values.fails).toBeGreaterThan(0);
    expect(l.thresholds.find((t) => t.metric === 'reconnected')?.ok).toBe(false);
  }, 90_000);
});
