import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FieldlabError } from '../../simulators/common/errors.js';
import { checkCapability, which } from '../capabilities.js';
import type { LoadDecl } from '../scenario/model.js';
import { loadDir } from './index.js';
import { MetricSet, percentile, type ThresholdResult } from './metrics.js';
import type { LoadHistogram, LoadMetric, LoadResult, LoadSeries } from './result.js';
import { parseThresholds } from './thresholds.js';
import type { Workload, WorkloadRelay } from './workload.js';
import { mqttFleet } from './workloads/mqtt-fleet.js';
import { tunnelStreams } from './workloads/tunnel-streams.js';

/**
 * A scenario's `load:` in a running lab. The load's options are resolved like the client's references,
 * so it goes through the same relays (toxics), proxies and inspectors as the client, while the variant's
 * faults apply. The Node driver runs a built-in workload (./workloads/) and evaluates the thresholds
 * (./thresholds.ts, k6's rules); the k6 driver runs a script from `load/` with the thresholds in
 * `THRESHOLDS` and reads k6's summary export and exit code (99: a threshold crossed).
 *
 *   load decl ─ scale VUs ─┬ node: workload.run(ctx) ─ MetricSet ─ thresholds ─┐
 *                          └ k6: k6 run --summary-export … load/<script> ───────┴▶ LoadResult
 */

export const WORKLOADS: Record<string, Workload> = {
  [tunnelStreams.name]: tunnelStreams,
  [mqttFleet.name]: mqttFleet,
};

/** What the lab gives the load. */
export interface LoadEnvironment {
  /** Resolves `${...}` references as for the client. */
  interpolate<T>(value: T): T;
  /** The lab's root CA (PEM). */
  ca: string[];
  relay(target: string): WorkloadRelay;
  /** Live figures (progress line): VUs busy and the current throughput. */
  onStatus?: (status: { vus: number; rate: number; unit: string }) => void;
  /** Where notes go (collected into the report). */
  write(text: string): void;
}

/** A time series of a counter in fixed steps (bounded: steps merge pairwise past MAX_STEPS). */
class Series {
  private step = 100;
  private readonly buckets: number[] = [];
  private static readonly MAX_STEPS = 2000;
  constructor(private readonly t0: number) {}
  add(v: number, t = performance.now()): void {
    let i = Math.floor((t - this.t0) / this.step);
    while (i >= Series.MAX_STEPS) {
      // Halve the resolution: merge neighbours.
      for (let j = 0; j < this.buckets.length; j += 2) {
        this.buckets[j / 2] = (this.buckets[j] ?? 0) + (this.buckets[j + 1] ?? 0);
      }
      this.buckets.length = Math.ceil(this.buckets.length / 2);
      this.step *= 2;
      i = Math.floor((t - this.t0) / this.step);
    }
    while (this.buckets.length <= i) this.buckets.push(0);
    this.buckets[i] = (this.buckets[i] ?? 0) + v;
  }
  /** Sum over the last `ms`. */
  recent(ms: number, t = performance.now()): number {
    const upto = Math.floor((t - this.t0) / this.step);
    const from = Math.floor((t - ms - this.t0) / this.step);
    let s = 0;
    for (let i = Math.max(0, from + 1); i <= upto && i < this.buckets.length; i++) s += this.buckets[i] ?? 0;
    return s;
  }
  /** At most `points` steps, each as a rate per second times `scale`. */
  export(points: number, scale: number, endMs: number): { stepMs: number; points: number[] } {
    const n = Math.max(1, Math.ceil(endMs / this.step));
    const per = Math.max(1, Math.ceil(n / points));
    const out: number[] = [];
    for (let i = 0; i < n; i += per) {
      let s = 0;
      for (let j = i; j < i + per && j < this.buckets.length; j++) s += this.buckets[j] ?? 0;
      out.push((s / ((per * this.step) / 1000)) * scale);
    }
    return { stepMs: per * this.step, points: out };
  }
}

/** VUs after `FIELDLAB_LOAD_SCALE` (CI runs a short form, e.g. 0.2: 1,000 devices → 200). */
export function scaledVus(vus: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.FIELDLAB_LOAD_SCALE;
  if (raw === undefined || raw === '') return vus;
  const f = Number(raw);
  if (!Number.isFinite(f) || f <= 0) {
    throw new FieldlabError('E_BAD_OPTION', `FIELDLAB_LOAD_SCALE=${raw}: expected a number > 0`, {
      hint: 'e.g. FIELDLAB_LOAD_SCALE=0.2 runs loads with a fifth of their VUs',
    });
  }
  return Math.max(1, Math.round(vus * f));
}

