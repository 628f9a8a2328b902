/**
 * The JSON report (`fieldlab-report.json`): the RunResult itself, keys in result.ts's order, with a
 * published JSON Schema (draft 2020-12) derived from the zod schema that mirrors result.ts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { RunResult } from '../runner/result.js';
import { runResultSchema } from './schema.js';
import { readableBody } from './text.js';

export { runResultSchema } from './schema.js';

/** JSON Schema (draft 2020-12) of `fieldlab-report.json`. */
export const REPORT_JSON_SCHEMA: Record<string, unknown> = {
  ...z.toJSONSchema(runResultSchema, { target: 'draft-2020-12' }),
  $id: 'urn:fieldlab:report:1',
};

// Event data is `unknown`: a simulator may put a bigint in it, which JSON.stringify refuses, or a message
// body (a Buffer, which would read as a byte array): text bodies are written as text.
function replacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : readableBody(value);
}

/**
 * The run as pretty JSON with a stable key order: exactly the RunResult shape (keys outside it are
 * dropped). Should the run not match the schema (a bug upstream), it is written as it is rather than
 * lost.
 */
export function renderJson(run: RunResult): string {
  const parsed = runResultSchema.safeParse(run);
  const value: unknown = parsed.success ? parsed.data : run;
  return `${JSON.stringify(value, replacer, 2)}\n`;
}

/** Writes REPORT_JSON_SCHEMA to `path` (creating its directory). */
export async function writeReportSchema(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(REPORT_JSON_SCHEMA, null, 2)}\n`);
}
