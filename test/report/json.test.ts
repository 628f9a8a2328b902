import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FAILURE_CLASS_NAMES } from '../../harness/probe/classes.js';
import {
  REPORT_JSON_SCHEMA,
  renderJson,
  runResultSchema,
  writeReportSchema,
} from '../../harness/report/json.js';
import type { RunResult } from '../../harness/runner/result.js';
import { mixedRun, passed, runOf } from './fixtures.js';

const RUN_KEYS = ['schemaVersion', 'tool', 'startedAt', 'durationMs', 'backend', 'results', 'totals'];

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fl-report-json-'));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

describe('renderJson', () => {
  it('round-trips the run exactly, nasty strings included', () => {
    const run = mixedRun();
    const text = renderJson(run);
    expect(text.endsWith('\n')).toBe(true);
    expect(text).toContain('\n  "schemaVersion": 1,'); // pretty-printed
    expect(JSON.parse(text)).toEqual(run);
  });

  it('keeps result.ts key order whatever order the object was built in, and drops unknown keys', () => {
    const run = mixedRun();
    const shuffled = {
      totals: run.totals,
      extra: 'not in the schema',
      results: run.results.map((r) => {
        const { scenario, ...rest } = r;
        return { ...rest, scenario, internal: true };
      }),
      backend: run.backend,
      durationMs: run.durationMs,
      startedAt: run.startedAt,
      tool: run.tool,
      schemaVersion: 1,
    } as unknown as RunResult;
    const parsed = JSON.parse(renderJson(shuffled)) as Record<string, unknown> & { results: object[] };
    expect(Object.keys(parsed)).toEqual(RUN_KEYS);
    expect(Object.keys(parsed.results[0]!).slice(0, 3)).toEqual(['scenario', 'variant', 'title']);
    expect(parsed.results[0]).not.toHaveProperty('internal');
    expect(renderJson(shuffled)).toBe(renderJson(run));
  });

  it('validates against runResultSchema and against the published JSON Schema', () => {
    const doc = JSON.parse(renderJson(mixedRun())) as unknown;
    expect(runResultSchema.safeParse(doc).success).toBe(true);
    // The published JSON Schema, turned back into a validator, accepts the report too.
    const fromPublished = z.fromJSONSchema(REPORT_JSON_SCHEMA as Parameters<typeof z.fromJSONSchema>[0]);
    expect(fromPublished.safeParse(doc).success).toBe(true);

    // And both reject a broken one.
    const broken = JSON.parse(renderJson(mixedRun())) as { results: Array<{ status: string }> };
    broken.results[0]!.status = 'sort-of';
    expect(runResultSchema.safeParse(broken).success).toBe(false);
    expect(fromPublished.safeParse(broken).success).toBe(false);
    const badClass = JSON.parse(renderJson(mixedRun())) as {
      results: Array<{ expected: { class?: string } }>;
    };
    badClass.results[1]!.expected.class = 'tcp.sadness';
    expect(runResultSchema.safeParse(badClass).success).toBe(false);
  });

  it('renders an empty run, and event data JSON cannot hold (bigint) without throwing', () => {
    expect(JSON.parse(renderJson(runOf([], 0)))).toEqual(runOf([], 0));
    const run = mixedRun();
    run.results[0]!.events[0]!.data = { big: 2n ** 70n };
    const doc = JSON.parse(renderJson(run)) as {
      results: Array<{ events: Array<{ data: { big: string } }> }>;
    };
    expect(doc.results[0]!.events[0]!.data.big).toBe((2n ** 70n).toString());
  });
});

describe('REPORT_JSON_SCHEMA', () => {
  it('keeps phases[] with their source and connection, valid against the published schema', () => {
    const r = passed();
    r.phases = [
      { name: 'tcp', start: 1, end: 2, source: 'client' },
      { name: 'tcp', start: -3, end: 4, source: 'lab', connection: 'api#1' },
      { name: 'tls', start: 4, source: 'lab', connection: 'api#1' },
    ];
    const parsed = JSON.parse(renderJson(runOf([r])));
    expect(parsed.results[0].phases).toEqual(r.phases);
    expect(runResultSchema.safeParse(parsed).success).toBe(true);
    const bad = {
      ...parsed,
      results: [{ ...parsed.results[0], phases: [{ name: 'tcp', start: 0, source: 'x' }] }],
    };
    expect(runResultSchema.safeParse(bad).success).toBe(false);
  });

  it('writes message bodies that are text as text, binary ones as base64, not as byte arrays', () => {
    const r = passed();
    r.events = [
      { time: 1, source: 'hub', type: 'telemetry', data: { deviceId: 'd', body: Buffer.from('{"t":21}') } },
      { time: 2, source: 'hub', type: 'telemetry', data: { deviceId: 'd', body: Buffer.from([0, 1, 0xff]) } },
      // A container lab's events arrive as JSON: the Buffer is already `{type, data}`.
      { time: 3, source: 'hub', type: 'telemetry', data: { body: { type: 'Buffer', data: [104, 105] } } },
    ];
    const text = renderJson(runOf([r]));
    const events = JSON.parse(text).results[0].events;
    expect(events[0].data.body).toBe('{"t":21}');
    expect(events[1].data.body).toEqual({ type: 'Buffer', base64: 'AAH/' });
    expect(events[2].data.body).toBe('hi');
    expect(text).not.toContain('"data": [');
  });

  it('is draft 2020-12 and describes the RunResult shape', () => {
    const s = REPORT_JSON_SCHEMA as {
      $schema: string;
      type: string;
      required: string[];
      properties: Record<string, { const?: unknown; items?: unknown }>;
    };
    expect(s.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(s.type).toBe('object');
    expect([...s.required].sort()).toEqual([...RUN_KEYS].sort());
    expect(s.properties.schemaVersion?.const).toBe(1);
    // The failure classes come from classes.ts.
    const text = JSON.stringify(s);
    for (const c of FAILURE_CLASS_NAMES) expect(text).toContain(`"${c}"`);
  });

  it('writeReportSchema writes it as JSON, creating the directory', async () => {
    const path = join(tmp, 'nested', 'report.schema.json');
    await writeReportSchema(path);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual(REPORT_JSON_SCHEMA);
  });
});
