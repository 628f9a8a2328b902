/**
 * A load in the HTML report: its heading, a table of figures (p50/p95/p99 per metric, counts, rates), the
 * thresholds with their verdicts, and two inline SVG charts, no script and no external URL: a histogram
 * of the main latency (reconnect time, tunnel open time) and throughput over time.
 */
import { formatMs } from '../../simulators/common/duration.js';
import type { LoadHistogram, LoadMetric, LoadResult, LoadSeries } from '../load/result.js';
import { esc } from './html.js';
import { loadHeading, metricText, metricValue, num } from './load-text.js';

const W = 600;
const H = 180;
/** Plot area inside the viewBox: room for the axis labels. */
const PAD = { left: 56, right: 12, top: 12, bottom: 30 };

/** A round axis maximum (1, 2, 2.5, 5 × 10^k) at or above v. */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const pow = 10 ** Math.floor(Math.log10(v));
  return ([1, 2, 2.5, 5, 10].map((m) => m * pow).find((x) => x >= v) ?? v) || 1;
}

function f(v: number): string {
  return String(Number(v.toFixed(2)));
}

function axisValue(unit: string, v: number): string {
  return unit === 'ms' ? formatMs(v) : num(v);
}

/** Y grid lines and labels at 0, ½ and the max. */
function yAxis(max: number, unit: string): string {
  const ph = H - PAD.top - PAD.bottom;
  return [0, 0.5, 1]
    .map((k) => {
      const y = PAD.top + ph * (1 - k);
      return (
        `<line class="gridline" x1="${PAD.left}" x2="${W - PAD.right}" y1="${f(y)}" y2="${f(y)}"/>` +
        `<text x="${PAD.left - 4}" y="${f(y + 3)}" text-anchor="end">${esc(axisValue(unit, max * k))}</text>`
      );
    })
    .join('');
}

/** The histogram: one bar per bucket, x from the first bucket's `from` to the last's `to`. */
export function histogramSvg(h: LoadHistogram): string {
  const total = h.buckets.reduce((a, b) => a + b.count, 0);
  if (h.buckets.length === 0 || total === 0) return '';
  // Counts: at least 2 so the middle grid line is a whole number.
  const max = niceMax(Math.max(2, ...h.buckets.map((b) => b.count)));
  const pw = W - PAD.left - PAD.right;
  const ph = H - PAD.top - PAD.bottom;
  const bw = pw / h.buckets.length;
  const bars = h.buckets
    .map((b, i) => {
      const bh = (b.count / max) * ph;
      const unitText = h.unit === 'ms' ? '' : ` ${h.unit}`;
      const label = `${axisValue(h.unit, b.from)}–${axisValue(h.unit, b.to)}${unitText}: ${b.count}`;
      return (
        `<rect class="bar-h" data-count="${b.count}" x="${f(PAD.left + i * bw + 1)}" y="${f(PAD.top + ph - bh)}" ` +
        `width="${f(Math.max(1, bw - 2))}" height="${f(bh)}"><title>${esc(label)}</title></rect>`
      );
    })
    .join('');
  const lo = h.buckets[0]?.from ?? 0;
  const hi = h.buckets[h.buckets.length - 1]?.to ?? 0;
  const xLabels =
    `<text x="${PAD.left}" y="${H - 10}">${esc(axisValue(h.unit, lo))}</text>` +
    `<text x="${W - PAD.right}" y="${H - 10}" text-anchor="end">${esc(axisValue(h.unit, hi))}</text>` +
    `<text x="${PAD.left + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(h.metric)} (${total})</text>`;
  return (
    `<figure class="chart histogram" data-metric="${esc(h.metric)}"><h4>${esc(h.metric)}: distribution</h4>` +
    `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(`histogram of ${h.metric}`)}">` +
    `${yAxis(max, '')}${bars}${xLabels}</svg></figure>`
  );
}

/** Throughput over time: a line (and its area) of the series' points. */
export function seriesSvg(s: LoadSeries): string {
  if (s.points.length === 0) return '';
  const max = niceMax(Math.max(...s.points));
  const pw = W - PAD.left - PAD.right;
  const ph = H - PAD.top - PAD.bottom;
  const n = s.points.length;
  const x = (i: number) => PAD.left + (n === 1 ? pw / 2 : (i / (n - 1)) * pw);
  const y = (v: number) => PAD.top + ph * (1 - v / max);
  const pts = s.points.map((v, i) => `${f(x(i))},${f(y(v))}`).join(' ');
  const area = `${f(x(0))},${f(PAD.top + ph)} ${pts} ${f(x(n - 1))},${f(PAD.top + ph)}`;
  const totalMs = n * s.stepMs;
  const xLabels =
    `<text x="${PAD.left}" y="${H - 10}">0</text>` +
    `<text x="${W - PAD.right}" y="${H - 10}" text-anchor="end">${esc(formatMs(totalMs))}</text>` +
    `<text x="${PAD.left + pw / 2}" y="${H - 10}" text-anchor="middle">${esc(`${s.unit} over time`)}</text>`;
  return (
    `<figure class="chart series" data-metric="${esc(s.metric)}"><h4>${esc(`throughput (${s.unit})`)}</h4>` +
    `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(`${s.unit} over time`)}">` +
    `${yAxis(max, '')}<polygon class="area" points="${area}"/>` +
    `<polyline class="line" points="${pts}"/>${xLabels}</svg></figure>`
  );
}

function figuresTable(l: LoadResult): string {
  const rows = Object.entries(l.metrics).map(([name, m]: [string, LoadMetric]) => {
    const v = m.values;
    const cells =
      m.type === 'trend'
        ? [v['p(50)'], v['p(95)'], v['p(99)'], v.max].map((x) => metricValue(m, x)).concat(num(v.count))
        : ['', '', '', '', metricText(m)];
    return `<tr><td>${esc(name)}</td>${cells.map((c) => `<td class="num">${esc(c)}</td>`).join('')}</tr>`;
  });
  return (
    `<table class="figures"><thead><tr><th>metric</th><th class="num">p50</th><th class="num">p95</th>` +
    `<th class="num">p99</th><th class="num">max</th><th class="num">count</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
  );
}

function thresholdList(l: LoadResult): string {
  if (l.thresholds.length === 0) return '';
  const items = l.thresholds.map(
    (t) =>
      `<li class="${t.ok ? 'ok' : 'crossed'}" data-ok="${t.ok}">${t.ok ? '✓' : '✗'} ` +
      `<code>${esc(t.metric)} ${esc(t.expression)}</code> ${esc(t.aggregation)}=${esc(num(t.value))}</li>`,
  );
  return `<ul class="thresholds">${items.join('')}</ul>`;
}

/** The load's section of a variant card. */
export function loadSection(l: LoadResult): string {
  const charts = `${l.histogram ? histogramSvg(l.histogram) : ''}${l.series ? seriesSvg(l.series) : ''}`;
  return (
    `<section class="load" data-driver="${esc(l.driver)}"><h3>Load</h3><p>${esc(loadHeading(l))}</p>` +
    `${thresholdList(l)}${figuresTable(l)}${charts ? `<div class="charts">${charts}</div>` : ''}</section>`
  );
}
