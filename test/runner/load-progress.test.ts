import { describe, expect, it } from 'vitest';
import { Progress } from '../../harness/report/progress.js';
import { runAll } from '../../harness/runner/run.js';
import { loadScenario } from '../../harness/scenario/load.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * Live progress of a load: runAll's `onLoad` hook gets the running variant's id, VUs and current rate
 * about every second, and `Progress.load` prints it (plain lines when not a TTY).
 */
useTempStateDir('fl-lprog-');

describe('load progress', () => {
  it('runAll reports a running load through onLoad, and Progress prints it', async () => {
    const loaded = await loadScenario('scenarios/tunnel-throughput.yaml');
    const s = loaded.scenario;
    const fixed = s.variants.find((v) => v.name === 'fixed')!;
    const one = {
      ...loaded,
      scenario: { ...s, variants: [{ ...fixed, load: { ...fixed.load, vus: 2, duration: 2500 } }] },
    };
    let out = '';
    const stream = {
      isTTY: false,
      write: (t: string) => {
        out += t;
      },
    };
    const progress = new Progress(stream, 1, { loadEveryMs: 0 });
    const seen: Array<{ id: string; vus: number; unit: string }> = [];
    const run = await runAll([one], {
      backend: 'loopback',
      onStart: (id) => progress.start(id),
      onResult: (r) => progress.finish(r),
      onLoad: (id, status) => {
        seen.push({ id, vus: status.vus, unit: status.unit });
        progress.load(id, status);
      },
    });
    progress.stop();
    expect(run.results[0]?.status, run.results[0]?.explanation.join('\n')).toBe('passed');
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((x) => x.id === 'tunnel-throughput/fixed' && x.unit === ' MB/s')).toBe(true);
    expect(Math.max(...seen.map((x) => x.vus))).toBeGreaterThan(0);
    expect(out).toMatch(/tunnel-throughput\/fixed {2}load \d+ VUs? [\d.]+ MB\/s/);
  }, 60_000);
});
