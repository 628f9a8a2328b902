import { availableParallelism } from 'node:os';
import type { LoadedScenario } from '../scenario/load.js';
import { type Backend, patchedHosts, type Scenario, type Variant } from '../scenario/model.js';
import { toolVersion } from '../version.js';
import { runPool } from './pool.js';
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

/**
 * The WireGuard interface names a variant's netns lab names itself (`wireguard.ifname`, the variant's
 * `network` patch applied): their UAPI sockets (`/var/run/wireguard/<ifname>.sock`) are machine-wide, so
 * two labs naming one run one after the other. An unnamed interface gets a name of its lab's own.
 */
export function wireguardNames(s: Scenario, v: Variant): string[] {
  if (!s.lab.network) return [];
  return patchedHosts(s.lab.network, v.network).flatMap((h) =>
    h.wireguard?.ifname ? [h.wireguard.ifname] : [],
  );
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
  const width = Math.max(1, opts.concurrency ?? Math.max(2, availableParallelism()));
  const tasks = jobs.map((job, i) => ({
    keys: opts.backend === 'netns' ? wireguardNames(job.s.scenario, job.v) : [],
    run: async () => {
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
    },
  }));
  // Variants in parallel, each in its own lab; netns labs that name one WireGuard interface one at a time.
  await runPool(tasks, width, () => opts.signal?.aborted === true);
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
