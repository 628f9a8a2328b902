/**
 * The console report: a k6-like summary a person reads at a glance.
 *
 *     scenario         variant  expected          observed  dns  tcp      proxy  tls        app  1st msg  total
 *   ✓ https-endpoint   fixed    pass              pass      1ms  1ms/0ms  –      12ms/10ms  3ms  150ms    182ms
 *   ✗ proxy-auth       broken   fail proxy.auth…  pass      ...
 *
 *   ✗ proxy-auth/broken: expected fail proxy.auth-required, observed pass
 *       <explanation lines, class summary and hint, skip reason, error, last stderr lines>
 *
 *   1 passed, 1 failed, 0 skipped, 0 errored in 4.21s
 */

import Table from 'cli-table3';
import pc from 'picocolors';
import { formatMs } from '../../simulators/common/duration.js';
import type { RunResult, Status, VariantResult } from '../runner/result.js';
import {
  BOTH_SOURCES_LEGEND,
  classInfo,
  clientRan,
  closingLine,
  countStatuses,
  droppedText,
  eventLines,
  expectedText,
  hasBothSources,
  mismatchText,
  NO_PHASE,
  OPEN_PHASE,
  observedText,
  PHASE_COLUMNS,
  phaseCell,
  phaseLines,
  STATUS_MARK,
} from './format.js';
import { loadLines } from './load-text.js';
import { cleanText, lastLines } from './text.js';

export interface ConsoleOptions {
  /** ANSI colours (picocolors). Off: plain text, no escape codes at all. */
  color: boolean;
  /** Detail blocks for every variant (not only the non-passed), all phases, the lab timeline, more stderr. */
  verbose?: boolean;
}

type Paint = (s: string) => string;

interface Palette {
  status: Record<Status, Paint>;
  dim: Paint;
  bold: Paint;
}

function palette(color: boolean): Palette {
  const c = pc.createColors(color);
  return {
    status: { passed: c.green, failed: c.red, skipped: c.yellow, errored: c.magenta },
    dim: c.dim,
    bold: c.bold,
  };
}

/** Stderr lines shown per non-passed variant (verbose: more). */
const STDERR_LINES = 5;
const STDERR_LINES_VERBOSE = 30;
/** Lines of a multi-line error message (a stack) shown without `verbose`. */
const ERROR_LINES = 8;
const INDENT = '    ';

const BORDERLESS = {
  top: '',
  'top-mid': '',
  'top-left': '',
  'top-right': '',
  bottom: '',
  'bottom-mid': '',
  'bottom-left': '',
  'bottom-right': '',
  left: ' ',
  'left-mid': '',
  mid: '',
  'mid-mid': '',
  right: '',
  'right-mid': '',
  middle: '  ',
};

function table(run: RunResult, p: Palette): string {
  const head = [
    '',
    'scenario',
    'variant',
    'expected',
    'observed',
    ...PHASE_COLUMNS.map((c) => c.label),
    'total',
  ];
  const t = new Table({
    head: head.map((h) => p.bold(h)),
    chars: BORDERLESS,
    // Our own colours only: cli-table3 would otherwise paint the head red through @colors/colors.
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
  });
  for (const r of run.results) {
    const paint = p.status[r.status];
    t.push([
      paint(STATUS_MARK[r.status]),
      cleanText(r.scenario),
      cleanText(r.variant),
      expectedText(r.expected, true),
      r.status === 'failed' ? paint(observedText(r)) : observedText(r),
      ...PHASE_COLUMNS.map((c) => phaseCell(r.phases, c.name)),
      clientRan(r) ? formatMs(r.durationMs) : NO_PHASE,
    ]);
  }
  // cli-table3 pads the last column; trailing blanks only get in the way of copy and paste.
  return t
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n');
}

