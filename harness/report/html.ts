/**
 * The HTML report (`report.html`): one self-contained file (inline CSS, no script, no external URL).
 * A summary header, then one card per variant: status, expected/observed, explanation, a timing waterfall
 * (one bar per phase on the variant's time axis, positioned and sized in % of it), client output, and the
 * lab timeline. All text is escaped: client output may contain markup.
 */
import { formatMs } from '../../simulators/common/duration.js';
import { type Phase, phaseDuration, phaseSource } from '../probe/phases.js';
import type { RunResult, Status, VariantResult } from '../runner/result.js';
import {
  classInfo,
  clientRan,
  closingLine,
  countStatuses,
  droppedText,
  eventRows,
  expectedText,
  formatOffset,
  mismatchText,
  observedText,
  STATUS_MARK,
  STATUS_ORDER,
} from './format.js';
import { loadSection } from './html-load.js';
import { cleanText, lastLines } from './text.js';

/** Events shown per variant; the JSON report has them all. */
const MAX_EVENTS = 400;
/** Client output lines shown per stream. */
const OUTPUT_LINES = 60;

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for HTML element content and quoted attribute values (after cleaning control characters). */
export function esc(s: string): string {
  return cleanText(s).replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** A percentage for a style attribute, 4 decimals, clamped to 0–100. */
function pct(v: number): string {
  const c = Math.min(100, Math.max(0, Number.isFinite(v) ? v : 0));
  return `${Number(c.toFixed(4))}%`;
}

/** The end of a variant's time axis: the client's total, or the latest phase edge if later. */
export function axisEnd(r: VariantResult): number {
  let end = Number.isFinite(r.durationMs) ? r.durationMs : 0;
  for (const p of r.phases) end = Math.max(end, p.start, p.end ?? p.start);
  return end > 0 ? end : 1;
}

/** The start of a variant's time axis: the client's start, or the earliest lab phase if before it. */
export function axisStart(r: VariantResult): number {
  let start = 0;
  for (const p of r.phases) start = Math.min(start, p.start);
  return start;
}

/** Round tick steps (1, 2, 5 × 10^k) giving about four intervals. */
function ticks(end: number): number[] {
  const raw = end / 4;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].map((m) => m * pow).find((s) => s >= raw) ?? raw) || 1;
  const out: number[] = [];
  for (let t = 0; t <= end + 1e-9 && out.length < 12; t += step) out.push(t);
  return out;
}

/** Who measured a phase, and on which connection: `lab hub.amqps#1`, `client`. */
function whoText(p: Phase): string {
  return `${phaseSource(p)}${p.connection ? ` ${p.connection}` : ''}`;
}

function bar(p: Phase, from: number, end: number): string {
  const span = end - from;
  const d = phaseDuration(p);
  const left = pct(((p.start - from) / span) * 100);
  const name = esc(p.name);
  const connection = p.connection ? ` data-connection="${esc(p.connection)}"` : '';
  const who = `data-source="${esc(phaseSource(p))}"${connection}`;
  if (d === undefined) {
    const title = esc(`${p.name} (${whoText(p)}): started at ${formatMs(p.start)}, never finished`);
    return (
      `<div class="bar open ph-${name}" data-phase="${name}" ${who} data-start-ms="${p.start}" ` +
      `style="left:${left};width:${pct(((end - p.start) / span) * 100)}" title="${title}"></div>`
    );
  }
  const title = esc(
    `${p.name} (${whoText(p)}): ${formatMs(d)} (${formatMs(p.start)} → ${formatMs(p.end ?? p.start)})`,
  );
  return (
    `<div class="bar ph-${name}" data-phase="${name}" ${who} ` +
    `data-start-ms="${p.start}" data-ms="${d}" ` +
    `style="left:${left};width:${pct((d / span) * 100)}" title="${title}"></div>`
  );
}

/**
 * Phases grouped per connection, lab and client on the same axis: the client's own first, then each lab
 * connection in the order it started; inside a group, in time order.
 */
export function waterfallGroups(phases: readonly Phase[]): Array<{ group: string; phases: Phase[] }> {
  const groups = new Map<string, Phase[]>();
  for (const p of [...phases].sort((a, b) => a.start - b.start)) {
    const g = whoText(p);
    groups.set(g, [...(groups.get(g) ?? []), p]);
  }
  return [...groups.entries()]
    .map(([group, ps]) => ({ group, phases: ps }))
    .sort((a, b) => Number(b.group === 'client') - Number(a.group === 'client'));
}

