import { describe, expect, it } from 'vitest';
import { MetricSet, percentile } from '../../harness/load/metrics.js';
import { exportSummary, formatSummary } from '../../harness/load/summary.js';

describe('Node driver metrics and thresholds (k6 semantics)', () => {
  const make = () =>
    new MetricSet({
      bytes: { type: 'counter' },
      lat: { type: 'trend', time: true },
      errs: { type: 'rate' },
    });

  it('aggregates like k6: counter count/rate, trend percentiles, rate share of non-zero samples', () => {
    const m = make();
    for (let i = 1; i <= 100; i++) m.add('lat', i);
    m.add('bytes', 500);
    m.add('bytes', 1500);
    m.add('errs', false);
    m.add('errs', false);
    m.add('errs', false);
    m.add('errs', true);
    expect(m.values('bytes', 2000)).toEqual({ count: 2000, rate: 1000 });
    expect(m.values('errs', 2000)).toEqual({ passes: 1, fails: 3, value: 0.25 });
    const lat = m.values('lat', 2000);
    expect(lat.avg).toBe(50.5);
    expect(lat.med).toBe(50.5);
    expect(lat['p(95)']).toBeCloseTo(95.05, 5);
    expect(percentile([10], 99)).toBe(10);
  });

  it('evaluates thresholds and exports failed ones as true', () => {
    const m = make();
    m.add('lat', 10);
    m.add('lat', 20);
    m.add('errs', 0);
    const results = m.evaluate({ lat: ['p(95)<500', 'max<15'], errs: ['rate==0'], bytes: ['count>0'] }, 1000);
    expect(results.map((r) => [r.expression, r.ok])).toEqual([
      ['p(95)<500', true],
      ['max<15', false],
      ['rate==0', true],
      ['count>0', false],
    ]);
    const exported = exportSummary(m, results, 1000);
    expect(exported.metrics.lat?.thresholds).toEqual({ 'p(95)<500': false, 'max<15': true });
    expect(exported.metrics.bytes).toMatchObject({ count: 0, thresholds: { 'count>0': true } });
    const text = formatSummary(m, results, 1000);
    expect(text).toContain("✗ 'max<15' max=20ms");
    expect(text).toContain("✓ 'rate==0' rate=0%");
  });

  it('a trend without samples reads 0 like k6; bad expressions are E_BAD_THRESHOLD', () => {
    const m = make();
    expect(m.evaluate({ lat: ['p(95)<500', 'p(95)<0'] }, 1000).map((r) => r.ok)).toEqual([true, false]);
    expect(() => m.evaluate({ lat: ['p95 < 5'] }, 1000)).toThrow(
      expect.objectContaining({ code: 'E_BAD_THRESHOLD' }),
    );
    expect(() => m.evaluate({ errs: ['avg<1'] }, 1000)).toThrow(
      expect.objectContaining({ code: 'E_BAD_THRESHOLD' }),
    );
  });
});
