import { describe, expect, it } from 'vitest';
import { axisEnd, renderHtml } from '../../harness/report/html.js';
import type { VariantResult } from '../../harness/runner/result.js';
import { failed, mixedRun, passed, runOf, stalled } from './fixtures.js';

interface Bar {
  phase: string;
  open: boolean;
  ms?: number;
  left: number;
  width: number;
}

/** The waterfall bars of the card with id `v-<i>`. */
function bars(html: string, i: number): Bar[] {
  const start = html.indexOf(`id="v-${i}"`);
  expect(start).toBeGreaterThan(0);
  const end = html.indexOf('</details>\n', start);
  const card = html.slice(start, end === -1 ? undefined : end);
  const re = new RegExp(
    '<div class="bar( open)? ph-[a-z-]+" data-phase="([a-z-]+)"[^>]*?(?: data-ms="([\\d.]+)")? ' +
      'style="left:([\\d.]+)%;width:([\\d.]+)%"',
    'g',
  );
  return [...card.matchAll(re)].map((m) => ({
    phase: m[2]!,
    open: m[1] !== undefined,
    ...(m[3] !== undefined ? { ms: Number(m[3]) } : {}),
    left: Number(m[4]),
    width: Number(m[5]),
  }));
}

function axisOf(html: string, i: number): number {
  const start = html.indexOf(`id="v-${i}"`);
  const m = /data-axis-ms="([\d.]+)"/.exec(html.slice(start));
  return Number(m?.[1]);
}

