import { FieldlabError } from '../../simulators/common/errors.js';
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
    });
  } finally {
    progress.stop();
  }
  const written = await writeReports(run, { outDir: flags.out, reporters, stdout: process.stdout, color });
  for (const p of written) process.stderr.write(`wrote ${p}\n`);
  process.exitCode = exitCodeFor(run);
}
