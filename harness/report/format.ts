/**
 * Text pieces every reporter shares, so the console, JUnit and HTML reports say the same thing in the same
 * words: status marks, expected/observed, phase cells, event lines, the closing totals line.
 */
import { formatMs } from '../../simulators/common/duration.js';
import type { LabEvent } from '../../simulators/common/events.js';
import { FAILURE_CLASSES, type FailureClass } from '../probe/classes.js';
import { type Phase, type PhaseName, type PhaseSource, phaseDuration, phaseSource } from '../probe/phases.js';
import type { Expectation, Status, VariantResult } from '../runner/result.js';
import { cleanText, readableBody, truncate } from './text.js';

/** One mark per status: passed, failed, skipped, errored. */
export const STATUS_MARK: Record<Status, string> = { passed: '✓', failed: '✗', skipped: '–', errored: '!' };

/** Shown in a phase cell when the phase did not happen. */
export const NO_PHASE = '–';
/** Shown in a phase cell when the phase started and never finished (e.g. a SYN nobody answered). */
export const OPEN_PHASE = '…';

/**
 * The phase columns of the console table (and the JUnit properties), in connection order. `first-byte`
 * is the first message: curl's first response byte, the lab's first telemetry, publish or stream.
 */
export const PHASE_COLUMNS: ReadonlyArray<{ label: string; key: string; name: PhaseName }> = [
  { label: 'dns', key: 'dns', name: 'dns' },
  { label: 'tcp', key: 'tcp', name: 'tcp' },
  { label: 'proxy', key: 'proxy', name: 'proxy-connect' },
  { label: 'tls', key: 'tls', name: 'tls' },
  { label: 'app', key: 'app', name: 'app-handshake' },
  { label: '1st msg', key: 'first-message', name: 'first-byte' },
];

/**
 * The phases as name/value pairs (JUnit properties): `phase.tls.lab` = `12.3` (ms) or `never ended`, one
 * per column and source that has the phase.
 */
export function phaseProperties(phases: readonly Phase[]): Array<{ name: string; value: string }> {
  const out: Array<{ name: string; value: string }> = [];
  for (const c of PHASE_COLUMNS) {
    for (const source of ['client', 'lab'] as const) {
      const t = phaseTotal(phases, c.name, source);
      if (t === undefined) continue;
      out.push({ name: `phase.${c.key}.${source}`, value: t === OPEN_PHASE ? 'never ended' : t.toFixed(1) });
    }
  }
  return out;
}

/** The legend under a table whose cells show both sources (`client/lab`). */
export const BOTH_SOURCES_LEGEND = 'a/b  measured by the client / seen by the lab';

/** The statuses in the order the closing line names them. */
export const STATUS_ORDER: readonly Status[] = ['passed', 'failed', 'skipped', 'errored'];

/** `pass` or `fail tcp.timeout`; with `bounds`, also the timing bounds (`pass ≤2.00s`). */
export function expectedText(e: Expectation, bounds = false): string {
  let s = e.result === 'fail' && e.class ? `fail ${e.class}` : e.result;
  if (bounds && e.atLeastMs !== undefined) s += ` ≥${formatMs(e.atLeastMs)}`;
  if (bounds && e.withinMs !== undefined) s += ` ≤${formatMs(e.withinMs)}`;
  return s;
}

/** `pass`, `fail tls.untrusted-root`, or `–` when nothing was observed (skipped, errored). */
export function observedText(r: VariantResult): string {
  if (!r.observed) return NO_PHASE;
  return r.observed.result === 'fail' && r.observed.class ? `fail ${r.observed.class}` : r.observed.result;
}

/** The message of a failed variant: `expected fail tcp.timeout, observed pass`. */
export function mismatchText(r: VariantResult): string {
  const bounded = r.expected.withinMs !== undefined || r.expected.atLeastMs !== undefined;
  const took = bounded && r.observed ? ` in ${formatMs(r.durationMs)}` : '';
  return `expected ${expectedText(r.expected, true)}, observed ${observedText(r)}${took}`;
}

/**
 * A phase's total from one source: its duration, undefined when it did not happen, `…` when it never
 * ended. A phase that happened more than once (TLS to the proxy, then to the origin; a reconnect) sums.
 */
export function phaseTotal(
  phases: readonly Phase[],
  name: PhaseName,
  source: PhaseSource,
): number | typeof OPEN_PHASE | undefined {
  const mine = phases.filter((p) => p.name === name && phaseSource(p) === source);
  if (mine.length === 0) return undefined;
  let sum = 0;
  for (const p of mine) {
    const d = phaseDuration(p);
    if (d === undefined) return OPEN_PHASE;
    sum += d;
  }
  return sum;
}

function totalText(t: number | typeof OPEN_PHASE): string {
  return t === OPEN_PHASE ? OPEN_PHASE : formatMs(t);
}

/**
 * The console cell for a phase: its duration, `–` when it did not happen, `…` when it never ended;
 * `client/lab` when both the client and the lab measured it (see BOTH_SOURCES_LEGEND).
 */
export function phaseCell(phases: readonly Phase[], name: PhaseName): string {
  const client = phaseTotal(phases, name, 'client');
  const lab = phaseTotal(phases, name, 'lab');
  if (client !== undefined && lab !== undefined) return `${totalText(client)}/${totalText(lab)}`;
  const one = client ?? lab;
  return one === undefined ? NO_PHASE : totalText(one);
}

