import { setTimeout as delay } from 'node:timers/promises';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { ToxicSpecInput } from '../faults/spec.js';
import type { MetricType } from './metrics.js';

/**
 * What a built-in Node workload is given and gives back. A workload declares its metrics (k6's types),
 * which one is its throughput (drawn over time), which trend its histogram shows, and runs its VUs with
 * `runVus` (k6's ramping + shared-iterations executors) or its own plan (a fleet that connects, loses
 * its hub, and comes back).
 */

export interface WorkloadMetricDef {
  type: MetricType;
  time?: boolean;
  unit?: string;
}

/** A relay of the lab, for workloads that act on the path (drop every connection at once). */
export interface WorkloadRelay {
  addToxic(spec: ToxicSpecInput): unknown;
}

export interface WorkloadContext {
  vus: number;
  /** Ends the load; absent: until `iterations` are done. */
  durationMs?: number;
  iterations?: number;
  rampUpMs: number;
  /** The load's options, references already resolved. */
  options: Record<string, string | number | boolean>;
  /** Adds a sample (see MetricSet.add); the throughput metric is also recorded over time. */
  add(metric: string, value: number | boolean): void;
  /** The lab's root CA (PEM) the lab's servers are issued from. */
  ca: string[];
  relay(target: string): WorkloadRelay;
  /** Aborted when the load's duration is up (workloads with their own plan stop waiting then). */
  deadline: AbortSignal;
  /** Aborted when the load must stop: the duration plus a grace period for a last iteration. */
  signal: AbortSignal;
  /** VUs busy now (live progress). */
  setActive(n: number): void;
  write(text: string): void;
}

export interface Workload {
  name: string;
  summary: string;
  metrics: Record<string, WorkloadMetricDef>;
  /** A counter drawn over time: its per-second rate, times `scale`, in `unit`. */
  throughput: { metric: string; unit: string; scale: number };
  /** The trend whose histogram the HTML report shows. */
  histogram: string;
  /** The Rate metric that counts errors: its non-zero samples (`passes`), or its zero ones (`fails`). */
  errors: { metric: string; count: 'passes' | 'fails' };
  /** Runs the load; resolves to iterations completed. */
  run(ctx: WorkloadContext): Promise<number>;
}

/** A string option, or undefined when absent or empty. */
export function opt(ctx: WorkloadContext, name: string): string | undefined {
  const v = ctx.options[name];
  return v === undefined || v === '' ? undefined : String(v);
}

export function numOpt(ctx: WorkloadContext, name: string, fallback: number): number {
  const v = ctx.options[name];
  const n = v === undefined || v === '' ? fallback : Number(v);
  if (!Number.isFinite(n) || n < 0) {
    throw new FieldlabError('E_BAD_LOAD', `load option ${name}=${String(v)}: expected a number ≥ 0`, {
      where: `load.options.${name}`,
      hint: "see the workload's options in harness/load/workloads/",
    });
  }
  return n;
}

/** A required string option; a FieldlabError names it and the workload otherwise. */
export function needOpt(ctx: WorkloadContext, name: string, workload: string): string {
  const v = opt(ctx, name);
  if (v === undefined) {
    throw new FieldlabError('E_BAD_LOAD', `${workload} needs the load option ${name}`, {
      where: `load.options.${name}`,
      hint: "see the workload's options in harness/load/workloads/",
    });
  }
  return v;
}

/**
 * Runs `iteration` on `ctx.vus` VUs: VU i starts at i·rampUp/vus (a linear ramp), each runs iterations
 * until the duration is up or the shared iteration count is spent (k6's shared-iterations). A failed
 * iteration is the workload's to count; here it only waits a little before the next (as k6's sleep).
 */
export async function runVus(
  ctx: WorkloadContext,
  iteration: (vu: number) => Promise<void>,
): Promise<number> {
  const started = performance.now();
  const end = ctx.durationMs !== undefined ? started + ctx.durationMs : Number.POSITIVE_INFINITY;
  let left = ctx.iterations ?? Number.POSITIVE_INFINITY;
  let done = 0;
  let active = 0;
  const vu = async (i: number) => {
    const startAt = ctx.vus > 1 ? (ctx.rampUpMs * i) / ctx.vus : 0;
    if (startAt > 0) await delay(startAt, undefined, { signal: ctx.signal }).catch(() => undefined);
    while (performance.now() < end && left > 0 && !ctx.signal.aborted) {
      left--;
      ctx.setActive(++active);
      try {
        await iteration(i);
        done++;
      } catch (err) {
        ctx.write(`vu ${i}: ${(err as Error).message}\n`);
        await delay(Math.max(0, Math.min(500, end - performance.now())), undefined, {
          signal: ctx.signal,
        }).catch(() => undefined);
      } finally {
        ctx.setActive(--active);
      }
    }
  };
  await Promise.all(Array.from({ length: ctx.vus }, (_, i) => vu(i)));
  return done;
}
