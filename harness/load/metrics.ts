import { FieldlabError } from '../../simulators/common/errors.js';
import { holds, parseThresholds } from './thresholds.js';

/**
 * k6's metric types and thresholds, for the built-in Node driver: Counter (count, rate per second),
 * Trend (avg, min, med, max, p(90), p(95)), Rate (share of non-zero samples). Thresholds use k6's syntax
 * (`p(95)<500`, `rate==0`, `count>0`) and the same aggregation rules, so the Node driver fails a run exactly
 * when k6 would. The export is k6's `--summary-export` JSON (the "legacy" format: per metric its values
 * and `thresholds: { expr: failed }`).
 */

export type MetricType = 'counter' | 'trend' | 'rate';

interface MetricState {
  type: MetricType;
  /** Trend values are milliseconds (k6 `isTime`): printed with units. */
  time: boolean;
  /** Trend samples (counters and rates keep only sums). */
  samples: number[];
  /** Number of samples added. */
  n: number;
  sum: number;
  nonZero: number;
}

/** A threshold's verdict, as k6 prints it. */
export interface ThresholdResult {
  metric: string;
  expression: string;
  /** The aggregation's value (0 when a trend has no samples, like k6). */
  value: number;
  aggregation: string;
  ok: boolean;
}

/** A set of named metrics, one run's worth. */
export class MetricSet {
  private readonly metrics = new Map<string, MetricState>();

  constructor(defs: Record<string, { type: MetricType; time?: boolean }>) {
    for (const [name, d] of Object.entries(defs)) {
      this.metrics.set(name, { type: d.type, time: d.time ?? false, samples: [], n: 0, sum: 0, nonZero: 0 });
    }
  }

  /** Adds a sample (Counter: an increment; Trend: a value; Rate: 0/false or non-zero/true). */
  add(name: string, value: number | boolean): void {
    const m = this.metrics.get(name);
    if (!m) throw new Error(`unknown metric ${name}`);
    const v = typeof value === 'boolean' ? Number(value) : value;
    m.n++;
    m.sum += v;
    if (v !== 0) m.nonZero++;
    if (m.type === 'trend') m.samples.push(v);
  }

  names(): string[] {
    return [...this.metrics.keys()];
  }

  /** The metric's values as k6's legacy summary export names them. */
  values(name: string, elapsedMs: number): Record<string, number> {
    const m = this.metrics.get(name);
    if (!m) throw new Error(`unknown metric ${name}`);
    const seconds = elapsedMs / 1000;
    switch (m.type) {
      case 'counter':
        return { count: m.sum, rate: seconds > 0 ? m.sum / seconds : 0 };
      case 'rate': {
        const n = m.n;
        return { passes: m.nonZero, fails: n - m.nonZero, value: n > 0 ? m.nonZero / n : 0 };
      }
      case 'trend': {
        const s = [...m.samples].sort((a, b) => a - b);
        const n = s.length;
        if (n === 0) return { avg: 0, min: 0, med: 0, max: 0, 'p(90)': 0, 'p(95)': 0 };
        return {
          avg: m.sum / n,
          min: s[0] as number,
          med: percentile(s, 50),
          max: s[n - 1] as number,
          'p(90)': percentile(s, 90),
          'p(95)': percentile(s, 95),
        };
      }
    }
  }

  /** The value a threshold aggregation reads (0 for a trend without samples, as k6's empty TrendSink). */
  aggregate(name: string, aggregation: string, elapsedMs: number): number {
    const m = this.metrics.get(name);
    if (!m) throw new Error(`unknown metric ${name}`);
    const seconds = elapsedMs / 1000;
    const n = m.n;
    if (m.type === 'counter') {
      if (aggregation === 'count') return m.sum;
      if (aggregation === 'rate') return seconds > 0 ? m.sum / seconds : 0;
    } else if (m.type === 'rate') {
      if (aggregation === 'rate') return n > 0 ? m.nonZero / n : 0;
    } else {
      if (n === 0) return 0;
      const s = [...m.samples].sort((a, b) => a - b);
      if (aggregation === 'avg') return m.sum / n;
      if (aggregation === 'min') return s[0] as number;
      if (aggregation === 'max') return s[n - 1] as number;
      if (aggregation === 'med') return percentile(s, 50);
      if (aggregation === 'count') return n;
      const p = /^p\((\d+(?:\.\d+)?)\)$/.exec(aggregation);
      if (p) return percentile(s, Number(p[1]));
    }
    throw new FieldlabError(
      'E_BAD_THRESHOLD',
      `${name}: aggregation ${aggregation} does not apply to a ${m.type}`,
      {
        hint: 'counters take count/rate, rates take rate, trends take avg/min/max/med/p(N)',
      },
    );
  }

  /** Evaluates k6 threshold expressions against the metrics. */
  evaluate(thresholds: Record<string, string[]>, elapsedMs: number): ThresholdResult[] {
    return parseThresholds(thresholds).map((t) => {
      const value = this.aggregate(t.metric, t.aggregation, elapsedMs);
      return {
        metric: t.metric,
        expression: t.expression,
        value,
        aggregation: t.aggregation,
        ok: holds(value, t),
      };
    });
  }

  /** A trend's samples in the order they were added (for histograms). */
  samples(name: string): readonly number[] {
    return this.metrics.get(name)?.samples ?? [];
  }

  isTime(name: string): boolean {
    return this.metrics.get(name)?.time ?? false;
  }

  type(name: string): MetricType | undefined {
    return this.metrics.get(name)?.type;
  }
}

/** k6's percentile: linear interpolation between the closest ranks of the sorted samples. */
export function percentile(sorted: readonly number[], p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  if (n === 1) return sorted[0] as number;
  const rank = (p / 100) * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, n - 1);
  const a = sorted[lo] as number;
  return a + ((sorted[hi] as number) - a) * (rank - lo);
}
