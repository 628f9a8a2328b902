/**
 * `npm run soak [-- --minutes N] [--only mqtt,dns] [--count sessions=30000] [--quick] [--scale F]`: long runs of the lab's most
 * repeated exchanges, each against a fresh lab in its own process, printing that process's heap and RSS
 * after GC as the operations go, then a summary per workload with the heap slope per 1,000 operations.
 *
 *   workload   operation (one complete exchange)                                   count
 *   mqtt       MQTT 3.1.1 CONNECT → CONNACK → DISCONNECT                            100,000
 *   tunnels    OpenTunnel → CloseTunnel (delete)                                     100,000
 *   sessions   OpenTunnel, both peers connect (v2), stream start, 1 KB each way,      10,000
 *              both disconnect, CloseTunnel (delete)
 *   dns        a UDP query with a client subnet for the geolocated name → NOERROR  1,000,000
 *   connect    CONNECT web:443 through the lab proxy → 200, close                    100,000
 *
 * "Near zero": |heap slope| ≤ 10 KB per 1,000 operations, i.e. ≤ 10 bytes per operation, fitted by least
 * squares over the samples after the first 10% (warm-up: JIT, pools, caches and bounded rings filling).
 * Why that bound: anything a simulator keeps per operation (a map entry, a closure, an event) costs at
 * least ~50–100 bytes of heap, so a per-operation leak shows as ≥ 50 KB per 1,000; the issue's leaks
 * were 1,200 KB (lab timeline) and 17,000 KB (iot-hub) per 1,000. Below 10 bytes per operation only
 * noise and bounded structures still settling remain: heap after GC moves by ±0.3 MB between samples
 * here, which over a fit of 20 samples across 10,000+ operations is a few KB per 1,000. A bounded run:
 * each workload stops at its count or its share of --minutes, whichever comes first.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Endpoints, FromLab, Workload } from './lab.js';
import {
  connectThroughProxy,
  dataPlaneSession,
  dnsQueries,
  mqttCycle,
  type Operation,
  tunnelOpenClose,
} from './workloads.js';

interface WorkloadSpec {
  count: number;
  concurrency: number;
  what: string;
  make(eps: Endpoints): Operation;
}

const WORKLOADS: Record<Workload, WorkloadSpec> = {
  mqtt: { count: 100_000, concurrency: 16, what: 'MQTT connect/disconnect cycles', make: mqttCycle },
  tunnels: { count: 100_000, concurrency: 16, what: 'tunnels opened and closed', make: tunnelOpenClose },
  sessions: { count: 10_000, concurrency: 8, what: 'data-plane sessions', make: dataPlaneSession },
  dns: { count: 1_000_000, concurrency: 64, what: 'DNS queries (UDP)', make: dnsQueries },
  connect: { count: 100_000, concurrency: 16, what: 'CONNECTs', make: connectThroughProxy },
};

/** The "near zero" bound on the heap slope (see the header). */
export const NEAR_ZERO_BYTES_PER_1000 = 10 * 1024;
const SAMPLES = 20;
const WARMUP = 0.1;

interface Sample {
  ops: number;
  seconds: number;
  heapUsed: number;
  rss: number;
  timelineEvents: number;
}

export interface RowResult {
  workload: Workload;
  what: string;
  target: number;
  ops: number;
  failures: number;
  firstFailure?: string;
  seconds: number;
  samples: Sample[];
  heapSlope: number;
  rssSlope: number;
  verdict: 'flat' | 'GROWS' | 'too short';
}

interface Args {
  minutes: number;
  only: Workload[];
  scale: number;
  /** Per-workload counts (`--count sessions=30000,dns=2000000`), before --scale. */
  counts: Partial<Record<Workload, number>>;
}

