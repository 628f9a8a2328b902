import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import {
  renderConsole,
  renderHtml,
  renderJson,
  renderJUnit,
  runResultSchema,
} from '../../harness/report/index.js';
import type { VariantResult } from '../../harness/runner/result.js';
import { failed, passed, runOf } from './fixtures.js';

/** issue 12 (1): the lab timeline is bounded; every report says when a variant's events were dropped. */
function overflowed(r: VariantResult): VariantResult {
  return { ...r, droppedEvents: { count: 1234, maxEvents: 10000 } };
}

const SAID = '1234 earlier events dropped (timeline holds 10000)';

describe('reports of a variant whose lab timeline dropped events', () => {
  it('JSON keeps the count and the bound, and its schema knows the field', () => {
    const run = runOf([overflowed(failed()), passed()]);
    const doc = JSON.parse(renderJson(run));
    expect(doc.results[0].droppedEvents).toEqual({ count: 1234, maxEvents: 10000 });
    expect(doc.results[1].droppedEvents).toBeUndefined();
    expect(runResultSchema.safeParse(doc).success).toBe(true);
  });

  it('the console says so in the variant’s block, verbose or not', () => {
    const run = runOf([overflowed(failed())]);
    expect(renderConsole(run, { color: false })).toContain(`lab timeline: ${SAID}`);
    expect(renderConsole(run, { color: false, verbose: true })).toMatch(
      new RegExp(`lab timeline \\(\\d+ events?; ${SAID.replace(/[()]/g, '\\$&')}\\):`),
    );
    expect(renderConsole(runOf([failed()]), { color: false })).not.toContain('dropped');
  });

  it('HTML says so by the timeline', () => {
    const html = renderHtml(runOf([overflowed(failed())]));
    expect(html).toContain(SAID);
    expect(renderHtml(runOf([failed()]))).not.toContain('earlier events dropped');
    // Also when no event was left to list.
    expect(renderHtml(runOf([{ ...overflowed(failed()), events: [] }]))).toContain(SAID);
  });

  it('JUnit says so in <system-out>', () => {
    const xml = renderJUnit(runOf([overflowed(failed())]));
    const doc = new XMLParser({ ignoreAttributes: false }).parse(xml);
    const out = String(doc.testsuites.testsuite.testcase['system-out']);
    expect(out).toContain(`lab timeline: ${SAID}`);
    expect(renderJUnit(runOf([failed()]))).not.toContain('dropped');
  });

  it('says "1 earlier event" for one', () => {
    const r = { ...failed(), droppedEvents: { count: 1, maxEvents: 5 } };
    expect(renderConsole(runOf([r]), { color: false })).toContain(
      '1 earlier event dropped (timeline holds 5)',
    );
  });
});
