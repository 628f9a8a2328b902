import { describe, expect, it } from 'vitest';
import type { VariantResult } from '../../harness/runner/result.js';
import { runVariant } from '../../harness/runner/run-variant.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Variant } from '../../harness/scenario/model.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * `tunnel-throughput` in its short form: tunnel streams through the real localproxies, the service and
 * the corporate CONNECT proxy. Thresholds are checked both ways: the fixed variant's hold, a slow-uplink
 * toxic makes a throughput threshold fail the variant, and the service's bandwidth limit caps each
 * stream (an upper bound: the mechanism, never the machine's speed).
 */
useTempStateDir('fl-tthr-');

const loaded = await loadScenario('scenarios/tunnel-throughput.yaml');
const s = loaded.scenario;
const variant = (name: string): Variant => {
  const v = s.variants.find((x) => x.name === name);
  if (!v) throw new Error(`no variant ${name}`);
  return v;
};
// Two streams, a short session: seconds in CI.
const short = (v: Variant): Variant => ({ ...v, load: { ...v.load, vus: 2, duration: 2000 } });
const run = (name: string): Promise<VariantResult> =>
  runVariant(loaded, short(variant(name)), { backend: 'loopback' });

describe('tunnel-throughput', () => {
  it('fixed: streams flow through the proxy, every threshold holds, figures reach the result', async () => {
    const r = await run('fixed');
    expect(r.error).toBeUndefined();
    expect(r.status, r.explanation.join('\n')).toBe('passed');
    const l = r.load!;
    expect(l.driver).toBe('node');
    expect(l.vus).toBe(2);
    expect(l.iterations).toBeGreaterThan(0);
    expect(l.errors).toBe(0);
    expect(l.metrics.tunnel_bytes?.values.count).toBeGreaterThan(0);
    expect(l.metrics.tunnel_open_ms?.values['p(95)']).toBeGreaterThan(0);
    expect(l.metrics.stream_mbps?.values['p(50)']).toBeGreaterThan(0);
    expect(l.thresholds.every((t) => t.ok)).toBe(true);
    expect(l.histogram?.buckets.reduce((a, b) => a + b.count, 0)).toBe(l.iterations);
    expect(l.series?.points.some((p) => p > 0)).toBe(true);
    // The operator's side went through the corporate proxy.
    expect(r.events.some((e) => e.source === 'proxy' && e.type === 'connect-allowed')).toBe(true);
  }, 60_000);

  it('broken-slow-uplink: the toxic caps each stream, the 1 MB/s threshold fails the variant', async () => {
    const r = await run('broken-slow-uplink');
    expect(r.error).toBeUndefined();
    // As expected: the load failed with load.threshold, so the variant passes its expectation.
    expect(r.status, r.explanation.join('\n')).toBe('passed');
    expect(r.observed?.class).toBe('load.threshold');
    const crossed = r.load!.thresholds.filter((t) => !t.ok).map((t) => t.metric);
    expect(crossed).toEqual(['stream_mbps']);
    // 200 KB/s toward the service: no stream can exceed it.
    expect(r.load!.metrics.stream_mbps?.values.max).toBeLessThan(0.25);
  }, 60_000);

  it('a threshold set to fail makes the variant fail', async () => {
    const v = short(variant('fixed'));
    const r = await runVariant(
      loaded,
      { ...v, load: { ...v.load, thresholds: { tunnel_open_ms: ['p(95)<0'] } } },
      { backend: 'loopback' },
    );
    expect(r.status).toBe('failed');
    expect(r.observed?.class).toBe('load.threshold');
    expect(r.observed?.detail).toMatch(/tunnel_open_ms 'p\(95\)<0'/);
  }, 60_000);

  it('fixed-service-limit: every stream stays at or under the 800 KB/s the service allows', async () => {
    const r = await run('fixed-service-limit');
    expect(r.error).toBeUndefined();
    expect(r.status, r.explanation.join('\n')).toBe('passed');
    expect(r.load!.metrics.stream_mbps?.values.max).toBeLessThanOrEqual(0.95);
    expect(r.load!.metrics.tunnel_bytes?.values.count).toBeGreaterThan(0);
  }, 60_000);
});
