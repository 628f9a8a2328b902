import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, type as osType, release } from 'node:os';
import { join } from 'node:path';
import { parentPort, Worker } from 'node:worker_threads';

/**
 * Side-by-side benchmarks: every figure is measured against a reference run in the same process run
 * (direct TCP, Squid, mosquitto, dnsmasq...), repeated, and reported as medians and ratios. Machines here
 * are shared and noisy, so no figure is asserted by a test; targets are printed beside the ratios.
 */

export interface Measurement {
  /** What was measured, e.g. `bulk throughput`. */
  metric: string;
  unit: string;
  /** Higher is better (throughput) or lower is better (latency). */
  better: 'higher' | 'lower';
  /** subject name → samples, e.g. { fieldlab: [...], squid: [...], direct: [...] } */
  samples: Record<string, number[]>;
}

export interface Comparison {
  metric: string;
  subject: string;
  reference: string;
  /** The target ratio subject/reference (for `lower`, reference/subject), when one is set. */
  target?: number;
}

/** An absolute target on a subject's median (e.g. a lab ready in < 300 ms). */
export interface Limit {
  metric: string;
  subject: string;
  /** The median must stay below this (lower is better) ... */
  max?: number;
  /** ... or above this (higher is better). */
  min?: number;
}

/** The machine a report was measured on: numbers are never quoted without it. */
export interface Machine {
  cpuModel: string;
  cores: number;
  kernel: string;
  node: string;
}

export interface BenchReport {
  name: string;
  startedAt: string;
  environment: { node: string; platform: string; cpus: number; machine?: Machine };
  measurements: Array<Measurement & { medians: Record<string, number> }>;
  comparisons: Array<Comparison & { ratio: number; met: boolean | null }>;
  limits?: Array<Limit & { value: number; met: boolean | null }>;
  notes: string[];
}

