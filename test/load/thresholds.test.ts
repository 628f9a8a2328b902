import { describe, expect, it } from 'vitest';
import { MetricSet } from '../../harness/load/metrics.js';
import { holds, parseThreshold, parseThresholds } from '../../harness/load/thresholds.js';
import { isFieldlabError } from '../../simulators/common/errors.js';

describe('k6 thresholds', () => {
  it('parses k6 syntax: aggregation, percentile, operator, number', () => {
    expect(parseThreshold('m', 'p(95)<500')).toEqual({
      expression: 'p(95)<500',
      aggregation: 'p(95)',
      percentile: 95,
      op: '<',
      value: 500,
    });
    expect(parseThreshold('m', ' rate <= 0.01 ')).toMatchObject({
      aggregation: 'rate',
      op: '<=',
      value: 0.01,
    });
    expect(parseThreshold('m', 'count>0')).toMatchObject({ aggregation: 'count', op: '>', value: 0 });
    expect(parseThreshold('m', 'p(99.9)<1.5')).toMatchObject({ percentile: 99.9, value: 1.5 });
    expect(parseThreshold('m', 'max>=-1')).toMatchObject({ op: '>=', value: -1 });
    expect(parseThresholds({ a: ['rate==0', 'rate!=1'], b: ['avg<2'] }).map((t) => t.metric)).toEqual([
      'a',
      'a',
      'b',
    ]);
  });

  it('a bad expression is a FieldlabError that names the metric and the expression', () => {
    for (const bad of ['p95<500', 'p(95)', 'rate < ten', 'p(101)<5', 'mean<3', '']) {
      let err: unknown;
      try {
        parseThreshold('tunnel_open_ms', bad);
      } catch (e) {
        err = e;
      }
      expect(isFieldlabError(err) && err.code, bad).toBe('E_BAD_THRESHOLD');
      expect((err as Error).message).toContain('tunnel_open_ms');
    }
  });

  it('holds compares like k6', () => {
    expect(holds(499, { op: '<', value: 500 })).toBe(true);
    expect(holds(500, { op: '<', value: 500 })).toBe(false);
    expect(holds(500, { op: '<=', value: 500 })).toBe(true);
    expect(holds(0, { op: '==', value: 0 })).toBe(true);
    expect(holds(0, { op: '===', value: 0 })).toBe(true);
    expect(holds(1, { op: '!=', value: 0 })).toBe(true);
    expect(holds(1, { op: '>', value: 1 })).toBe(false);
    expect(holds(1, { op: '>=', value: 1 })).toBe(true);
  });

  it('the Node driver evaluates them both ways against its metrics', () => {
    const m = new MetricSet({
      t: { type: 'trend', time: true },
      e: { type: 'rate' },
      c: { type: 'counter' },
    });
    for (const v of [10, 20, 30, 40, 50]) m.add('t', v);
    m.add('e', false);
    m.add('e', true);
    m.add('c', 3);
    const r = m.evaluate({ t: ['p(50)<=30', 'max<50'], e: ['rate<0.6', 'rate==0'], c: ['count>2'] }, 1000);
    expect(r.map((x) => `${x.metric} ${x.expression} ${x.ok}`)).toEqual([
      't p(50)<=30 true',
      't max<50 false',
      'e rate<0.6 true',
      'e rate==0 false',
      'c count>2 true',
    ]);
  });
});
