import type { VariantResult } from '../../harness/runner/result.js';
import { type RunAllOptions, runAll } from '../../harness/runner/run.js';
import type { LoadedScenario } from '../../harness/scenario/load.js';
import { loadOf } from '../../harness/scenario/model.js';

/**
 * Whether a scenario declares a load: its thresholds measure what this process and the machine can do, so
 * the catalogue tests run it with no other lab beside it.
 */
export function hasLoad(l: LoadedScenario): boolean {
  return l.scenario.variants.some((v) => loadOf(l.scenario, v) !== undefined);
}

type Options = Omit<RunAllOptions, 'onResult' | 'only' | 'concurrency'> & {
  /** Labs at once in the shared pool. */
  concurrency: number;
  /**
   * Scenarios run on their own after the pool (their variants `aloneConcurrency` at once, nothing else
   * beside them): those whose verdict depends on the machine's capacity, such as a load's thresholds.
   */
  alone?: (l: LoadedScenario) => boolean;
  aloneConcurrency?: number;
};

/**
 * The variants of several scenarios run in one pool (`runAll`, `concurrency` labs at once), so a scenario's
 * long variant (a timeout it waits out by design) overlaps the other scenarios' variants instead of leaving
 * the machine half idle; each test awaits its own scenario's results with `of(name)`, which resolves as
 * soon as that scenario's last variant finished. The run starts at the first `of()` (inside a test, so
 * after the file's beforeAll hooks have set the state directory).
 */
export function catalogueRun(
  scenarios: readonly LoadedScenario[],
  opts: Options,
): { of(name: string): Promise<VariantResult[]> } {
  const { concurrency, alone = () => false, aloneConcurrency = 2, ...common } = opts;
  const pending = new Map<
    string,
    { left: number; results: VariantResult[]; resolve(r: VariantResult[]): void; reject(e: unknown): void }
  >();
  const done = new Map<string, Promise<VariantResult[]>>();
  for (const l of scenarios) {
    const name = l.scenario.name;
    const results = new Promise<VariantResult[]>((resolve, reject) => {
      pending.set(name, { left: l.scenario.variants.length, results: [], resolve, reject });
    });
    // A scenario whose test was filtered out (-t) must not leave an unhandled rejection behind.
    results.catch(() => undefined);
    done.set(name, results);
  }
  const onResult = (r: VariantResult) => {
    const p = pending.get(r.scenario);
    if (!p) return;
    p.results.push(r);
    if (--p.left === 0) p.resolve(p.results);
  };
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    const pooled = scenarios.filter((l) => !alone(l));
    const apart = scenarios.filter((l) => alone(l));
    (async () => {
      await runAll(pooled, { ...common, concurrency, onResult });
      for (const l of apart) await runAll([l], { ...common, concurrency: aloneConcurrency, onResult });
    })().then(
      () => {
        // runAll reports every variant it ran: one missing is a bug of the run, named here.
        for (const [name, p] of pending) {
          if (p.left > 0) p.reject(new Error(`${name}: ${p.left} variant(s) reported no result`));
        }
      },
      (err: unknown) => {
        for (const p of pending.values()) p.reject(err);
      },
    );
  };
  return {
    of(name) {
      const p = done.get(name);
      if (!p) throw new Error(`${name} is not among the scenarios of this run`);
      start();
      return p;
    },
  };
}