/** Checks a load before its lab starts: the workload or script exists, thresholds parse and name metrics. */
export function checkLoad(decl: LoadDecl): void {
  const parsed = parseThresholds(decl.thresholds);
  if (decl.duration === undefined && decl.iterations === undefined && decl.driver === 'k6') {
    throw new FieldlabError('E_BAD_LOAD', 'a k6 load needs a duration', { hint: 'e.g. duration: 10s' });
  }
  if (decl.driver === 'node') {
    // Own keys only: `constructor` or `toString` must be 'no such workload', not Object.prototype's.
    const w = Object.hasOwn(WORKLOADS, decl.script) ? WORKLOADS[decl.script] : undefined;
    if (!w) {
      throw new FieldlabError('E_BAD_LOAD', `no built-in workload named ${decl.script}`, {
        hint: `the Node driver has: ${Object.keys(WORKLOADS).join(', ')}; or use driver: k6 with a script from load/`,
      });
    }
    for (const t of parsed) {
      if (!Object.hasOwn(w.metrics, t.metric)) {
        throw new FieldlabError('E_BAD_THRESHOLD', `threshold on ${t.metric}: ${w.name} has no such metric`, {
          hint: `its metrics: ${Object.keys(w.metrics).join(', ')}`,
        });
      }
    }
  }
}

function trendValues(set: MetricSet, name: string): Record<string, number> {
  const s = [...set.samples(name)].sort((a, b) => a - b);
  if (s.length === 0) return { count: 0 };
  return {
    count: s.length,
    avg: s.reduce((a, b) => a + b, 0) / s.length,
    min: s[0] as number,
    med: percentile(s, 50),
    max: s[s.length - 1] as number,
    'p(50)': percentile(s, 50),
    'p(90)': percentile(s, 90),
    'p(95)': percentile(s, 95),
    'p(99)': percentile(s, 99),
  };
}

/** A histogram of samples in ~`bins` equal bins over [min, max]. */
export function histogram(samples: readonly number[], bins = 20): LoadHistogram['buckets'] {
  if (samples.length === 0) return [];
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of samples) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const width = hi > lo ? (hi - lo) / bins : 1;
  const out = Array.from({ length: hi > lo ? bins : 1 }, (_, i) => ({
    from: lo + i * width,
    to: lo + (i + 1) * width,
    count: 0,
  }));
  for (const v of samples) {
    const i = Math.min(out.length - 1, Math.floor((v - lo) / width));
    (out[i] as { count: number }).count++;
  }
  return out;
}

async function runNode(decl: LoadDecl, vus: number, env: LoadEnvironment): Promise<LoadResult> {
  const w = WORKLOADS[decl.script] as Workload;
  const set = new MetricSet(w.metrics);
  const started = performance.now();
  const series = new Series(started);
  const controller = new AbortController();
  // A last iteration gets a grace period past the duration (k6's gracefulStop); then everything stops.
  const stopAt = decl.duration !== undefined ? decl.duration + 10_000 : undefined;
  const stopTimer = stopAt !== undefined ? setTimeout(() => controller.abort(), stopAt) : undefined;
  const deadline = new AbortController();
  const durationTimer =
    decl.duration !== undefined ? setTimeout(() => deadline.abort(), decl.duration) : undefined;
  let active = 0;
  const status = env.onStatus
    ? setInterval(() => {
        const rate = series.recent(1000) * w.throughput.scale;
        env.onStatus?.({ vus: active, rate: Number(rate.toFixed(2)), unit: w.throughput.unit });
      }, 1000)
    : undefined;
  let iterations = 0;
  try {
    iterations = await w.run({
      vus,
      ...(decl.duration !== undefined ? { durationMs: decl.duration } : {}),
      ...(decl.iterations !== undefined ? { iterations: decl.iterations } : {}),
      // The ramp scales with the VUs: the same arrival rate (a throttle sees the same load per second).
      rampUpMs: decl.vus > 0 ? (decl.rampUp * vus) / decl.vus : decl.rampUp,
      options: env.interpolate(decl.options),
      add: (metric, value) => {
        set.add(metric, value);
        if (metric === w.throughput.metric) series.add(Number(value));
      },
      ca: env.ca,
      relay: env.relay,
      signal: controller.signal,
      deadline: deadline.signal,
      setActive: (n) => {
        active = n;
      },
      write: env.write,
    });
  } finally {
    clearTimeout(stopTimer);
    clearTimeout(durationTimer);
    clearInterval(status);
  }
  const elapsed = performance.now() - started;
  const thresholds: ThresholdResult[] = set.evaluate(decl.thresholds, elapsed);
  const metrics: Record<string, LoadMetric> = {};
  for (const [name, def] of Object.entries(w.metrics)) {
    metrics[name] = {
      type: def.type,
      ...(def.unit ? { unit: def.unit } : {}),
      values: def.type === 'trend' ? trendValues(set, name) : set.values(name, elapsed),
    };
  }
  const errValues = set.values(w.errors.metric, elapsed);
  const sx = series.export(60, w.throughput.scale, elapsed);
  const seriesOut: LoadSeries = { metric: w.throughput.metric, unit: w.throughput.unit, ...sx };
  const histogramOut: LoadHistogram = {
    metric: w.histogram,
    unit: w.metrics[w.histogram]?.unit ?? '',
    buckets: histogram(set.samples(w.histogram)),
  };
  return {
    driver: 'node',
    script: decl.script,
    vus,
    durationMs: elapsed,
    iterations,
    errors: errValues[w.errors.count] ?? 0,
    metrics,
    thresholds,
    histogram: histogramOut,
    series: seriesOut,
  };
}