function parseArgs(argv: string[]): Args {
  const value = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const quick = argv.includes('--quick');
  const minutes = Number(value('--minutes') ?? (quick ? 2 : 15));
  const scale = Number(value('--scale') ?? (quick ? 0.02 : 1));
  const only = (value('--only')?.split(',') ?? Object.keys(WORKLOADS)) as Workload[];
  const counts: Partial<Record<Workload, number>> = {};
  for (const pair of value('--count')?.split(',') ?? []) {
    const [name, n] = pair.split('=');
    if (!name || !(name in WORKLOADS) || !(Number(n) > 0))
      throw new Error(`soak: --count takes workload=N pairs (have: ${Object.keys(WORKLOADS).join(', ')})`);
    counts[name as Workload] = Number(n);
  }
  const unknown = only.filter((w) => !(w in WORKLOADS));
  if (unknown.length > 0 || !(minutes > 0) || !(scale > 0)) {
    throw new Error(
      `soak: ${unknown.length > 0 ? `unknown workload ${unknown.join(', ')} (have: ${Object.keys(WORKLOADS).join(', ')})` : 'give --minutes and --scale as positive numbers'}`,
    );
  }
  return { minutes, only, scale, counts };
}

/** Least-squares slope of y over x. */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return Number.NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    den += ((xs[i] as number) - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
const kb = (b: number) => (b / 1024).toFixed(2);
const int = (n: number) => Math.round(n).toLocaleString('en-US');

class LabProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly endpoints: Endpoints,
  ) {}

  static async start(workload: Workload): Promise<LabProcess> {
    const child = fork(join(dirname(fileURLToPath(import.meta.url)), 'lab.js'), [workload], {
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const [msg] = (await Promise.race([
      once(child, 'message'),
      new Promise((_, rej) =>
        setTimeout(() => rej(new Error('the soak lab did not start within 60 s')), 60_000),
      ),
    ])) as [FromLab];
    if (msg.kind !== 'ready') {
      child.kill('SIGKILL');
      throw new Error(`the soak lab failed to start: ${msg.kind === 'error' ? msg.message : msg.kind}`);
    }
    return new LabProcess(child, msg.endpoints);
  }

  async measure(): Promise<Omit<Sample, 'ops' | 'seconds'>> {
    this.child.send({ kind: 'measure' });
    const [msg] = (await Promise.race([
      once(this.child, 'message'),
      new Promise((_, rej) =>
        setTimeout(() => rej(new Error('the soak lab did not answer measure')), 30_000),
      ),
    ])) as [FromLab];
    if (msg.kind !== 'memory') throw new Error(`unexpected answer ${msg.kind}`);
    return { heapUsed: msg.heapUsed, rss: msg.rss, timelineEvents: msg.timelineEvents };
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.send({ kind: 'stop' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }
}

async function runRow(workload: Workload, args: Args, deadline: number): Promise<RowResult> {
  const spec = WORKLOADS[workload];
  const target = Math.max(
    SAMPLES * spec.concurrency,
    Math.round((args.counts[workload] ?? spec.count) * args.scale),
  );
  const lab = await LabProcess.start(workload);
  let op: Operation | undefined;
  const samples: Sample[] = [];
  const t0 = performance.now();
  let ops = 0;
  let failures = 0;
  let firstFailure: string | undefined;
  const log = (s: Sample) =>
    process.stdout.write(
      `  ${workload.padEnd(9)} ${int(s.ops).padStart(9)}/${int(target)}  ${s.seconds.toFixed(0).padStart(4)} s  heap ${mb(s.heapUsed).padStart(6)} MB  rss ${mb(s.rss).padStart(6)} MB  timeline ${int(s.timelineEvents).padStart(6)}  ${int(s.seconds > 0 ? s.ops / s.seconds : 0).padStart(6)} ops/s\n`,
    );
  try {
    op = spec.make(lab.endpoints);
    const run = op.run;
    const first = { ops: 0, seconds: 0, ...(await lab.measure()) };
    samples.push(first);
    log(first);
    for (let k = 1; k <= SAMPLES && performance.now() < deadline; k++) {
      const until = Math.round((target * k) / SAMPLES);
      let next = ops;
      const lane = async () => {
        while (next < until && performance.now() < deadline) {
          const i = next++;
          try {
            await run(i);
          } catch (err) {
            failures++;
            firstFailure ??= `op ${i}: ${err instanceof Error ? err.message : String(err)}`;
          }
          ops++;
        }
      };
      await Promise.all(Array.from({ length: spec.concurrency }, lane));
      const s = { ops, seconds: (performance.now() - t0) / 1000, ...(await lab.measure()) };
      samples.push(s);
      log(s);
    }
  } finally {
    op?.close();
    await lab.stop();
  }
  const warm = samples.filter((s) => s.ops >= target * WARMUP);
  const x = warm.map((s) => s.ops / 1000);
  const heapSlope = slope(
    x,
    warm.map((s) => s.heapUsed),
  );
  const rssSlope = slope(
    x,
    warm.map((s) => s.rss),
  );
  const verdict =
    warm.length < 5 ? 'too short' : Math.abs(heapSlope) <= NEAR_ZERO_BYTES_PER_1000 ? 'flat' : 'GROWS';
  return {
    workload,
    what: spec.what,
    target,
    ops,
    failures,
    ...(firstFailure ? { firstFailure } : {}),
    seconds: (performance.now() - t0) / 1000,
    samples,
    heapSlope,
    rssSlope,
    verdict,
  };
}

function machine() {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGb: Math.round(totalmem() / 1024 ** 3),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

/** The summary as a Markdown table (what the README shows). */
export function summaryTable(rows: RowResult[]): string {
  const lines = [
    '| workload | operations | time | heap after GC, start → end | RSS, start → end | heap slope per 1,000 ops | RSS slope per 1,000 ops | verdict (≤ 10 KB per 1,000) |',
    '|---|---:|---:|---|---|---:|---:|---|',
  ];
  for (const r of rows) {
    const warm = r.samples.filter((s) => s.ops >= r.target * WARMUP);
    const a = warm[0] ?? r.samples[0];
    const z = r.samples[r.samples.length - 1];
    const fails = r.failures > 0 ? ` (${int(r.failures)} failed)` : '';
    lines.push(
      `| ${r.workload}: ${r.what} | ${int(r.ops)}${fails} | ${r.seconds.toFixed(0)} s | ${a ? mb(a.heapUsed) : '?'} → ${z ? mb(z.heapUsed) : '?'} MB | ${a ? mb(a.rss) : '?'} → ${z ? mb(z.rss) : '?'} MB | ${kb(r.heapSlope)} KB | ${kb(r.rssSlope)} KB | ${r.verdict} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const m = machine();
  const started = new Date().toISOString();
  process.stdout.write(
    `soak: ${args.only.join(', ')}; at most ${args.minutes} min; counts × ${args.scale}\nmachine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, Node ${m.node} (${m.platform})\n\n`,
  );
  const rows: RowResult[] = [];
  const perRowMs = (args.minutes * 60_000) / args.only.length;
  for (const w of args.only) {
    process.stdout.write(`${w}: ${WORKLOADS[w].what}\n`);
    const row = await runRow(w, args, performance.now() + perRowMs);
    rows.push(row);
    if (row.firstFailure)
      process.stdout.write(`  ${int(row.failures)} operations failed; first: ${row.firstFailure}\n`);
    process.stdout.write('\n');
  }
  const table = summaryTable(rows);
  process.stdout.write(
    `${table}\n\nmachine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB RAM, Node ${m.node}; ${started}\n`,
  );
  const dir = join(process.cwd(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `soak-${started.replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    path,
    `${JSON.stringify({ started, machine: m, args, nearZeroBytesPer1000: NEAR_ZERO_BYTES_PER_1000, rows }, null, 2)}\n`,
  );
  process.stderr.write(`soak: saved ${path}\n`);
  // Exit code: non-zero when a row grows or operations failed, so a CI job can run a short soak.
  return rows.some((r) => r.verdict === 'GROWS' || r.failures > 0) ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  },
);
