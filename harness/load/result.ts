import type { MetricType, ThresholdResult } from './metrics.js';

/**
 * What a scenario's load came to, in the variant's result (JSON report `results[].load`): the figures
 * of every metric (trends with p50/p95/p99), the thresholds' verdicts, and the shapes the HTML report
 * draws (a histogram of the main latency, throughput over time).
 */
export interface LoadResult {
  driver: 'node' | 'k6';
  /** The Node workload or the k6 script. */
  script: string;
  /** Virtual users after FIELDLAB_LOAD_SCALE. */
  vus: number;
  /** Wall time of the load, ms. */
  durationMs: number;
  /** Iterations completed (streams, devices, k6 iterations). */
  iterations: number;
  /** Errors counted by the workload's error metric. */
  errors: number;
  metrics: Record<string, LoadMetric>;
  thresholds: ThresholdResult[];
  /** The main latency's distribution (e.g. reconnect time, tunnel open time). */
  histogram?: LoadHistogram;
  /** Throughput over time (e.g. MB/s, reconnections/s). */
  series?: LoadSeries;
  /** The driver's notes and k6's output (last lines). */
  output?: string;
  /** k6: its exit code (99: thresholds crossed). */
  exitCode?: number;
}

export interface LoadMetric {
  type: MetricType;
  /** `ms` for times; else what it counts (`bytes`, `MB/s`, `devices`). */
  unit?: string;
  /** Counter: count, rate; Rate: value, passes, fails; Trend: count, avg, min, med, max, p(50), p(90), p(95), p(99). */
  values: Record<string, number>;
}

export interface LoadHistogram {
  metric: string;
  unit: string;
  /** Buckets in order: samples with from ≤ v < to (the last includes its `to`). */
  buckets: Array<{ from: number; to: number; count: number }>;
}

export interface LoadSeries {
  metric: string;
  /** Unit of each point, e.g. `MB/s`. */
  unit: string;
  /** Width of a step, ms; point i covers [i·stepMs, (i+1)·stepMs) from the load's start. */
  stepMs: number;
  points: number[];
}

/** Whether every threshold held. */
export function loadPassed(r: LoadResult): boolean {
  return r.thresholds.every((t) => t.ok) && (r.exitCode === undefined || r.exitCode === 0);
}