function waterfall(r: VariantResult): string {
  if (r.phases.length === 0) return '<p class="muted">No phase timings for this variant.</p>';
  const end = axisEnd(r);
  const from = axisStart(r);
  const groups = waterfallGroups(r.phases);
  const rows = groups.flatMap(({ group, phases }) => [
    ...(groups.length > 1
      ? [`<div class="wf-row wf-group"><span class="wf-conn">${esc(group)}</span></div>`]
      : []),
    ...phases.map((p) => phaseRow(p, from, end)),
  ]);
  return waterfallBody(r, rows, from, end);
}

function phaseRow(p: Phase, from: number, end: number): string {
  const d = phaseDuration(p);
  const label = d === undefined ? 'never ended' : formatMs(d);
  return (
    `<div class="wf-row"><span class="wf-name" title="${esc(whoText(p))}">${esc(p.name)}` +
    `<small class="wf-who">${esc(whoText(p))}</small></span>` +
    `<div class="wf-track">${bar(p, from, end)}</div>` +
    `<span class="wf-dur${d === undefined ? ' open-label' : ''}">${esc(label)}</span></div>`
  );
}

function waterfallBody(r: VariantResult, rows: string[], from: number, end: number): string {
  const span = end - from;
  const axis = ticks(span)
    .map(
      (t) =>
        `<span class="tick" style="left:${pct((t / span) * 100)}">${esc(
          `${t + from < 0 ? '-' : ''}${formatMs(Math.abs(t + from))}`,
        )}</span>`,
    )
    .join('');
  return (
    `<div class="waterfall" data-axis-ms="${end}"${from < 0 ? ` data-axis-start-ms="${from}"` : ''}>` +
    `${rows.join('')}` +
    `<div class="wf-row wf-axis"><span class="wf-name"></span><div class="wf-track">${axis}</div>` +
    `<span class="wf-dur">total ${esc(formatMs(r.durationMs))}</span></div></div>`
  );
}

function eventsTable(r: VariantResult): string {
  const dropped = droppedText(r);
  const droppedNote = dropped ? `<p class="muted dropped">${esc(dropped)}.</p>` : '';
  if (r.events.length === 0) return droppedNote;
  const rows = eventRows(r.events.slice(0, MAX_EVENTS), 300).map(
    (e) =>
      `<tr><td class="num">${esc(formatOffset(e.offsetMs))}</td><td>${esc(e.source)}</td>` +
      `<td>${esc(e.type)}</td><td class="data">${esc(e.data)}</td></tr>`,
  );
  const more =
    r.events.length > MAX_EVENTS
      ? `<p class="muted">${r.events.length - MAX_EVENTS} more events in the JSON report.</p>`
      : '';
  return (
    `<details class="timeline"${r.status === 'passed' ? '' : ' open'}><summary>Lab timeline ` +
    `(${r.events.length} event${r.events.length === 1 ? '' : 's'}, from the first` +
    `${dropped ? `; ${esc(dropped)}` : ''})</summary>${droppedNote}` +
    `<table class="events"><thead><tr><th>time</th><th>source</th><th>type</th><th>data</th></tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table>${more}</details>`
  );
}

function output(label: string, text: string | undefined): string {
  const lines = lastLines(text, OUTPUT_LINES);
  if (lines.length === 0) return '';
  return (
    `<details class="output"><summary>${esc(label)} (last ${lines.length} lines)</summary>` +
    `<pre>${esc(lines.join('\n'))}</pre></details>`
  );
}

