import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { type RunAllOptions, runAll } from '../../harness/runner/run.js';
import { loadScenarios } from '../../harness/scenario/load.js';

/**
 * Runs a scenario given as YAML text as `fieldlab run` would: written to a file of its own, loaded (it
 * must load without errors), run on `backend` one variant at a time unless told otherwise.
 */
export async function runScenarioText(
  yaml: string,
  backend: RunAllOptions['backend'],
  opts: Omit<RunAllOptions, 'backend'> = {},
): Promise<Awaited<ReturnType<typeof runAll>>> {
  const dir = mkdtempSync(join(tmpdir(), 'fl-scenario-text-'));
  try {
    const file = join(dir, 'scenario.yaml');
    writeFileSync(file, yaml);
    const { loaded, errors } = await loadScenarios([file]);
    expect(errors.map((e) => e.message)).toEqual([]);
    return await runAll(loaded, { concurrency: 1, ...opts, backend });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