/** The detail block of one variant: why it did not pass, and the evidence. */
function detailBlock(r: VariantResult, p: Palette, verbose: boolean): string[] {
  const paint = p.status[r.status];
  const id = `${cleanText(r.scenario)}/${cleanText(r.variant)}`;
  let head: string;
  if (r.status === 'failed') head = mismatchText(r);
  else if (r.status === 'skipped') head = 'skipped';
  else if (r.status === 'errored') head = `errored${r.error ? ` (${r.error.code})` : ''}`;
  else head = `passed: ${observedText(r)} in ${formatMs(r.durationMs)}`;
  const out = [`${paint(STATUS_MARK[r.status])} ${p.bold(id)}: ${cleanText(head)}`];
  // Cleans first, paints after: client text must not smuggle escapes in, our colours must survive.
  const line = (s: string, depth = 1, paintLine: (x: string) => string = (x) => x) => {
    for (const l of cleanText(s).split('\n')) out.push(`${INDENT.repeat(depth)}${paintLine(l)}`);
  };

  for (const e of r.explanation) line(e);
  if (r.observed?.class && r.status !== 'passed') {
    const c = classInfo(r.observed.class);
    line(`${r.observed.class}: ${c.summary}`);
    if (c.hint) line(`hint: ${c.hint}`, 2, p.dim);
  }
  if (r.expected.class && r.expected.class !== r.observed?.class && r.status === 'failed') {
    line(`expected ${r.expected.class}: ${classInfo(r.expected.class).summary}`);
  }
  if (r.skipReason) line(`skip reason: ${r.skipReason}`);
  if (r.error) {
    const msg = cleanText(r.error.message).split('\n');
    const shown = verbose ? msg : msg.slice(0, ERROR_LINES);
    line(`error ${r.error.code}: ${shown[0] ?? ''}`);
    for (const l of shown.slice(1)) line(l, 2);
    if (shown.length < msg.length) line(`(${msg.length - shown.length} more lines: --verbose)`, 2, p.dim);
    if (r.error.hint) line(`hint: ${r.error.hint}`, 2, p.dim);
  }
  if (r.load) for (const l of loadLines(r.load)) line(l);
  if (verbose && r.phases.length > 0) {
    line('phases:');
    for (const l of phaseLines(r.phases)) line(l, 2);
  }
  const stderr = lastLines(r.client?.stderr, verbose ? STDERR_LINES_VERBOSE : STDERR_LINES);
  if (stderr.length > 0) {
    line(`client stderr (last ${stderr.length} line${stderr.length === 1 ? '' : 's'}):`, 1, p.dim);
    for (const l of stderr) line(`| ${l}`, 2, p.dim);
  }
  const dropped = droppedText(r);
  if (verbose && r.events.length > 0) {
    const count = `${r.events.length} event${r.events.length === 1 ? '' : 's'}`;
    line(`lab timeline (${count}${dropped ? `; ${dropped}` : ''}):`);
    for (const l of eventLines(r.events, 120)) line(l, 2);
  } else if (dropped) {
    line(`lab timeline: ${dropped}`, 1, p.dim);
  }
  return out;
}

/**
 * The console report: a table with one row per variant, a block per variant that did not pass, and the
 * closing totals line (`3 passed, 1 failed, 2 skipped, 0 errored in 4.21s`). Ends with a newline.
 */
export function renderConsole(run: RunResult, opts: ConsoleOptions): string {
  const p = palette(opts.color);
  const verbose = opts.verbose === true;
  const parts: string[] = [];
  if (run.results.length === 0) {
    parts.push('no variants ran (nothing selected)');
  } else {
    parts.push(table(run, p));
    const legend: string[] = [];
    if (run.results.some((r) => r.phases.some((ph) => ph.end === undefined))) {
      legend.push(`${OPEN_PHASE} phase started and never finished   – did not happen`);
    }
    if (run.results.some((r) => hasBothSources(r.phases))) legend.push(BOTH_SOURCES_LEGEND);
    if (legend.length > 0) parts.push(p.dim(` ${legend.join('   ')}`));
    const blocks = run.results
      .filter((r) => verbose || r.status !== 'passed' || r.load)
      .map((r) => detailBlock(r, p, verbose).join('\n'));
    if (blocks.length > 0) parts.push(blocks.join('\n\n'));
  }
  const totals = countStatuses(run.results);
  const worst: Status = totals.errored > 0 ? 'errored' : totals.failed > 0 ? 'failed' : 'passed';
  const closing = closingLine(totals, run.durationMs);
  parts.push(run.results.length === 0 ? closing : p.status[worst](closing));
  return `${parts.join('\n\n')}\n`;
}

/**
 * One progress line for a finished variant, printed as it finishes:
 * `✓ https-endpoint/fixed  pass  182ms`,
 * `✗ proxy-auth/broken  pass (expected fail proxy.auth-required)  1.02s`,
 * `– tunnel/v3  skipped: needs cmd:ssh: not found`, `! geo/na  error E_LAB_START: ...`.
 */
export function renderProgress(result: VariantResult, opts: { color?: boolean } = {}): string {
  const p = palette(opts.color === true);
  const r = result;
  const id = `${cleanText(r.scenario)}/${cleanText(r.variant)}`;
  let what: string;
  switch (r.status) {
    case 'passed':
      what = `${observedText(r)}  ${formatMs(r.durationMs)}`;
      break;
    case 'failed':
      what = `${observedText(r)} (expected ${expectedText(r.expected, true)})  ${formatMs(r.durationMs)}`;
      break;
    case 'skipped':
      what = `skipped${r.skipReason ? `: ${r.skipReason}` : ''}`;
      break;
    default:
      what = r.error ? `error ${r.error.code}: ${r.error.message}` : 'errored';
  }
  // One line: a stack trace or a multi-line reason keeps only its first line here.
  const first = cleanText(what).split('\n')[0] ?? '';
  return `${p.status[r.status](STATUS_MARK[r.status])} ${id}  ${first}`;
}
