import { describe, expect, it } from 'vitest';
import { runVariant } from '../../harness/runner/run-variant.js';
import type { LoadedScenario } from '../../harness/scenario/load.js';
import { type ScenarioInput, scenarioSchema } from '../../harness/scenario/model.js';
import { missing } from '../helpers/capability.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * A scenario's load on the k6 driver: load/tunnel-throughput.js runs against the lab's tunnel service
 * through its relay (the variant's latency toxic in the path), with the scenario's thresholds handed to k6;
 * k6's summary export and exit code make the verdict. Checked both ways: the thresholds hold, and one set
 * to fail makes the variant fail with load.threshold.
 */
useTempStateDir('fl-k6sc-');

const input: ScenarioInput = {
  name: 'k6-tunnel',
  title: 'k6 tunnel throughput through the lab relay',
  lab: {
    simulators: [
      { name: 'tunnels', type: 'tunnel-service', host: 'tunnels.iot.example.com', options: { tls: false } },
    ],
  },
  load: {
    driver: 'k6',
    script: 'tunnel-throughput.js',
    vus: 1,
    duration: '2s',
    options: {
      API_URL: 'http://${tunnels.api.address}:${tunnels.api.port}',
      DATA_URL: 'ws://${tunnels.data.address}:${tunnels.data.port}',
      SESSION: '1s',
    },
    thresholds: { tunnel_frames: ['count>0'], tunnel_data_errors: ['rate==0'] },
  },
  variants: [
    {
      name: 'fixed',
      faults: [{ target: 'tunnels.data', type: 'latency', latency: 20 }],
      expect: { result: 'pass', labSaw: [{ source: 'tunnels.data-relay', type: 'toxic-applied' }] },
    },
    {
      name: 'broken-impossible',
      load: { thresholds: { tunnel_frame_latency_ms: ['p(95)<0'] } },
      expect: { result: 'fail', class: 'load.threshold' },
    },
  ],
};
const loaded: LoadedScenario = { file: 'k6-tunnel.yaml', scenario: scenarioSchema.parse(input) };
const variant = (name: string) => loaded.scenario.variants.find((v) => v.name === name)!;

describe.skipIf(missing('k6'))('a scenario load on k6', () => {
  it('thresholds hold: k6 summary figures reach the result, through the relay and its toxic', async () => {
    const r = await runVariant(loaded, variant('fixed'), { backend: 'loopback' });
    expect(r.error).toBeUndefined();
    expect(r.status, `${r.explanation.join('\n')}\n${r.load?.output}`).toBe('passed');
    const l = r.load!;
    expect(l.driver).toBe('k6');
    expect(l.exitCode).toBe(0);
    expect(l.metrics.tunnel_frames?.values.count).toBeGreaterThan(0);
    // The frame latency went through the 20 ms toxic: its median is at least that.
    expect(l.metrics.tunnel_frame_latency_ms?.values['p(50)']).toBeGreaterThanOrEqual(20);
    expect(l.thresholds.map((t) => `${t.metric} ${t.expression} ${t.ok}`).sort()).toEqual([
      'tunnel_data_errors rate==0 true',
      'tunnel_frames count>0 true',
    ]);
  }, 60_000);

  it('a threshold set to fail: k6 exits 99 and the variant fails with load.threshold', async () => {
    const r = await runVariant(loaded, variant('broken-impossible'), { backend: 'loopback' });
    expect(r.error).toBeUndefined();
    expect(r.status, `${r.explanation.join('\n')}\n${r.load?.output}`).toBe('passed');
    expect(r.observed?.class).toBe('load.threshold');
    expect(r.load?.exitCode).toBe(99);
    expect(r.load?.thresholds.find((t) => t.expression === 'p(95)<0')?.ok).toBe(false);
  }, 60_000);
});
