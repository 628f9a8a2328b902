import { formatMs } from '../../simulators/common/duration.js';
import type { LoadMetric, LoadResult } from '../load/result.js';

/**
 * A load's figures as text, shared by the console, JUnit and HTML reports: a heading line, one line per
 * metric (trends: p50/p95/p99/max and count; counters: count and rate; rates: share and counts), and the
 * thresholds with their verdicts in k6's words.
 */

/** `12.3` / `0.82` / `1.2e+6`: short numbers for tables. */
export function num(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  if (Math.abs(v) >= 1e6) return v.toExponential(2);
  if (Math.abs(v) >= 100) return String(Math.round(v));
  return String(Number(v.toPrecision(3)));
}

/** A value in the metric's unit: times as durations, others as numbers with the unit. */
export function metricValue(m: Pick<LoadMetric, 'unit'>, v: number | undefined): string {
  if (v === undefined) return '–';
  return m.unit === 'ms' ? formatMs(v) : `${num(v)}${m.unit && m.unit !== 'bytes' ? ` ${m.unit}` : ''}`;
}

/** One metric's summary: `p50 2.3s  p95 5.4s  p99 8.7s  max 10.6s  (200)`. */
export function metricText(m: LoadMetric): string {
  const v = m.values;
  switch (m.type) {
    case 'trend':
      if (!v.count) return 'no samples';
      return (
        `p50 ${metricValue(m, v['p(50)'])}  p95 ${metricValue(m, v['p(95)'])}  ` +
        `p99 ${metricValue(m, v['p(99)'])}  max ${metricValue(m, v.max)}  (${v.count})`
      );
    case 'rate': {
      const total = (v.passes ?? 0) + (v.fails ?? 0);
      return `${num((v.value ?? 0) * 100)}% (${v.passes ?? 0} of ${total})`;
    }
    default:
      return m.unit === 'bytes'
        ? `${num((v.count ?? 0) / 1e6)} MB (${num((v.rate ?? 0) / 1e6)} MB/s)`
        : `${num(v.count)} (${num(v.rate)}/s)`;
  }
}

/** `node mqtt-fleet · 200 VUs · 13.6s · 200 iterations · 0 errors`. */
export function loadHeading(l: LoadResult): string {
  return (
    `${l.driver} ${l.script} · ${l.vus} VU${l.vus === 1 ? '' : 's'} · ${formatMs(l.durationMs)} · ` +
    `${l.iterations} iteration${l.iterations === 1 ? '' : 's'} · ${num(l.errors)} error${l.errors === 1 ? '' : 's'}`
  );
}

/** `✓ reconnected 'rate==1' (rate=1)`. */
export function thresholdLines(l: LoadResult): string[] {
  return l.thresholds.map(
    (t) => `${t.ok ? '✓' : '✗'} ${t.metric} '${t.expression}' (${t.aggregation}=${num(t.value)})`,
  );
}

/** The whole block: heading, metric lines (names padded), thresholds. */
export function loadLines(l: LoadResult): string[] {
  const names = Object.keys(l.metrics);
  const width = Math.max(0, ...names.map((n) => n.length));
  return [
    `load: ${loadHeading(l)}`,
    ...names.map((n) => `  ${n.padEnd(width)}  ${metricText(l.metrics[n] as LoadMetric)}`),
    ...(l.thresholds.length > 0 ? ['  thresholds:', ...thresholdLines(l).map((t) => `    ${t}`)] : []),
  ];
}

/** JUnit properties: `load.<metric>.<stat>` figures and `load.threshold.<metric> <expr>` verdicts. */
export function loadProperties(l: LoadResult): Array<{ name: string; value: string }> {
  const out: Array<{ name: string; value: string }> = [
    { name: 'load.vus', value: String(l.vus) },
    { name: 'load.durationMs', value: String(Math.round(l.durationMs)) },
    { name: 'load.iterations', value: String(l.iterations) },
    { name: 'load.errors', value: String(l.errors) },
  ];
  for (const [name, m] of Object.entries(l.metrics)) {
    const keys =
      m.type === 'trend' ? ['p(50)', 'p(95)', 'p(99)', 'max', 'count'] : ['count', 'rate', 'value'];
    for (const k of keys) {
      const v = m.values[k];
      if (v !== undefined) out.push({ name: `load.${name}.${k}`, value: String(Number(v.toFixed(3))) });
    }
  }
  for (const t of l.thresholds) {
    out.push({ name: `load.threshold.${t.metric} ${t.expression}`, value: t.ok ? 'pass' : 'fail' });
  }
  return out;
}
