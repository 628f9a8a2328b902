import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { renderConsole } from '../../harness/report/console.js';
import { failedFirst, renderHtml } from '../../harness/report/html.js';
import { renderJson, runResultSchema } from '../../harness/report/json.js';
import { renderJUnit } from '../../harness/report/junit.js';
import { failed, loaded, mixedRun, passed, runOf } from './fixtures.js';

/** A load's figures reach every report: console lines, JSON `load`, JUnit properties, HTML charts. */
describe('a load in the reports', () => {
  const run = runOf([passed(), loaded()]);

  it('console: the heading, p50/p95/p99 per trend, rates, counts and the thresholds', () => {
    const text = renderConsole(run, { color: false });
    expect(text).toContain('load: node mqtt-fleet · 200 VUs · 6.00s · 150 iterations · 50 errors');
    expect(text).toMatch(/reconnect_ms\s+p50 800ms {2}p95 3\.10s {2}p99 3\.90s {2}max 4\.00s {2}\(150\)/);
    expect(text).toMatch(/reconnected\s+75% \(150 of 200\)/);
    expect(text).toContain("✗ reconnected 'rate==1' (rate=0.75)");
    expect(text).toContain("✓ reconnect_ms 'p(95)<30000' (p(95)=3100)");
  });

  it('JSON: the load is kept and valid against the published schema', () => {
    const json = JSON.parse(renderJson(run));
    expect(runResultSchema.safeParse(json).success).toBe(true);
    expect(json.results[1].load.metrics.reconnect_ms.values['p(99)']).toBe(3900);
    expect(json.results[1].load.thresholds[0]).toMatchObject({ metric: 'reconnected', ok: false });
    expect(json.results[1].load.histogram.buckets).toHaveLength(4);
  });

  it('JUnit: load figures and threshold verdicts as properties', () => {
    type Prop = { name: string; value: string };
    type Case = { classname: string; properties: { property: Prop[] } };
    const doc = new XMLParser({
      ignoreAttributes: false,
      attributeNamePrefix: '',
      isArray: (name) => ['testsuite', 'testcase', 'property'].includes(name),
    }).parse(renderJUnit(run)) as { testsuites: { testsuite: Array<{ testcase: Case[] }> } };
    const cases = doc.testsuites.testsuite.flatMap((s) => s.testcase);
    const tc = cases.find((c) => c.classname === 'fieldlab.fleet-reconnect');
    const props = Object.fromEntries((tc?.properties.property ?? []).map((p) => [p.name, p.value]));
    expect(props['load.vus']).toBe('200');
    expect(props['load.reconnect_ms.p(95)']).toBe('3100');
    expect(props['load.threshold.reconnected rate==1']).toBe('fail');
    expect(props['load.threshold.reconnect_ms p(95)<30000']).toBe('pass');
  });

  it('HTML: the thresholds, a histogram and a throughput chart as inline SVG', () => {
    const html = renderHtml(run);
    expect(html).toContain('<section class="load" data-driver="node">');
    expect(html).toContain('<li class="crossed" data-ok="false">');
    expect((html.match(/<rect class="bar-h"/g) ?? []).length).toBe(4);
    expect(html).toContain('<figure class="chart series" data-metric="connects">');
    expect(html).toMatch(/<polyline class="line" points="[\d., ]+"\/>/);
    // Self-contained: no external resource.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
  });

  it('HTML: failed and errored variants come first, in run order, with their ids kept', () => {
    const order = failedFirst(mixedRun().results).map(({ r, i }) => `${i}:${r.status}`);
    expect(order).toEqual(['1:failed', '2:failed', '4:errored', '0:passed', '3:skipped']);
    const html = renderHtml(runOf([passed(), failed()]));
    expect(html.indexOf('id="v-1"')).toBeLessThan(html.indexOf('id="v-0"'));
  });
});
