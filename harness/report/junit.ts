/**
 * The JUnit XML report (`junit.xml`), in the dialect GitHub, GitLab and Jenkins render:
 *
 *   <testsuites name="fieldlab" tests failures errors skipped time timestamp>
 *     <testsuite name="<scenario>" file=... tests failures errors skipped time timestamp>   one per scenario
 *       <properties> backend, title </properties>
 *       <testcase classname="fieldlab.<scenario>" name="<variant>" time="0.182" file=...>  one per variant
 *         <properties> phase.<dns|tcp|proxy|tls|app|first-message>.<client|lab> = ms </properties>
 *         <failure message="expected fail tcp.timeout, observed pass" type="<class or mismatch>">…</failure>
 *         | <error message=... type="E_CODE">…</error> | <skipped message="reason"/>
 *         <system-out> explanation, phases, lab timeline </system-out>
 *         <system-err> client stderr </system-err>
 */

import { create } from 'xmlbuilder2';
import type { RunResult, Status, VariantResult } from '../runner/result.js';
import {
  classInfo,
  countStatuses,
  droppedText,
  eventLines,
  expectedText,
  mismatchText,
  observedText,
  phaseLines,
  phaseProperties,
  seconds,
} from './format.js';
import { loadLines, loadProperties } from './load-text.js';
import { cleanText, truncate } from './text.js';

type XMLBuilder = ReturnType<typeof create>;

/** Client stderr kept in `<system-err>`: the tail, where the error is; the JSON report has it all. */
const MAX_STDERR_CHARS = 64 * 1024;
/** Lab events listed in `<system-out>`. */
const MAX_EVENTS = 500;

/** Text safe for XML 1.0 element content (xmlbuilder2 escapes markup; we remove what XML cannot hold). */
function x(s: string): string {
  return cleanText(s);
}

/** An attribute value: cleaned, on one line (a parser would fold newlines to spaces anyway), bounded. */
function attr(s: string, max = 1000): string {
  return truncate(cleanText(s).replace(/\s*\n\s*/g, ' '), max);
}

function failureBody(r: VariantResult): string {
  const lines = [...r.explanation];
  if (r.observed) lines.push(`observed: ${observedText(r)}: ${r.observed.detail}`);
  if (r.observed?.class) {
    const c = classInfo(r.observed.class);
    lines.push(`${r.observed.class}: ${c.summary}`, `hint: ${c.hint}`);
  }
  if (r.expected.class && r.expected.class !== r.observed?.class) {
    lines.push(`expected ${r.expected.class}: ${classInfo(r.expected.class).summary}`);
  }
  return lines.join('\n');
}

function systemOut(r: VariantResult): string {
  const parts: string[] = [
    `${r.title}`,
    `expected: ${expectedText(r.expected, true)}; observed: ${observedText(r)}${
      r.observed ? ` (${r.observed.detail})` : ''
    }`,
  ];
  if (r.explanation.length > 0)
    parts.push(['explanation:', ...r.explanation.map((e) => `  ${e}`)].join('\n'));
  if (r.phases.length > 0) parts.push(['phases:', ...phaseLines(r.phases).map((l) => `  ${l}`)].join('\n'));
  if (r.client?.argv) parts.push(`client: ${r.client.argv.join(' ')}`);
  if (r.load) parts.push(loadLines(r.load).join('\n'));
  const dropped = droppedText(r);
  if (r.events.length > 0 || dropped) {
    const shown = eventLines(r.events.slice(0, MAX_EVENTS), 200).map((l) => `  ${l}`);
    if (r.events.length > MAX_EVENTS)
      shown.push(`  … ${r.events.length - MAX_EVENTS} more in the JSON report`);
    parts.push([`lab timeline:${dropped ? ` ${dropped}` : ''}`, ...shown].join('\n'));
  }
  return parts.join('\n');
}

function testcase(suite: XMLBuilder, r: VariantResult): void {
  const tc = suite.ele('testcase', {
    classname: attr(`fieldlab.${r.scenario}`),
    name: attr(r.variant),
    time: seconds(r.durationMs),
    file: attr(r.file),
  });
  // Phase totals in ms, by source (`phase.tls.lab`), for CI dashboards that chart properties.
  const props = [...phaseProperties(r.phases), ...(r.load ? loadProperties(r.load) : [])];
  if (props.length > 0) {
    const p = tc.ele('properties');
    for (const { name, value } of props) p.ele('property', { name, value });
  }
  switch (r.status) {
    case 'failed':
      tc.ele('failure', {
        message: attr(mismatchText(r)),
        type: attr(r.observed?.class ?? 'mismatch'),
      }).txt(x(failureBody(r)));
      break;
    case 'errored': {
      const e = r.error ?? { code: 'E_ERRORED', message: 'the variant errored without an error record' };
      const first = e.message.split('\n')[0] ?? '';
      tc.ele('error', { message: attr(`${e.code}: ${first}`), type: attr(e.code) }).txt(
        x([e.message, ...(e.hint ? [`hint: ${e.hint}`] : [])].join('\n')),
      );
      break;
    }
    case 'skipped':
      tc.ele('skipped', { message: attr(r.skipReason ?? 'skipped') });
      break;
    default:
      break;
  }
  tc.ele('system-out').txt(x(systemOut(r)));
  const stderr = r.client?.stderr;
  if (stderr && stderr.trim() !== '') {
    const tail =
      stderr.length > MAX_STDERR_CHARS
        ? `… (${stderr.length - MAX_STDERR_CHARS} earlier characters cut)\n${stderr.slice(-MAX_STDERR_CHARS)}`
        : stderr;
    tc.ele('system-err').txt(x(tail));
  }
}

function counts(results: readonly VariantResult[]): Record<string, string> {
  const t: Record<Status, number> = countStatuses(results);
  return {
    tests: String(results.length),
    failures: String(t.failed),
    errors: String(t.errored),
    skipped: String(t.skipped),
  };
}

/** Groups results by scenario, in order of first appearance. */
function byScenario(results: readonly VariantResult[]): Map<string, VariantResult[]> {
  const m = new Map<string, VariantResult[]>();
  for (const r of results) {
    const list = m.get(r.scenario);
    if (list) list.push(r);
    else m.set(r.scenario, [r]);
  }
  return m;
}

/** The run as JUnit XML: one `<testsuite>` per scenario, one `<testcase>` per variant. */
export function renderJUnit(run: RunResult): string {
  const root = create({ version: '1.0', encoding: 'UTF-8' }).ele('testsuites', {
    name: 'fieldlab',
    ...counts(run.results),
    time: seconds(run.durationMs),
    timestamp: attr(run.startedAt),
  });
  for (const [scenario, results] of byScenario(run.results)) {
    const first = results[0]!;
    const suite = root.ele('testsuite', {
      name: attr(scenario),
      ...counts(results),
      time: seconds(results.reduce((sum, r) => sum + (Number.isFinite(r.durationMs) ? r.durationMs : 0), 0)),
      timestamp: attr(first.startedAt),
      file: attr(first.file),
    });
    const props = suite.ele('properties');
    props.ele('property', { name: 'backend', value: attr(first.backend) });
    props.ele('property', { name: 'title', value: attr(first.title) });
    props.ele('property', { name: 'fieldlab.version', value: attr(run.tool.version) });
    for (const r of results) testcase(suite, r);
  }
  return `${root.end({ prettyPrint: true })}\n`;
}
