import { FieldlabError } from '../../simulators/common/errors.js';
import { cleanOwnSync } from '../backends/index.js';
import { exitCodeFor, Progress, writeReports } from '../report/index.js';
import { runAll, selects } from '../runner/run.js';
import { loadScenarios } from '../scenario/load.js';
import type { Backend } from '../scenario/model.js';
import { defaultScenarioPaths } from './paths.js';

const REPORTERS = ['console', 'json', 'junit', 'html'] as const;
type Reporter = (typeof REPORTERS)[number];

export interface RunFlags {
  reporter: string[];
  out: string;
  only: string[];
  backend: Backend;
  image?: string;
  concurrency?: number;
  maxEvents?: number;
  color: boolean;
}

/** A run stopped by a signal exits as a shell reports a process the signal killed: 128 + its number. */
const SIGNAL_EXIT: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 130, SIGTERM: 143 };

/** How long the labs get to stop after a signal before the synchronous last resort runs. */
const STOP_BOUND_MS = 20_000;

/**
 * SIGINT/SIGTERM stop the run: the first aborts it (each running variant ends its client and stops its
 * lab, no new one starts), a second one, or the stop overrunning its bound, removes this process's labs
 * synchronously and exits at once. Reports are not written: a partial run's JUnit or JSON would read as
 * a complete one to CI, and vitest and jest write none on Ctrl-C either.
 */
function stopOnSignal(): { signal: AbortSignal; received: () => 'SIGINT' | 'SIGTERM' | undefined } {
  const controller = new AbortController();
  let received: 'SIGINT' | 'SIGTERM' | undefined;
  const lastResort = (why: string): never => {
    process.stderr.write(`fieldlab: ${why}: removing this run's labs now\n`);
    cleanOwnSync();
    process.exit(SIGNAL_EXIT[received ?? 'SIGINT']);
  };
  const onSignal = (sig: 'SIGINT' | 'SIGTERM') => {
    if (received) lastResort(`${sig} again`);
    received = sig;
    process.stderr.write(`\nfieldlab: ${sig}: stopping the run and its labs (no reports are written)\n`);
    controller.abort(new FieldlabError('E_INTERRUPTED', `the run was stopped by ${sig}`));
    setTimeout(
      () => lastResort(`labs still stopping after ${STOP_BOUND_MS / 1000} s`),
      STOP_BOUND_MS,
    ).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { signal: controller.signal, received: () => received };
}

export async function runCommand(paths: string[], flags: RunFlags): Promise<void> {
  const reporters = (flags.reporter.length > 0 ? flags.reporter : ['console', 'json', 'junit']) as Reporter[];
  const bad = reporters.filter((r) => !REPORTERS.includes(r));
  if (bad.length > 0) {
    throw new FieldlabError('E_BAD_FLAG', `unknown reporter ${bad.join(', ')}`, {
      hint: `use ${REPORTERS.join(', ')}`,
    });
  }
  const { loaded, errors } = await loadScenarios(defaultScenarioPaths(paths));
  if (errors.length > 0) {
    // Report every broken file at once, then stop: running half a catalogue hides the breakage.
    const msg = errors.map((e) => e.message).join('\n');
    throw new FieldlabError('E_SCENARIO', msg, { hint: errors[0]?.hint ?? '' });
  }
  if (loaded.length === 0)
    throw new FieldlabError('E_NO_SCENARIOS', 'no scenario files found', {
      hint: 'give .yaml scenario files or directories',
    });
  const color = flags.color && process.stdout.isTTY === true;
  const only = flags.only.length > 0 ? flags.only : undefined;
  if (only) {
    const known = new Set(
      loaded.flatMap((l) => [
        l.scenario.name,
        ...l.scenario.variants.map((v) => `${l.scenario.name}/${v.name}`),
      ]),
    );
    const unknown = only.filter((o) => !known.has(o));
    if (unknown.length > 0) {
      throw new FieldlabError('E_BAD_FLAG', `--only ${unknown.join(', ')} matches no scenario or variant`, {
        hint: 'see `fieldlab list` for names',
      });
    }
  }
  const variantCount = loaded.reduce((n, l) => n + l.scenario.variants.length, 0);
  const selected = loaded.reduce(
    (n, l) => n + l.scenario.variants.filter((v) => selects(only, l.scenario.name, v.name)).length,
    0,
  );
  process.stderr.write(
    `fieldlab: ${loaded.length} scenario(s), ${variantCount} variant(s), backend ${flags.backend}\n`,
  );
  // A terminal gets one status line updated in place; a log gets plain lines.
  const progress = new Progress(process.stderr, selected, {
    color: flags.color && process.stderr.isTTY === true,
  });
  const stop = stopOnSignal();
  let run: Awaited<ReturnType<typeof runAll>>;
  try {
    run = await runAll(loaded, {
      backend: flags.backend,
      ...(flags.image ? { image: flags.image } : {}),
      ...(only ? { only } : {}),
      ...(flags.concurrency ? { concurrency: flags.concurrency } : {}),
      ...(flags.maxEvents ? { maxEvents: flags.maxEvents } : {}),
      onStart: (id) => progress.start(id),
      onResult: (r) => progress.finish(r),
      onLoad: (id, status) => progress.load(id, status),
      signal: stop.signal,
    });
  } finally {
    progress.stop();
  }
  const sig = stop.received();
  if (sig) {
    // Each lab stopped in its variant's `finally`; anything a failed stop left goes now, not at `clean`.
    const left = cleanOwnSync();
    if (left.length > 0) process.stderr.write(`fieldlab: removed what labs ${left.join(', ')} left\n`);
    process.stderr.write(`fieldlab: stopped by ${sig}; every lab of this run is removed\n`);
    process.exit(SIGNAL_EXIT[sig]);
  }
  const written = await writeReports(run, { outDir: flags.out, reporters, stdout: process.stdout, color });
  for (const p of written) process.stderr.write(`wrote ${p}\n`);
  process.exitCode = exitCodeFor(run);
}