type K6Summary = {
  metrics: Record<string, Record<string, number> & { thresholds?: Record<string, boolean> }>;
};

function k6Type(values: Record<string, number>): LoadMetric['type'] {
  if ('avg' in values) return 'trend';
  if ('passes' in values) return 'rate';
  return 'counter';
}

async function runK6(decl: LoadDecl, vus: number, env: LoadEnvironment): Promise<LoadResult> {
  const cap = checkCapability('k6');
  if (!cap.ok) {
    throw new FieldlabError('E_NO_K6', `k6 is not installed: ${cap.reason}`, {
      hint: 'install it with scripts/install-k6.sh, or use the Node driver (driver: node)',
    });
  }
  const dir = mkdtempSync(join(tmpdir(), 'fieldlab-k6-'));
  const summaryPath = join(dir, 'summary.json');
  const options = env.interpolate(decl.options);
  const vars: Record<string, string> = {
    ...Object.fromEntries(Object.entries(options).map(([k, v]) => [k, String(v)])),
    VUS: String(vus),
    ...(decl.duration !== undefined ? { DURATION: `${decl.duration}ms` } : {}),
    ...(Object.keys(decl.thresholds).length > 0 ? { THRESHOLDS: JSON.stringify(decl.thresholds) } : {}),
  };
  const args = [
    'run',
    '--no-usage-report',
    '--address',
    '',
    '--summary-export',
    summaryPath,
    '--summary-trend-stats',
    'avg,min,med,max,p(50),p(90),p(95),p(99)',
  ];
  for (const [k, v] of Object.entries(vars)) args.push('-e', `${k}=${v}`);
  args.push(join(loadDir(), decl.script));
  const started = performance.now();
  try {
    const code = await new Promise<number>((resolve, reject) => {
      const child = spawn(which('k6') as string, args, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, K6_NO_USAGE_REPORT: 'true', K6_AUTO_EXTENSION_RESOLUTION: 'false' },
      });
      child.stdout.on('data', (b: Buffer) => env.write(b.toString()));
      child.stderr.on('data', (b: Buffer) => env.write(b.toString()));
      child.once('error', reject);
      child.once('close', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
    });
    const elapsed = performance.now() - started;
    let summary: K6Summary;
    try {
      summary = JSON.parse(readFileSync(summaryPath, 'utf8')) as K6Summary;
    } catch {
      throw new FieldlabError('E_K6_FAILED', `k6 exited ${code} without a summary`, {
        hint: 'see the load output in the report; the script may have failed in its init context',
      });
    }
    const metrics: Record<string, LoadMetric> = {};
    const thresholds: ThresholdResult[] = [];
    for (const [name, m] of Object.entries(summary.metrics)) {
      const { thresholds: th, ...values } = m;
      metrics[name] = { type: k6Type(values), values };
      for (const [expression, failed] of Object.entries(th ?? {})) {
        const t = parseThresholds({ [name]: [expression] })[0];
        const value = t ? (values[t.aggregation] ?? values.value ?? 0) : 0;
        thresholds.push({ metric: name, expression, aggregation: t?.aggregation ?? '', value, ok: !failed });
      }
    }
    return {
      driver: 'k6',
      script: decl.script,
      vus,
      durationMs: elapsed,
      iterations: metrics.iterations?.values.count ?? 0,
      errors: 0,
      metrics,
      thresholds,
      exitCode: code,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a scenario's load in a lab. Throws a FieldlabError for a bad load; thresholds decide its verdict. */
export async function runScenarioLoad(decl: LoadDecl, env: LoadEnvironment): Promise<LoadResult> {
  checkLoad(decl);
  const vus = scaledVus(decl.vus);
  return decl.driver === 'k6' ? runK6(decl, vus, env) : runNode(decl, vus, env);
}
