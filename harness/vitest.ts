/**
 * fieldlab inside vitest: a lab fixture and matchers.
 *
 *   import { expect, it } from 'vitest';
 *   import { runScenario } from 'fieldlab';
 *   import { useLab } from 'fieldlab/vitest';   // also registers the matchers
 *
 *   it('reaches the hub through the proxy', async () => {
 *     const lab = await useLab('scenarios/proxy-auth.yaml', { variant: 'fixed' });   // stopped after the test
 *     await myDevice({ env: lab.env, proxy: `http://${lab.ref('proxy.hostport')}` });
 *     expect(lab).toHaveSeen({ source: 'proxy', type: 'connect-allowed' });
 *   });
 *
 *   it('fails the documented way', async () => {
 *     const run = await runScenario('scenarios/proxy-auth.yaml', { only: ['broken-no-credentials'] });
 *     expect(run).toFailWith('proxy.auth-required');
 *   });
 *
 * vitest is an optional peer dependency of fieldlab: only this entry needs it.
 */
import { readFile } from 'node:fs/promises';
import { expect, onTestFinished } from 'vitest';
import { FieldlabError } from '../simulators/common/errors.js';
import type { LabEvent } from '../simulators/common/events.js';
import type { Lab } from './lab/lab.js';
import { startUpLab } from './lab/up-lab.js';
import { type FailureClass, isFailureClass } from './probe/classes.js';
import { type EventQuery, eventMatches } from './runner/expectation.js';
import type { RunResult, VariantResult } from './runner/result.js';
import { loadScenario } from './scenario/load.js';

export interface UseLabOptions {
  /** Apply this variant's simulator options and faults (a scenario file only). */
  variant?: string;
  /** The lab timeline's bound (default 10000 events). */
  maxEvents?: number;
  /**
   * Stop the lab when the current test finishes (default). `false` when called outside a test
   * (`beforeAll`): then call `stop()` yourself, e.g. in `afterAll`.
   */
  stopAfterTest?: boolean;
}

