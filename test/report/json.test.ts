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
import { mixedRun, runOf } from './fixtures.js';

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
