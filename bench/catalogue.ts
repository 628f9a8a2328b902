/**
 * Catalogue benchmark: wall time of `fieldlab run scenarios` on the loopback backend (every scenario and
 * variant of the catalogue, with their real clients, at the CLI's default concurrency), beside two
 * references from the same run's JSON report: the longest single variant (no schedule can finish before
 * it: several variants wait out a timeout by design), the sum of all variants' durations (what one at
 * a time would take), and the ideal schedule: the larger of the longest variant and the sum over the
 * CLI's concurrency (CPUs, at least 2). With --quick only the `https-endpoint` scenario runs.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchReport, buildReport, quick } from './lib.js';

interface RunReport {
  durationMs: number;
  results: Array<{ scenario: string; variant: string; status: string; durationMs: number }>;
}

export async function run(): Promise<BenchReport> {
  const q = quick();
  const bin = fileURLToPath(new URL('../harness/cli/bin.js', import.meta.url));
  const scenarios = join(process.cwd(), 'scenarios');
  if (!existsSync(bin) || !existsSync(scenarios)) {
    return buildReport(
      'catalogue',
      [],
      [],
      ['needs the compiled CLI and ./scenarios (run from the package root)'],
    );
  }
  const out = mkdtempSync(join(tmpdir(), 'fieldlab-bench-catalogue-'));
  try {
    const args = [bin, 'run', scenarios, '-r', 'json', '-o', out, '--no-color', '-b', 'loopback'];
    if (q) args.push('--only', 'https-endpoint');
    const t0 = performance.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGTERM'), 15 * 60_000);
    await once(child, 'exit');
    clearTimeout(timer);
    const wallMs = performance.now() - t0;
    const file = join(out, 'fieldlab-report.json');
    if (!existsSync(file)) throw new Error(`fieldlab run wrote no report: ${stderr.trim().slice(-400)}`);
    const report = JSON.parse(readFileSync(file, 'utf8')) as RunReport;
    const durations = report.results.map((r) => r.durationMs);
    const sum = durations.reduce((a, b) => a + b, 0);
    // The CLI's default concurrency (see `fieldlab run --help`).
    const concurrency = Math.max(2, availableParallelism());
    const failed = report.results.filter((r) => r.status !== 'passed');
    const notes = [
      `${report.results.length} variants${q ? ' (--quick: https-endpoint only)' : ''}, CLI default concurrency (${concurrency}); wall time includes the CLI's start`,
    ];
    if (failed.length > 0)
      notes.push(`not passed: ${failed.map((r) => `${r.scenario}/${r.variant} (${r.status})`).join(', ')}`);
    const slowest = report.results.reduce(
      (a, b) => (b.durationMs > a.durationMs ? b : a),
      report.results[0]!,
    );
    if (slowest) notes.push(`longest variant: ${slowest.scenario}/${slowest.variant}`);
    return buildReport(
      'catalogue',
      [
        {
          metric: 'catalogue wall time',
          unit: 's',
          better: 'lower',
          samples: {
            'fieldlab run': [wallMs / 1000],
            'longest variant': [Math.max(...durations) / 1000],
            'sum of variants': [sum / 1000],
            'ideal schedule': [Math.max(Math.max(...durations), sum / concurrency) / 1000],
          },
        },
      ],
      [{ metric: 'catalogue wall time', subject: 'fieldlab run', reference: 'ideal schedule' }],
      notes,
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