function facts(r: VariantResult): string {
  const rows: Array<[string, string]> = [
    ['expected', expectedText(r.expected, true)],
    ['observed', r.observed ? `${observedText(r)}: ${r.observed.detail}` : observedText(r)],
    ['client time', formatMs(r.durationMs)],
    ['file', r.file],
    ['backend', r.backend],
    ['started', r.startedAt],
  ];
  if (r.client?.argv) rows.push(['client', r.client.argv.join(' ')]);
  if (r.client && r.client.exitCode !== undefined)
    rows.push(['exit', `${r.client.exitCode ?? '–'}${r.client.signal ? ` (${r.client.signal})` : ''}`]);
  return `<dl>${rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
}

function diagnosis(r: VariantResult): string {
  const parts: string[] = [];
  if (r.explanation.length > 0) {
    parts.push(`<ul class="explanation">${r.explanation.map((e) => `<li>${esc(e)}</li>`).join('')}</ul>`);
  }
  if (r.observed?.class && r.status !== 'passed') {
    const c = classInfo(r.observed.class);
    parts.push(
      `<p class="class"><code>${esc(r.observed.class)}</code> ${esc(c.summary)}` +
        `<br><span class="hint">hint: ${esc(c.hint)}</span></p>`,
    );
  }
  if (r.skipReason) parts.push(`<p class="skip">Skipped: ${esc(r.skipReason)}</p>`);
  if (r.error) {
    parts.push(
      `<div class="error"><p><code>${esc(r.error.code)}</code></p><pre>${esc(r.error.message)}</pre>` +
        `${r.error.hint ? `<p class="hint">hint: ${esc(r.error.hint)}</p>` : ''}</div>`,
    );
  }
  return parts.join('');
}

function card(r: VariantResult, i: number): string {
  const head =
    r.status === 'failed'
      ? mismatchText(r)
      : r.status === 'passed'
        ? `${observedText(r)} in ${formatMs(r.durationMs)}`
        : r.status;
  return (
    `<details class="card ${r.status}" id="v-${i}"${r.status === 'passed' ? '' : ' open'}>` +
    `<summary><span class="mark">${STATUS_MARK[r.status]}</span> ` +
    `<b>${esc(r.scenario)}/${esc(r.variant)}</b> <span class="title">${esc(r.title)}</span>` +
    `<span class="head">${esc(head)}</span></summary>` +
    `<div class="body">${facts(r)}${diagnosis(r)}${r.load ? loadSection(r.load) : ''}` +
    `<h3>Timing</h3>${waterfall(r)}` +
    `${output('client stderr', r.client?.stderr)}${output('client stdout', r.client?.stdout)}` +
    `${eventsTable(r)}</div></details>`
  );
}

function summary(run: RunResult): string {
  const totals = countStatuses(run.results);
  const chips = STATUS_ORDER.map((s: Status) => `<span class="chip ${s}">${totals[s]} ${s}</span>`).join('');
  const rows = failedFirst(run.results).map(
    ({ r, i }) =>
      `<tr class="${r.status}"><td class="mark">${STATUS_MARK[r.status]}</td>` +
      `<td><a href="#v-${i}">${esc(r.scenario)}</a></td><td>${esc(r.variant)}</td>` +
      `<td>${esc(expectedText(r.expected, true))}</td><td>${esc(observedText(r))}</td>` +
      `<td class="num">${clientRan(r) ? esc(formatMs(r.durationMs)) : '–'}</td></tr>`,
  );
  const table =
    rows.length === 0
      ? '<p class="muted">No variants ran.</p>'
      : `<table class="summary"><thead><tr><th></th><th>scenario</th><th>variant</th><th>expected</th>` +
        `<th>observed</th><th>time</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
  return `<header><h1>fieldlab report</h1><p class="meta">${esc(
    `${closingLine(totals, run.durationMs)} · backend ${run.backend} · started ${run.startedAt} · ` +
      `${run.tool.name} ${run.tool.version}`,
  )}</p><p>${chips}</p>${table}</header>`;
}

