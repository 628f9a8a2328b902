import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';

/**
 * The fuzz suite's loop: fast-check draws batches of inputs from a protocol's arbitrary (a fixed,
 * printed seed), sends every input of a batch to a running simulator, then checks that the simulator
 * still serves a correct request from a real client and that the heap, after a full GC, is back near the
 * baseline taken after a warm-up batch. A failure names the seed and path to replay it
 * (`FIELDLAB_FUZZ_SEED=<seed> FIELDLAB_FUZZ_PATH=<path>`), and the shrunk batch that caused it.
 */

/** One seed for every protocol unless FIELDLAB_FUZZ_SEED overrides it (a failure prints its own). */
export const SEED = Number(process.env.FIELDLAB_FUZZ_SEED ?? 20_261_206);
const PATH = process.env.FIELDLAB_FUZZ_PATH;

/**
 * Heap growth after GC that still counts as "back at the baseline". Measured here (inputs without shrink
 * contexts, see `Flat`): after-GC heapUsed of a simulator in a vitest fork moves by 0.1–0.8 MB between
 * batches (lazily compiled code, pools, fast-check's own state). 4 MB is above that noise; what it
 * catches in a CI run of 500–1,500 inputs is a leak of ≥ 3–8 KB per input (the iot-hub one in issue #12
 * was 17 KB per refused client id). Smaller per-operation leaks (the 1.2 KB per MQTT cycle of the lab
 * timeline, the connect-proxy's 3.3 KB per CONNECT) need more operations than a CI run makes: that is
 * `npm run soak`'s job, which fits a slope over 10^4–10^6 operations.
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

/**
 * heapUsed after GC once it is at or under `limit`, or the last reading after `ms`: connections a batch
 * closed are released when their close events have run, which on a loaded machine takes a moment.
 */
export async function heapBackTo(limit: number, ms: number): Promise<number> {
  const deadline = Date.now() + ms;
  let heap = await heapAfterGc();
  while (heap > limit && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    heap = await heapAfterGc();
  }
  return heap;
}

/**
 * An input with its shrink context dropped once generated. fast-check keeps, for every generated value,
 * the context it would shrink from (for a 2,000-character client id, 2,000 character values): for a
 * batch of hundreds of inputs that is megabytes in this process, which would read as the simulator's
 * heap. Batches still shrink to the fewest inputs that fail; each input is reported whole.
 */
class Flat<T> extends fc.Arbitrary<T> {
  constructor(private readonly arb: fc.Arbitrary<T>) {
    super();
  }
  generate(mrng: fc.Random, biasFactor: number | undefined): fc.Value<T> {
    return new fc.Value(this.arb.generate(mrng, biasFactor).value_, undefined);
  }
  canShrinkWithoutContext(_value: unknown): _value is T {
    return false;
  }
  shrink(): fc.Stream<fc.Value<T>> {
    return fc.Stream.nil();
  }
}

export interface FuzzSpec<T> {
  /** The protocol, for messages (e.g. `MQTT 3.1.1/5 packets → mqtt-broker`). */
  name: string;
  /** What one input looks like; mostly valid, then mutated (see mutate.ts). */
  input: fc.Arbitrary<T>;
  /** Sends one input to the simulator and resolves once it answered, closed or stayed silent (bounded). */
  send(input: T): Promise<void>;
  /** A correct request from a real client; rejects when the simulator no longer serves it. */
  probe(): Promise<void>;
  /** Releases what a batch legitimately left (e.g. tunnels a user would close) before the heap is read. */
  settle?(): Promise<void>;
  /** The most inputs in a batch (sizes are drawn from 1 to it) and how many batches (CI: seconds). */
  batchSize: number;
  batches: number;
  /** Inputs sent concurrently within a batch. */
  concurrency?: number;
}

export interface FuzzResult {
  seed: number;
  /** Batches run; `heaps` has one after-GC reading per batch. */
  batches: number;
  inputs: number;
  baseline: number;
  heaps: number[];
}

/** Runs a fuzz spec; throws fast-check's report (seed, path, counterexample) on the first failure. */
export async function fuzz<T>(spec: FuzzSpec<T>): Promise<FuzzResult> {
  const heaps: number[] = [];
  let inputs = 0;
  const concurrency = spec.concurrency ?? 8;
  process.stderr.write(
    `fuzz ${spec.name}: seed ${SEED}, ${spec.batches} batches of up to ${spec.batchSize}\n`,
  );
  const sendAll = async (batch: T[]) => {
    let next = 0;
    const lane = async () => {
      while (next < batch.length) {
        const input = batch[next++] as T;
        await spec.send(input);
        inputs++;
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, batch.length) }, lane));
  };
  // Warm-up, one full batch from the same seed: JIT, lazily created caches and pools settle before the
  // baseline is read, so the checks below see growth, not first use.
  const [warmup] = fc.sample(fc.array(spec.input, { minLength: spec.batchSize, maxLength: spec.batchSize }), {
    seed: SEED,
    numRuns: 1,
  });
  await sendAll(warmup ?? []);
  await spec.probe();
  await spec.settle?.();
  const baseline = await heapAfterGc();
  // A heap that does not come back is reported once, with the batch that was running: smaller batches
  // would not say more about a leak (it is the sum of many inputs), so no shrinking for it.
  let leak: string | undefined;
  const property = fc.asyncProperty(
    // Sizes drawn up to batchSize (size 'max': not biased small), so a failure can shrink to one input.
    fc.array(new Flat(spec.input), { minLength: 1, maxLength: spec.batchSize, size: 'max' }),
    async (batch) => {
      if (leak !== undefined) return;
      crashes.length = 0;
      await sendAll(batch);
      // An exception the simulator did not catch would end a real lab process: it fails the batch (and
      // shrinks to the input that throws), besides vitest reporting it.
      if (crashes.length > 0) throw new Error(`uncaught in the simulator: ${describe(crashes[0])}`);
      await spec.probe();
      await spec.settle?.();
      const heap = await heapBackTo(baseline + HEAP_TOLERANCE_BYTES, 3000);
      heaps.push(heap);
      if (process.env.FIELDLAB_FUZZ_VERBOSE)
        process.stderr.write(
          `fuzz ${spec.name}: batch ${heaps.length}, ${inputs} inputs, heap ${mb(heap)} MB\n`,
        );
      if (heap > baseline + HEAP_TOLERANCE_BYTES) {
        leak = `${spec.name}: heap after GC ${mb(heap)} MB, baseline ${mb(baseline)} MB (+${mb(heap - baseline)} MB > ${mb(HEAP_TOLERANCE_BYTES)} MB tolerance, not back within 3 s) after ${inputs} inputs`;
        throw new Error(leak);
      }
    },
  );
  const crashes: unknown[] = [];
  const onCrash = (err: unknown) => crashes.push(err);
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  const details = await fc
    .check(property, {
      seed: SEED,
      ...(PATH ? { path: PATH } : {}),
      numRuns: spec.batches,
      // Bounded: shrinking re-sends smaller batches, and a stuck simulator must fail the run, not hang it.
      interruptAfterTimeLimit: 20_000,
      markInterruptAsFailure: true,
    })
    .finally(() => {
      process.off('uncaughtException', onCrash);
      process.off('unhandledRejection', onCrash);
    });
  if (details.failed) throw new Error(failureReport(spec.name, details));
  return { seed: SEED, batches: spec.batches, inputs, baseline, heaps };
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

function describe(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message).split('\n').slice(0, 4).join(' | ') : String(err);
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