describe('renderHtml', () => {
  it('is one self-contained page: a summary, then a card per variant', () => {
    const html = renderHtml(mixedRun());
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('<style>');
    expect(html).toContain('1 passed, 2 failed, 1 skipped, 1 errored in 4.21s');
    for (let i = 0; i < 5; i++) expect(html).toContain(`id="v-${i}"`);
    expect(html).toContain('<details class="card failed" id="v-1" open>');
    expect(html).toContain('<details class="card passed" id="v-0">'); // passed cards start closed
    expect(html).toContain('expected fail tcp.timeout ≥5.00s, observed fail tls.untrusted-root in 75ms');
    expect(html).toContain('Skipped: needs cmd:dig: not found on PATH');
    expect(html).toContain('<code>E_LAB_START</code>');
  });

  it('draws one bar per finished phase, positioned and sized in proportion on the time axis', () => {
    const run = mixedRun();
    const html = renderHtml(run);
    for (const i of [0, 1]) {
      const r = run.results[i] as VariantResult;
      const axis = axisOf(html, i);
      expect(axis).toBe(axisEnd(r));
      const finished = bars(html, i).filter((b) => !b.open);
      expect(finished.map((b) => b.phase)).toEqual(r.phases.map((p) => p.name));
      for (const [k, b] of finished.entries()) {
        const p = r.phases[k]!;
        expect(b.ms).toBe(p.end! - p.start);
        expect(b.width).toBeCloseTo(((p.end! - p.start) / axis) * 100, 3);
        expect(b.left).toBeCloseTo((p.start / axis) * 100, 3);
      }
    }
    // Widths compare like durations: first-byte (130ms) is 3.25× tls (40ms) in the passed variant.
    const p = bars(html, 0);
    const w = (name: string) => p.find((b) => b.phase === name)!.width;
    expect(w('first-byte') / w('tls')).toBeCloseTo(130 / 40, 3);
    // A phase that never ended is an open bar running to the end of the axis, and is not counted as finished.
    const s = bars(html, 2);
    expect(s.filter((b) => !b.open)).toHaveLength(1);
    const open = s.find((b) => b.open)!;
    expect(open.phase).toBe('tcp');
    expect(open.left + open.width).toBeCloseTo(100, 3);
    expect(html).toContain('never ended');
  });

  it('labels bars with durations and has a time axis', () => {
    const html = renderHtml(runOf([passed()]));
    expect(html).toContain('<span class="wf-dur">130ms</span>');
    expect(html).toContain('<span class="wf-dur">total 182ms</span>');
    expect(html).toMatch(/<span class="tick" style="left:0%">0ms<\/span>/);
  });

  it('lists the lab timeline with offsets, sources, types and data', () => {
    const html = renderHtml(runOf([failed()]));
    expect(html).toContain(
      '<tr><td class="num">+6.0ms</td><td>inspector</td><td>connect-allowed</td>' +
        '<td class="data">target=api.example.com:443 rule=default</td></tr>',
    );
    expect(html).toContain('Lab timeline (3 events, from the first)');
  });

  it('escapes client output and event data', () => {
    const html = renderHtml(mixedRun());
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;');
    expect(html).toContain('message=&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('&lt;its own root&gt;');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: raw control characters must not survive
    expect(html).not.toMatch(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/);
    expect(html).toContain('日本語 🚀');
    // A scenario name cannot break out of an attribute or element either.
    const evil = { ...passed(), scenario: '"><img src=x onerror=alert(1)>' };
    const h2 = renderHtml(runOf([evil]));
    expect(h2).not.toContain('<img');
    expect(h2).toContain('&quot;&gt;&lt;img src=x onerror=alert(1)&gt;');
  });

  it('lists at most 400 events per variant and says how many more the JSON report has', () => {
    const r = passed();
    r.events = Array.from({ length: 1000 }, (_, i) => ({
      time: 1e12 + i,
      source: 'api',
      type: 'tick',
      data: { i },
    }));
    const html = renderHtml(runOf([r]));
    expect(html.match(/<td>tick<\/td>/g)).toHaveLength(400);
    expect(html).toContain('600 more events in the JSON report.');
    expect(html).toContain('Lab timeline (1000 events, from the first)');
  });

  it('references no external URL', () => {
    const r = failed();
    r.client = { ...r.client, stderr: 'see https://example.com/x and <a href="http://evil">' };
    const html = renderHtml(runOf([r, ...mixedRun().results]));
    // Attributes of real tags only: escaped client text (`&lt;a href=...`) is not markup.
    const tags = [...html.matchAll(/<[a-z][^<>]*>/gi)].map((m) => m[0]);
    const refs = tags.flatMap((t) =>
      [...t.matchAll(/\s(?:src|href)\s*=\s*["']?([^"'\s>]*)/gi)].map((m) => m[1]!),
    );
    expect(html).toContain('see https://example.com/x and &lt;a href=&quot;http://evil&quot;&gt;');
    expect(refs.length).toBeGreaterThan(0); // the summary links to the cards
    for (const ref of refs) expect(ref).toMatch(/^#v-\d+$/);
    expect(html).not.toMatch(/url\(\s*['"]?(?:https?:)?\/\//i);
    expect(html).not.toMatch(/@import/i);
  });

  it('marks each bar with its source and connection; lab phases before the client start widen the axis', () => {
    const r = passed();
    r.phases = [
      { name: 'tcp', start: -20, end: -10, source: 'lab', connection: 'hub.amqps#1' },
      { name: 'tls', start: 0, end: 80, source: 'client' },
    ];
    r.durationMs = 180;
    const html = renderHtml(runOf([r]));
    expect(html).toContain('data-phase="tcp" data-source="lab" data-connection="hub.amqps#1"');
    expect(html).toContain('data-phase="tls" data-source="client"');
    expect(html).toContain('data-axis-start-ms="-20"');
    const b = bars(html, 0);
    // The axis runs from -20 to 180 ms: tcp sits at the very left, tls starts a tenth in.
    expect(b.find((x) => x.phase === 'tcp')!.left).toBeCloseTo(0, 3);
    expect(b.find((x) => x.phase === 'tls')!.left).toBeCloseTo(10, 3);
    expect(b.find((x) => x.phase === 'tls')!.width).toBeCloseTo(40, 3);
  });

  it('renders a run with zero results and a variant without phases', () => {
    expect(renderHtml(runOf([], 0))).toContain('No variants ran.');
    const r = { ...stalled(), phases: [] };
    expect(renderHtml(runOf([r]))).toContain('No phase timings for this variant.');
  });
});