/** CPU model, cores, kernel and Node version of this machine. */
export function machine(): Machine {
  return {
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    kernel: `${osType()} ${release()}`,
    node: process.version,
  };
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Runs `fn` `rounds` times per subject, interleaving subjects so drift on the machine hits all alike. */
export async function interleave<T = number>(
  subjects: Record<string, () => Promise<T>>,
  rounds: number,
): Promise<Record<string, T[]>> {
  const out: Record<string, T[]> = {};
  for (const name of Object.keys(subjects)) out[name] = [];
  for (let r = 0; r < rounds; r++) {
    for (const [name, fn] of Object.entries(subjects)) out[name]!.push(await fn());
  }
  return out;
}

export function buildReport(
  name: string,
  measurements: Measurement[],
  comparisons: Comparison[],
  notes: string[] = [],
  limits: Limit[] = [],
): BenchReport {
  const withMedians = measurements.map((m) => ({
    ...m,
    medians: Object.fromEntries(Object.entries(m.samples).map(([k, v]) => [k, median(v)])),
  }));
  const cmp = comparisons.map((c) => {
    const m = withMedians.find((x) => x.metric === c.metric);
    const s = m?.medians[c.subject];
    const r = m?.medians[c.reference];
    let ratio = Number.NaN;
    if (m && s !== undefined && r !== undefined) ratio = m.better === 'higher' ? s / r : r / s;
    const met = c.target === undefined || Number.isNaN(ratio) ? null : ratio >= c.target;
    return { ...c, ratio, met };
  });
  const lim = limits.map((l) => {
    const value = withMedians.find((x) => x.metric === l.metric)?.medians[l.subject] ?? Number.NaN;
    let met: boolean | null = null;
    if (!Number.isNaN(value)) {
      if (l.max !== undefined) met = value < l.max;
      else if (l.min !== undefined) met = value >= l.min;
    }
    return { ...l, value, met };
  });
  return {
    name,
    startedAt: new Date().toISOString(),
    environment: {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpus: availableParallelism(),
      machine: machine(),
    },
    measurements: withMedians,
    comparisons: cmp,
    limits: lim,
    notes: quick() ? [...notes, '--quick run: short, a smoke test rather than a measurement'] : notes,
  };
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toPrecision(3);
}

/** A plain-text table of medians and ratios, for the console. */
export function formatReport(r: BenchReport): string {
  const lines = [`\n== ${r.name} ==`];
  for (const m of r.measurements) {
    const cells = Object.entries(m.medians).map(([k, v]) => `${k} ${fmt(v)}`);
    lines.push(
      `  ${m.metric} (${m.unit}, median of ${Object.values(m.samples)[0]?.length ?? 0}): ${cells.join(' | ')}`,
    );
  }
  for (const c of r.comparisons) {
    const target = c.target === undefined ? '' : ` (target ≥ ${c.target}×: ${c.met ? 'met' : 'MISSED'})`;
    lines.push(`  ${c.metric}: ${ratioLabel(r, c)} = ${fmt(c.ratio)}×${target}`);
  }
  for (const l of r.limits ?? []) {
    const bound = l.max !== undefined ? `< ${fmt(l.max)}` : `≥ ${fmt(l.min ?? Number.NaN)}`;
    lines.push(
      `  ${l.metric}: ${l.subject} = ${fmt(l.value)} (target ${bound}: ${l.met ? 'met' : 'MISSED'})`,
    );
  }
  for (const n of r.notes) lines.push(`  note: ${n}`);
  return lines.join('\n');
}

/**
 * How a ratio reads: always "higher is better", so for a lower-is-better metric (CPU per query, ms) it
 * is the reference's value over the subject's, and the label says so.
 */
export function ratioLabel(r: BenchReport, c: Comparison): string {
  const better = r.measurements.find((m) => m.metric === c.metric)?.better;
  return better === 'lower'
    ? `${c.reference} ÷ ${c.subject} (lower is better)`
    : `${c.subject} / ${c.reference}`;
}

/** Writes the report as JSON under bench/results/ and returns the path. */
export function saveReport(r: BenchReport, dir = join(process.cwd(), 'bench', 'results')): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${r.name}-${r.startedAt.replace(/[:.]/g, '-')}.json`);
  writeFileSync(path, `${JSON.stringify(r, null, 2)}\n`);
  return path;
}

/** Rejects when `p` takes longer than `ms`: a stuck path must fail the run, not hang it. */
export function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what}: no result within ${ms}ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

/** Whether a benchmark was asked for a short smoke run (`--quick` or FIELDLAB_BENCH_QUICK=1). */
export function quick(): boolean {
  return process.argv.includes('--quick') || process.env.FIELDLAB_BENCH_QUICK === '1';
}

/**
 * Starts a benchmark's server side in a worker thread (its own event loop, as a separate server process
 * would have). The module's worker side calls `serveInWorker` with what it serves (e.g. `{ port }`).
 */
export async function startInWorker<T extends object>(
  module: string | URL,
  workerData?: unknown,
): Promise<T & { stop(): Promise<void>; cpuMs(): Promise<number> }> {
  const w = new Worker(module, workerData === undefined ? {} : { workerData });
  const [msg] = (await once(w, 'message')) as [T];
  return {
    ...msg,
    /** CPU the worker's thread has used so far, in ms (a worker started with `serveInWorker`). */
    async cpuMs() {
      w.postMessage('cpu');
      const [reply] = (await bounded(once(w, 'message'), 10_000, 'the worker CPU time')) as [
        { cpuMs: number },
      ];
      return reply.cpuMs;
    },
    async stop() {
      w.postMessage('stop');
      await bounded(once(w, 'message'), 10_000, 'the worker stop').catch(() => undefined);
      await w.terminate();
    },
  };
}

/**
 * The worker side of `startInWorker`: posts what it serves, answers `cpu` with the thread's CPU time
 * and `stop` by stopping. Thread CPU, not wall time: on a machine with fewer cores than busy threads a
 * thread's wall time includes the waits for a core.
 */
export function serveInWorker(serving: object, stop: () => Promise<unknown>): void {
  parentPort?.postMessage(serving);
  parentPort?.on('message', async (m: unknown) => {
    if (m === 'cpu') {
      parentPort?.postMessage({ cpuMs: threadCpuMs() });
      return;
    }
    await stop();
    parentPort?.postMessage({ stopped: true });
  });
}

/** This thread's user + system CPU in ms (Linux /proc/thread-self; clock ticks are 10 ms). */
function threadCpuMs(): number {
  return statCpuMs('/proc/thread-self/stat');
}

/** A process's user + system CPU in ms, its threads included (Linux /proc/PID/stat). */
export function processCpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/stat`);
}

function statCpuMs(path: string): number {
  const stat = readFileSync(path, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ", field 3 (state) is index 0: utime (field 14) and stime (field 15).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