const CSS = `
:root{--fg:#1d2330;--muted:#687083;--bg:#fff;--card:#f6f7f9;--line:#dfe2e8;
--passed:#1a7f37;--failed:#cf222e;--skipped:#9a6700;--errored:#8250df;
--dns:#6f42c1;--tcp:#0969da;--proxy-connect:#bf8700;--tls:#1a7f37;--app-handshake:#0a7b83;
--first-byte:#d1242f;--transfer:#57606a}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ef;--muted:#9aa3b2;--bg:#14171c;--card:#1d2128;
--line:#343a44}}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg);
margin:0 auto;max-width:1100px;padding:24px}
h1{margin:0 0 4px;font-size:22px}h3{font-size:13px;margin:14px 0 6px;color:var(--muted);
text-transform:uppercase;letter-spacing:.04em}
code,pre,.num,.data,.tick,.wf-dur{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
font-size:12px}
pre{white-space:pre-wrap;word-break:break-word;background:var(--card);border:1px solid var(--line);
padding:8px;border-radius:4px;max-height:360px;overflow:auto}
.meta,.muted{color:var(--muted)}
.chip{display:inline-block;padding:2px 10px;margin-right:6px;border-radius:12px;color:#fff;font-weight:600}
.chip.passed{background:var(--passed)}.chip.failed{background:var(--failed)}
.chip.skipped{background:var(--skipped)}.chip.errored{background:var(--errored)}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}
.summary .mark,.card .mark{font-weight:700}
tr.passed .mark,.card.passed .mark{color:var(--passed)}tr.failed .mark,.card.failed .mark{color:var(--failed)}
tr.skipped .mark,.card.skipped .mark{color:var(--skipped)}
tr.errored .mark,.card.errored .mark{color:var(--errored)}
a{color:inherit}
.card{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--line);border-radius:6px;
margin:14px 0;padding:0 14px}
.card.passed{border-left-color:var(--passed)}.card.failed{border-left-color:var(--failed)}
.card.skipped{border-left-color:var(--skipped)}.card.errored{border-left-color:var(--errored)}
.card>summary{cursor:pointer;padding:10px 0}
.card .title{color:var(--muted);margin-left:6px;display:inline-block;max-width:55%;overflow:hidden;
text-overflow:ellipsis;white-space:nowrap;vertical-align:bottom}.card .head{float:right;color:var(--muted)}
.body{padding-bottom:12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0 0 8px}
dt{color:var(--muted)}dd{margin:0;word-break:break-word}
.explanation{margin:6px 0;padding-left:18px}.hint{color:var(--muted)}
.error code{color:var(--errored);font-weight:700}
.waterfall{margin:4px 0 10px}
.wf-row{display:grid;grid-template-columns:210px 1fr 90px;align-items:center;gap:8px;min-height:20px}
.wf-name{color:var(--muted);text-align:right;font-size:12px;white-space:nowrap;overflow:hidden;
text-overflow:ellipsis}.wf-who{margin-left:6px;opacity:.75}
.bar[data-source="lab"]{opacity:.8;outline:1px dashed var(--fg)}
.wf-track{position:relative;height:12px;border-left:1px solid var(--line)}
.wf-axis .wf-track{border-left:0;height:16px}
.bar{position:absolute;top:0;height:12px;min-width:2px;border-radius:2px;background:var(--muted)}
.bar.open{background:repeating-linear-gradient(45deg,var(--failed) 0 4px,transparent 4px 8px);
border:1px solid var(--failed)}
.open-label{color:var(--failed)}
.tick{position:absolute;top:0;transform:translateX(-50%);color:var(--muted);font-size:11px}
.tick:first-child{transform:none}
.ph-dns{background:var(--dns)}.ph-tcp{background:var(--tcp)}.ph-proxy-connect{background:var(--proxy-connect)}
.ph-tls{background:var(--tls)}.ph-app-handshake{background:var(--app-handshake)}
.ph-first-byte{background:var(--first-byte)}.ph-transfer{background:var(--transfer)}
details.output,details.timeline{margin:8px 0}details.output>summary,details.timeline>summary{cursor:pointer;
color:var(--muted)}
.events td{font-size:12px}.events .data{word-break:break-all}
.wf-group{min-height:18px;margin-top:4px}.wf-conn{grid-column:1/4;font-size:11px;color:var(--muted);
border-bottom:1px dotted var(--line)}
.load{margin:8px 0}.load .figures td{font-size:12px}.load .figures .num{text-align:right}
.thresholds{list-style:none;padding:0;margin:6px 0}.thresholds li{font-size:12px}
.thresholds .ok{color:var(--passed)}.thresholds .crossed{color:var(--failed);font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:12px}
.chart{background:var(--bg);border:1px solid var(--line);border-radius:4px;padding:6px}
.chart h4{margin:0 0 4px;font-size:12px;color:var(--muted);font-weight:600}
.chart svg{width:100%;height:auto;display:block}
.chart .bar-h{fill:var(--tcp)}.chart .line{fill:none;stroke:var(--tls);stroke-width:2}
.chart .area{fill:var(--tls);opacity:.15}.chart text{fill:var(--muted);font:13px ui-monospace,monospace}
.chart .gridline{stroke:var(--line);stroke-width:1}
`;

/** Failed and errored variants first (in run order), then the rest: what a person opens the report for. */
export function failedFirst(results: readonly VariantResult[]): Array<{ r: VariantResult; i: number }> {
  const rank = (r: VariantResult) => (r.status === 'failed' ? 0 : r.status === 'errored' ? 1 : 2);
  return results.map((r, i) => ({ r, i })).sort((a, b) => rank(a.r) - rank(b.r) || a.i - b.i);
}

/** The run as one self-contained HTML page. */
export function renderHtml(run: RunResult): string {
  const totals = countStatuses(run.results);
  const title = `fieldlab: ${closingLine(totals, run.durationMs)}`;
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width,initial-scale=1">` +
    `<title>${esc(title)}</title><style>${CSS}</style></head>\n<body>\n${summary(run)}\n<main>\n` +
    `${failedFirst(run.results)
      .map(({ r, i }) => card(r, i))
      .join('\n')}\n</main>\n</body></html>\n`
  );
}
