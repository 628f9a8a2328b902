import type { MetricSet, ThresholdResult } from './metrics.js';

/**
 * The Node driver's end-of-test output in k6's shapes: `formatSummary` prints like k6's console summary
 * (THRESHOLDS then TOTAL RESULTS), `exportSummary` builds k6's `--summary-export` JSON, so tools that
 * read k6's file read this one too.
 */

/** k6's `--summary-export` document (the parts fieldlab writes). */
export interface SummaryExport {
  root_group: {
    name: '';
    path: '';
    id: string;
    groups: Record<string, never>;
    checks: Record<string, never>;
  };
  metrics: Record<string, Record<string, number> & { thresholds?: Record<string, boolean> }>;
  /** Not in k6's file: which driver produced it. */
  driver: 'node';
}

/** Builds the export; a threshold maps to `true` when it FAILED (k6's legacy format). */
export function exportSummary(set: MetricSet, results: ThresholdResult[], elapsedMs: number): SummaryExport {
  const metrics: SummaryExport['metrics'] = {};
  for (const name of set.names()) {
    const entry: SummaryExport['metrics'][string] = { ...set.values(name, elapsedMs) };
    const mine = results.filter((r) => r.metric === name);
    if (mine.length > 0) entry.thresholds = Object.fromEntries(mine.map((r) => [r.expression, !r.ok]));
    metrics[name] = entry;
  }
  return {
    // md5('') like k6's root group id.
    root_group: { name: '', path: '', id: 'd41d8cd98f00b204e9800998ecf8427e', groups: {}, checks: {} },
    metrics,
    driver: 'node',
  };
}

/** k6-style duration: `850µs`, `12.34ms`, `1.5s`. */
export function formatTime(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 1) return `${trim(ms * 1000)}µs`;
  if (ms < 1000) return `${trim(ms)}ms`;
  return `${trim(ms / 1000)}s`;
}

function trim(v: number): string {
  return String(Number(v.toFixed(2)));
}

function formatValue(set: MetricSet, name: string, v: number): string {
  return set.isTime(name) ? formatTime(v) : trim(v);
}

/** k6's console summary, for the Node driver. */
export function formatSummary(set: MetricSet, results: ThresholdResult[], elapsedMs: number): string {
  const lines: string[] = ['', '  █ THRESHOLDS', ''];
  for (const metric of new Set(results.map((r) => r.metric))) {
    lines.push(`    ${metric}`);
    for (const r of results.filter((x) => x.metric === metric)) {
      const shown =
        set.type(metric) === 'rate' ? `${trim(r.value * 100)}%` : formatValue(set, metric, r.value);
      lines.push(`    ${r.ok ? '✓' : '✗'} '${r.expression}' ${r.aggregation}=${shown}`);
    }
    lines.push('');
  }
  lines.push('', '  █ TOTAL RESULTS', '', '    CUSTOM');
  const width = Math.max(...set.names().map((n) => n.length)) + 4;
  for (const name of set.names()) {
    const v = set.values(name, elapsedMs);
    let text: string;
    switch (set.type(name)) {
      case 'counter':
        text = `${v.count} ${trim(v.rate ?? 0)}/s`;
        break;
      case 'rate': {
        const total = (v.passes ?? 0) + (v.fails ?? 0);
        text = `${trim((v.value ?? 0) * 100)}% ${v.passes} out of ${total}`;
        break;
      }
      default:
        text = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)']
          .map((k) => `${k}=${formatValue(set, name, v[k] ?? 0)}`)
          .join(' ');
    }
    lines.push(`    ${name}${'.'.repeat(width - name.length)}: ${text}`);
  }
  lines.push('', `    run time: ${formatTime(elapsedMs)}`, '');
  return lines.join('\n');
}
