import { availableParallelism } from 'node:os';
import type { LoadedScenario } from '../scenario/load.js';
import type { Backend, Variant } from '../scenario/model.js';
import { toolVersion } from '../version.js';
import type { RunResult, Status, VariantResult } from './result.js';
import { runVariant } from './run-variant.js';

export interface RunAllOptions {
  backend: Backend;
  /** Scenario names or `scenario/variant` selectors; empty = all. */
  only?: string[];
  /** Variants run at once (each in its own lab). Default: the number of CPUs, at least 2. */
  concurrency?: number;
  /** Container backend: the fieldlab image (default $FIELDLAB_IMAGE, else fieldlab:local). */
  image?: string;
  /** The lab timeline's bound per variant (default DEFAULT_MAX_EVENTS in harness/lab/timeline.ts). */
  maxEvents?: number;
  /** Called as each variant starts, with `scenario/variant` (progress output). */
  onStart?: (id: string) => void;
  /** Called as each variant finishes (progress output). */
  onResult?: (r: VariantResult) => void;
  /** A running variant's load reports its VUs and current rate, about every second (progress output). */
  onLoad?: (id: string, status: { vus: number; rate: number; unit: string }) => void;
  /**
   * Stops the run: no variant starts after it aborts, running ones end their client and stop their lab
   * (in runVariant's `finally`), and runAll resolves with the variants that finished before.
   */
  signal?: AbortSignal;
}

/** Whether `--only` selects a variant: `name` selects all its variants, `name/variant` one. */
export function selects(only: string[] | undefined, scenario: string, variant: string): boolean {
  if (!only || only.length === 0) return true;
  return only.some((o) => o === scenario || o === `${scenario}/${variant}`);
}

/** Runs the selected variants of all scenarios, independent ones in parallel, results in catalogue order. */
export async function runAll(scenarios: LoadedScenario[], opts: RunAllOptions): Promise<RunResult> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const jobs: Array<{ s: LoadedScenario; v: Variant }> = [];
  for (const s of scenarios) {
    for (const v of s.scenario.variants) if (selects(opts.only, s.scenario.name, v.name)) jobs.push({ s, v });
  }
  const results: VariantResult[] = new Array(jobs.length);
  // netns labs one at a time: WireGuard interface names (and their UAPI sockets) are machine-wide.
  const width =
    opts.backend === 'netns' ? 1 : Math.max(1, opts.concurrency ?? Math.max(2, availableParallelism()));
  let next = 0;
  const worker = async () => {
    while (next < jobs.length && !opts.signal?.aborted) {
      const i = next++;
      const job = jobs[i]!;
      const id = `${job.s.scenario.name}/${job.v.name}`;
      opts.onStart?.(id);
      const r = await runVariant(job.s, job.v, {
        backend: opts.backend,
        image: opts.image,
        ...(opts.maxEvents !== undefined ? { maxEvents: opts.maxEvents } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.onLoad
          ? { onLoad: (status: { vus: number; rate: number; unit: string }) => opts.onLoad?.(id, status) }
          : {}),
      });
      if (opts.signal?.aborted) return; // cut short: not a result
      results[i] = r;
      opts.onResult?.(r);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, worker));
  const totals: Record<Status, number> = { passed: 0, failed: 0, skipped: 0, errored: 0 };
  // An aborted run leaves holes for the variants it never finished.
  const finished = results.filter((r) => r !== undefined);
  for (const r of finished) totals[r.status]++;
  return {
    schemaVersion: 1,
    tool: { name: 'fieldlab', version: toolVersion() },
    startedAt,
    durationMs: performance.now() - started,
    backend: opts.backend,
    results: finished,
    totals,
  };
}