/** Whether some phase was measured by both the client and the lab (the table then needs its legend). */
export function hasBothSources(phases: readonly Phase[]): boolean {
  return PHASE_COLUMNS.some(
    (c) =>
      phaseTotal(phases, c.name, 'client') !== undefined && phaseTotal(phases, c.name, 'lab') !== undefined,
  );
}

/** The longest length among `items` (a loop: spreading thousands of events into Math.max overflows). */
function widest(items: readonly string[]): number {
  let w = 0;
  for (const s of items) w = Math.max(w, s.length);
  return w;
}

/** A time from the client's start, which lab events may precede: `-3ms`. */
function signedMs(ms: number): string {
  return ms < 0 ? `-${formatMs(-ms)}` : formatMs(ms);
}

/**
 * One line per phase, for text reports: `tcp  12ms (3ms → 15ms)  lab hub#1` or
 * `tls  never ended (from 3ms)  lab api#1`; client phases say `client`.
 */
export function phaseLines(phases: readonly Phase[]): string[] {
  const width = widest(phases.map((p) => p.name));
  return phases.map((p) => {
    const d = phaseDuration(p);
    const name = p.name.padEnd(width);
    const who = `${phaseSource(p)}${p.connection ? ` ${cleanText(p.connection)}` : ''}`;
    return d === undefined
      ? `${name}  never ended (from ${signedMs(p.start)})  ${who}`
      : `${name}  ${formatMs(d)} (${signedMs(p.start)} → ${signedMs(p.end ?? p.start)})  ${who}`;
  });
}

/** A failure class with its summary and hint. */
export function classInfo(c: FailureClass): { summary: string; hint: string } {
  return FAILURE_CLASSES[c] ?? { summary: c, hint: '' };
}

/** Event data as `key=value` pairs on one line, cleaned and cut to `max` characters. */
export function compactData(data: unknown, max = 160): string {
  if (data === undefined || data === null) return '';
  if (typeof data !== 'object') return truncate(cleanText(String(data)), max);
  const parts: string[] = [];
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    if (v === undefined) continue;
    parts.push(`${k}=${scalar(v)}`);
  }
  return truncate(cleanText(parts.join(' ')), max);
}

function scalar(value: unknown): string {
  const v = readableBody(value);
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  if (typeof v === 'bigint') return v.toString();
  try {
    return (
      JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : readableBody(x))) ??
      String(v)
    );
  } catch {
    return String(v);
  }
}

/** A lab event for a report: offset from the first event of the timeline, and its data on one line. */
export interface EventRow {
  offsetMs: number;
  source: string;
  type: string;
  data: string;
}

/**
 * The lab timeline as rows. Offsets count from the first event: the result carries no common origin for
 * events (epoch ms) and phases (ms from the client's start).
 */
export function eventRows(events: readonly LabEvent[], maxData = 160): EventRow[] {
  const origin = events.reduce((min, e) => Math.min(min, e.time), events[0]?.time ?? 0);
  return events.map((e) => ({
    offsetMs: e.time - origin,
    source: cleanText(String(e.source)),
    type: cleanText(String(e.type)),
    data: compactData(e.data, maxData),
  }));
}

/** `+12.3ms` style offset, sub-millisecond where it matters on a lab timeline. */
export function formatOffset(ms: number): string {
  return ms < 100 ? `+${ms.toFixed(1)}ms` : `+${formatMs(ms)}`;
}

/** The timeline as text lines: `+0.0ms  proxy  connect-denied  target=a:443 status=403`. */
export function eventLines(events: readonly LabEvent[], maxData = 160): string[] {
  const rows = eventRows(events, maxData);
  const wSource = widest(rows.map((r) => r.source));
  const wType = widest(rows.map((r) => r.type));
  return rows.map((r) =>
    [formatOffset(r.offsetMs).padStart(9), r.source.padEnd(wSource), r.type.padEnd(wType), r.data]
      .join('  ')
      .trimEnd(),
  );
}

/**
 * "40 earlier events dropped (timeline holds 10000)" when the lab's bounded timeline dropped events of
 * this variant, else undefined.
 */
export function droppedText(r: VariantResult): string | undefined {
  const d = r.droppedEvents;
  if (!d || d.count <= 0) return undefined;
  return `${d.count} earlier event${d.count === 1 ? '' : 's'} dropped (timeline holds ${d.maxEvents})`;
}

/** Whether the client ran to a verdict (passed or failed), so its time means something. */
export function clientRan(r: VariantResult): boolean {
  return r.status === 'passed' || r.status === 'failed';
}

/** Counts by status, from the results themselves. */
export function countStatuses(results: readonly VariantResult[]): Record<Status, number> {
  const totals: Record<Status, number> = { passed: 0, failed: 0, skipped: 0, errored: 0 };
  for (const r of results) totals[r.status]++;
  return totals;
}

/** `3 passed, 1 failed, 2 skipped, 0 errored in 4.21s`. */
export function closingLine(totals: Record<Status, number>, durationMs: number): string {
  return `${STATUS_ORDER.map((s) => `${totals[s] ?? 0} ${s}`).join(', ')} in ${formatMs(durationMs)}`;
}

/** Seconds with millisecond precision, as JUnit's `time` attributes want (`0.182`). */
export function seconds(ms: number): string {
  return Number.isFinite(ms) && ms > 0 ? (ms / 1000).toFixed(3) : '0.000';
}
