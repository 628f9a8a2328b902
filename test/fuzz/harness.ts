import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';

/**
 * The fuzz suite's loop: fast-check draws batches of inputs from a protocol's arbitrary (a fixed,
 * printed seed), sends every input of a batch to a running simulator, then checks that the simulator
 * still serves a correct request from a real client and that the heap, after a full GC, is back near the
 * baseline taken after the first batch. A failure names the seed and path to replay it
 * (`FIELDLAB_FUZZ_SEED=<seed> FIELDLAB_FUZZ_PATH=<path>`), and the shrunk batch that caused it.
 */

/** One seed for every protocol unless FIELDLAB_FUZZ_SEED overrides it (a failure prints its own). */
export const SEED = Number(process.env.FIELDLAB_FUZZ_SEED ?? 20_261_206);
const PATH = process.env.FIELDLAB_FUZZ_PATH;

/**
 * Heap growth after GC that still counts as "back at the baseline". Measured here: after-GC heapUsed of
 * an idle simulator in a vitest fork moves by 0.1–0.8 MB between batches (V8 code and feedback, lazily
 * compiled functions, fast-check's own state). 4 MB is above that noise and below what a per-input leak
 * leaves over a CI run: batches are ≥ 200 inputs and runs ≥ 10 batches, so ≥ 2,000 inputs after the
 * baseline; a leak of 2 KB per input (the smallest the issue measured was 1.2 KB per MQTT cycle, and
 * 17 KB per refused client id) fails the check.
 */
export const HEAP_TOLERANCE_BYTES = 4 * 1024 * 1024;

let gcFn: (() => void) | undefined;

/** A full, synchronous GC: `global.gc` when the runner exposes it, else enabled at run time. */
export function fullGc(): void {
  if (!gcFn) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) gcFn = g;
    else {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    }
  }
  gcFn();
  gcFn();
}

/** heapUsed after GC, in bytes; lets pending socket closes run first. */
export async function heapAfterGc(): Promise<number> {
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 20));
  fullGc();
  return process.memoryUsage().heapUsed;
}

export interface FuzzSpec<T> {
  /** The protocol, for messages (e.g. `MQTT 3.1.1/5 packets → mqtt-broker`). */
  name: string;
  /** What one input looks like; mostly valid, then mutated (see arbitraries.ts). */
  input: fc.Arbitrary<T>;
  /** Sends one input to the simulator and resolves once it answered, closed or stayed silent (bounded). */
  send(input: T): Promise<void>;
  /** A correct request from a real client; rejects when the simulator no longer serves it. */
  probe(): Promise<void>;
  /** Inputs per batch and how many batches (CI: a few seconds in all). */
  batchSize: number;
  batches: number;
  /** Inputs sent concurrently within a batch. */
  concurrency?: number;
}

export interface FuzzResult {
  seed: number;
  inputs: number;
  baseline: number;
  heaps: number[];
}

/** Runs a fuzz spec; throws fast-check's report (seed, path, counterexample) on the first failure. */
export async function fuzz<T>(spec: FuzzSpec<T>): Promise<FuzzResult> {
  const heaps: number[] = [];
  let baseline: number | undefined;
  let inputs = 0;
  const concurrency = spec.concurrency ?? 8;
  process.stderr.write(`fuzz ${spec.name}: seed ${SEED}, ${spec.batches} batches of ${spec.batchSize}\n`);
  const property = fc.asyncProperty(
    fc.array(spec.input, { minLength: spec.batchSize, maxLength: spec.batchSize }),
    async (batch) => {
      let next = 0;
      const lane = async () => {
        while (next < batch.length) {
          const input = batch[next++] as T;
          await spec.send(input);
          inputs++;
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, batch.length) }, lane));
      await spec.probe();
      const heap = await heapAfterGc();
      heaps.push(heap);
      if (process.env.FIELDLAB_FUZZ_VERBOSE)
        process.stderr.write(
          `fuzz ${spec.name}: batch ${heaps.length}, ${inputs} inputs, heap ${mb(heap)} MB\n`,
        );
      // The first batch warms the code paths (JIT, lazily created caches): the baseline comes after it.
      if (baseline === undefined) {
        baseline = heap;
        return;
      }
      if (heap > baseline + HEAP_TOLERANCE_BYTES) {
        throw new Error(
          `${spec.name}: heap after GC ${mb(heap)} MB, baseline ${mb(baseline)} MB (+${mb(heap - baseline)} MB > ${mb(HEAP_TOLERANCE_BYTES)} MB tolerance) after ${inputs} inputs`,
        );
      }
    },
  );
  const details = await fc.check(property, {
    seed: SEED,
    ...(PATH ? { path: PATH } : {}),
    numRuns: spec.batches,
    // Bounded: shrinking re-sends smaller batches, and a stuck simulator must fail the run, not hang it.
    interruptAfterTimeLimit: 40_000,
    markInterruptAsFailure: true,
  });
  if (details.failed) throw new Error(failureReport(spec.name, details));
  return { seed: SEED, inputs, baseline: baseline ?? 0, heaps };
}

/** The seed, the path to replay, the error, and the (shrunk) failing batch cut to a readable size. */
function failureReport<T>(name: string, d: fc.RunDetails<[T[]]>): string {
  const example = d.counterexample ? fc.stringify(d.counterexample[0]) : '(none)';
  const cut = example.length > 4000 ? `${example.slice(0, 4000)}… (${example.length} chars)` : example;
  const cause = d.errorInstance instanceof Error ? d.errorInstance.message : String(d.errorInstance);
  return [
    `fuzz ${name} failed after ${d.numRuns} batch(es), shrunk ${d.numShrinks} time(s): ${cause}`,
    `replay: FIELDLAB_FUZZ_SEED=${d.seed} FIELDLAB_FUZZ_PATH=${d.counterexamplePath ?? ''}`,
    `failing batch (${d.counterexample?.[0].length ?? 0} inputs): ${cut}`,
  ].join('\n');
}

export function mb(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(2);
}

/** Resolves after `ms` or when `p` settles, whichever is first: a silent server is a valid answer. */
export function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.then(
      () => undefined,
      () => undefined,
    ),
    new Promise<void>((r) => {
      timer = setTimeout(r, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