/** A running lab, as a test sees it. */
export interface UsedLab {
  readonly id: string;
  /** The underlying lab (relays for faults at run time, simulators, the timeline). */
  readonly lab: Lab;
  /**
   * Environment for a client of this lab: what makes common clients trust the lab CA (SSL_CERT_FILE,
   * NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE...), plus, for a scenario file, its client's `env` with the
   * variant's overrides, references filled in.
   */
  readonly env: Record<string, string>;
  /** Lab host name → its address (loopback: 127.x.y.z). */
  readonly addresses: Record<string, string>;
  /** The lab root CA: the PEM bundle file and its text. */
  readonly ca: { file: string; pem: string };
  /** The lab's events so far (a copy; bounded by `maxEvents`). */
  readonly events: LabEvent[];
  /** A scenario reference without `${}`: `ref('hub.connectionString')`, `ref('proxy.hostport')`. */
  ref(reference: string): string;
  /** Resolves when an event matching `want` arrives (or has arrived); rejects after `timeoutMs`. */
  waitFor(want: SeenQuery, timeoutMs?: number): Promise<LabEvent>;
  /** Stops the lab and removes its files. Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** An event a test looks for: its source, type and fields of its data (equal, or asymmetric matchers). */
export type SeenQuery = EventQuery;

/**
 * Starts the lab of a scenario (or lab) file for one test, with the variant's options and faults, and
 * stops it when the test finishes.
 */
export async function useLab(file: string, opts: UseLabOptions = {}): Promise<UsedLab> {
  const stopAfterTest = opts.stopAfterTest ?? true;
  const running = await startUpLab(file, {
    ...(opts.variant !== undefined ? { variant: opts.variant } : {}),
    ...(opts.maxEvents !== undefined ? { maxEvents: opts.maxEvents } : {}),
  });
  const stop = () => running.stop();
  try {
    if (stopAfterTest) {
      try {
        onTestFinished(stop);
      } catch {
        throw new FieldlabError('E_BAD_FLAG', 'useLab was called outside a test', {
          hint: 'call it inside it()/test(), or pass { stopAfterTest: false } and call stop() in afterAll',
        });
      }
    }
    const env = { ...running.trustEnv(), ...(await clientEnv(running, file, opts.variant)) };
    const pem = await readFile(running.pki.trust.bundlePath, 'utf8');
    return {
      id: running.id,
      lab: running,
      env,
      addresses: Object.fromEntries(running.hosts),
      ca: { file: running.pki.trust.bundlePath, pem },
      get events() {
        return running.events;
      },
      ref: (reference) => running.resolveRef(reference, 'client'),
      waitFor: (want, timeoutMs = 10_000) => waitForEvent(running, want, timeoutMs),
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A scenario file's client env with the variant's overrides; nothing for a lab-only file. */
async function clientEnv(
  lab: Lab,
  file: string,
  variant: string | undefined,
): Promise<Record<string, string>> {
  let loaded: Awaited<ReturnType<typeof loadScenario>>;
  try {
    loaded = await loadScenario(file);
  } catch {
    return {}; // a lab-only file (no client): startUpLab already validated it
  }
  const s = loaded.scenario;
  if (s.client?.type !== 'command') return {};
  const v = s.variants.find((x) => x.name === variant);
  return lab.interpolate({ ...s.client.env, ...v?.client?.env }, 'client');
}

function waitForEvent(lab: Lab, want: SeenQuery, timeoutMs: number): Promise<LabEvent> {
  const seen = lab.events.find((e) => eventMatches(e, want, Object.is));
  if (seen) return Promise.resolve(seen);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${describeQuery(want)} within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = lab.onEvent((e) => {
      if (!eventMatches(e, want, Object.is)) return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

function describeQuery(want: SeenQuery): string {
  return `${want.source} ${want.type}${want.match ? ` with ${JSON.stringify(want.match)}` : ''}`;
}

/** The variant results of a run (or the one given), without skipped ones. */
function variantsOf(received: unknown): VariantResult[] | undefined {
  if (!received || typeof received !== 'object') return undefined;
  if ('results' in received && Array.isArray(received.results)) {
    return (received as RunResult).results.filter((r) => r.status !== 'skipped');
  }
  if ('variant' in received && 'observed' in received) return [received as VariantResult];
  return undefined;
}

function observedText(r: VariantResult): string {
  if (r.error) return `${r.scenario}/${r.variant}: errored (${r.error.code}: ${r.error.message})`;
  if (!r.observed) return `${r.scenario}/${r.variant}: nothing observed (${r.status})`;
  const o = r.observed;
  return `${r.scenario}/${r.variant}: ${o.result === 'pass' ? 'passed' : `failed with ${o.class}`} (${o.detail})`;
}

function eventsOf(received: unknown): LabEvent[] | undefined {
  if (!received || typeof received !== 'object') return undefined;
  if ('events' in received && Array.isArray(received.events)) return received.events as LabEvent[];
  if ('results' in received && Array.isArray(received.results))
    return (received as RunResult).results.flatMap((r) => r.events);
  return undefined;
}

expect.extend({
  /** Every variant run (a `RunResult` or one `VariantResult`) failed with this class. */
  toFailWith(received: unknown, cls: FailureClass) {
    if (!isFailureClass(cls)) {
      throw new FieldlabError('E_BAD_FLAG', `toFailWith: ${String(cls)} is not a failure class`, {
        hint: 'see FAILURE_CLASSES in fieldlab',
      });
    }
    const variants = variantsOf(received);
    if (!variants) {
      return {
        pass: false,
        message: () => 'toFailWith expects the result of runScenario (or one of its results)',
      };
    }
    const pass =
      variants.length > 0 && variants.every((r) => r.observed?.result === 'fail' && r.observed.class === cls);
    const seen =
      variants.length === 0 ? 'no variant ran (all skipped)' : variants.map(observedText).join('\n');
    return {
      pass,
      message: () =>
        pass
          ? `expected the run not to fail with ${cls}; it did:\n${seen}`
          : `expected ${cls}, observed:\n${seen}`,
      actual: variants.map((r) => r.observed?.class ?? r.observed?.result ?? r.status),
      expected: variants.map(() => cls),
    };
  },

  /** The lab (a `useLab` fixture, a `Lab`, a run or a variant result) recorded a matching event. */
  toHaveSeen(received: unknown, want: SeenQuery) {
    const events = eventsOf(received);
    if (!events) {
      return {
        pass: false,
        message: () => 'toHaveSeen expects a lab (useLab), a run (runScenario) or a variant result',
      };
    }
    const pass = events.some((e) => eventMatches(e, want, (a, b) => this.equals(a, b)));
    const same = events.filter((e) => e.source === want.source && e.type === want.type);
    const sources = [...new Set(events.map((e) => `${e.source} ${e.type}`))].slice(0, 40);
    return {
      pass,
      message: () =>
        pass
          ? `expected the lab never to see ${describeQuery(want)}; it did`
          : same.length > 0
            ? `expected the lab to see ${describeQuery(want)}; its ${want.source} ${want.type} events had:\n${same
                .slice(0, 10)
                .map((e) => JSON.stringify(e.data))
                .join('\n')}`
            : `expected the lab to see ${describeQuery(want)}; it saw ${events.length} events: ${sources.join(', ')}`,
    };
  },
});

interface FieldlabMatchers<R = unknown> {
  /** The run (or variant result) failed with this failure class, in every variant that ran. */
  toFailWith(cls: FailureClass): R;
  /** The lab recorded an event from `source` of `type` whose data has the `match` fields. */
  toHaveSeen(want: SeenQuery): R;
}

declare module 'vitest' {
  // biome-ignore lint/suspicious/noExplicitAny: vitest's own declaration uses `T = any`
  interface Matchers<T = any> extends FieldlabMatchers<T> {}
}
