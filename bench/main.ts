/**
 * `npm run bench [-- NAME... | --quick]`: runs the side-by-side benchmarks one after another (they would
 * distort each other in parallel on a small machine), prints medians and ratios, saves JSON reports.
 * `npm run bench -- --markdown` runs nothing: it writes the results table of bench/README.md from the
 * newest JSON report of each benchmark.
 */
import { join } from 'node:path';
import { type BenchReport, formatReport, saveReport } from './lib.js';
import { latestReports, resultsMarkdown, writeResults } from './markdown.js';

const BENCHES: Record<string, () => Promise<{ run: () => Promise<BenchReport> }>> = {
  relay: () => import('./relay.js'),
  'connect-proxy': () => import('./connect-proxy.js'),
  'tls-inspector': () => import('./tls-inspector.js'),
  'geo-dns': () => import('./geo-dns.js'),
  tunnel: () => import('./tunnel.js'),
  mqtt: () => import('./mqtt.js'),
  'mqtt-connect': () => import('./mqtt-connect.js'),
  lab: () => import('./lab.js'),
  catalogue: () => import('./catalogue.js'),
};

async function main(): Promise<number> {
  if (process.argv.includes('--markdown')) {
    const table = resultsMarkdown(
      latestReports(join(process.cwd(), 'bench', 'results'), Object.keys(BENCHES)),
    );
    writeResults(join(process.cwd(), 'bench', 'README.md'), table);
    process.stdout.write(`${table}\n`);
    process.stderr.write('bench: wrote the results table into bench/README.md\n');
    return 0;
  }
  const names = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const unknown = names.filter((n) => !(n in BENCHES));
  if (unknown.length > 0) {
    process.stderr.write(
      `bench: unknown benchmark ${unknown.join(', ')} (have: ${Object.keys(BENCHES).join(', ')})\n`,
    );
    return 2;
  }
  const selected = names.length > 0 ? names : Object.keys(BENCHES);
  let missed = 0;
  for (const name of selected) {
    process.stderr.write(`bench: ${name}...\n`);
    const report = await (await BENCHES[name]!()).run();
    process.stdout.write(`${formatReport(report)}\n`);
    process.stderr.write(`bench: saved ${saveReport(report)}\n`);
    missed += report.comparisons.filter((c) => c.met === false).length;
  }
  // Missed targets are reported, not failures: the numbers are for people to read (see bench/README.md).
  if (missed > 0) process.stdout.write(`\n${missed} target(s) missed; see the ratios above.\n`);
  return 0;
}

main().then((code) => {
  process.exitCode = code;
});
