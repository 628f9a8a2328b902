import { readFile } from 'node:fs/promises';
import { FieldlabError } from '../../simulators/common/errors.js';
import { type LabEvent, preciseNow } from '../../simulators/common/events.js';
import { orAbort } from '../backends/abort.js';
import { type BackendNetwork, backendFor, startLabOn } from '../backends/index.js';
import { type Capability, checkCapability, isRequired } from '../capabilities.js';
import type { Lab } from '../lab/lab.js';
import { applyVariantFaults, labFor } from '../lab/variant-lab.js';
import { type LoadResult, loadPassed } from '../load/result.js';
import { checkLoad, runScenarioLoad } from '../load/scenario-load.js';
import { FAILURE_CLASSES, type Verdict } from '../probe/classes.js';
import { curlTimingArgs } from '../probe/curl.js';
import { EVIDENCE_RULES, explain } from '../probe/evidence.js';
import { probeHttps } from '../probe/https-probe.js';
import { labPhases } from '../probe/lab-phases.js';
import type { Phase } from '../probe/phases.js';
import type { LoadedScenario } from '../scenario/load.js';
import {
  type Backend,
  type ClientDecl,
  clientHostOf,
  type LoadDecl,
  loadOf,
  type Scenario,
  type Variant,
} from '../scenario/model.js';
import { forEachString, referencesIn } from '../scenario/semantics.js';
import { classifyCommand, isCurlClient } from './classify-command.js';
import { checkExpectation } from './expectation.js';
import type { Expectation, VariantResult } from './result.js';

export interface RunOptions {
  backend: Backend;
  /** Container backend: the fieldlab image (default $FIELDLAB_IMAGE, else fieldlab:local). */
  image?: string;
  /** The lab timeline's bound (default DEFAULT_MAX_EVENTS in harness/lab/timeline.ts). */
  maxEvents?: number;
  /** Cuts the variant short (Ctrl-C): the client is ended, the lab stopped, the result is an error. */
  signal?: AbortSignal;
  /** A running load's figures, about every second (live progress). */
  onLoad?: (status: { vus: number; rate: number; unit: string }) => void;
}

interface ClientOutcome {
  verdict: Verdict;
  phases: Phase[];
  durationMs: number;
  /** A program's own measure of its run (curl's time_total), when it gives one. */
  ownTotalMs?: number;
  client?: VariantResult['client'];
}

/**
 * Capabilities a variant needs beyond what the scenario declares, on a backend: the client program, the
 * namespace (a private one on loopback; on netns the network's own tools), Docker.
 */
export function neededCapabilities(s: Scenario, v: Variant, backend: Backend = 'loopback'): Capability[] {
  return backendFor(backend).capabilities(s, v);
}

/** The last log lines of simulators that run elsewhere (containers), for the report. */
function containerLogs(lab: Lab): { logs?: Record<string, string[]> } {
  const logs: Record<string, string[]> = {};
  for (const [name, s] of lab.simulators) if (s.logs && s.logs.length > 0) logs[name] = s.logs.slice(-50);
  return Object.keys(logs).length > 0 ? { logs } : {};
}

/** The report's note that the lab timeline overflowed (only when it did). */
function droppedEvents(lab: Lab, count: number): Pick<VariantResult, 'droppedEvents'> {
  return count > 0 ? { droppedEvents: { count, maxEvents: lab.timeline.maxEvents } } : {};
}

/** Simulators the client is pointed at (its `${sim...}` references), for the backend's explanation. */
function referencedSimulators(client: ClientDecl): string[] {
  const names = new Set<string>();
  forEachString(client, (t) => {
    for (const r of referencesIn(t)) names.add(r.split('.')[0] ?? '');
  });
  names.delete('lab');
  return [...names];
}

function toExpectation(v: Variant): Expectation {
  const e = v.expect;
  return {
    result: e.result,
    ...('class' in e && e.class ? { class: e.class } : {}),
    ...('within' in e && e.within !== undefined ? { withinMs: e.within } : {}),
    ...('atLeast' in e && e.atLeast !== undefined ? { atLeastMs: e.atLeast } : {}),
  };
}

/** Event types the evidence rules read: what explains a failure (denials, TLS alerts, toxics, DNS answers). */
const EVIDENCE_TYPES: ReadonlySet<string> = new Set(EVIDENCE_RULES.map((r) => r.event));

/**
 * The events a variant's verdict reads, kept on the lab timeline over routine ones when it fills up: the
 * evidence rules' types and the events its `labSaw`/`labNeverSaw` name.
 */
export function verdictEvents(v: Variant): (e: LabEvent) => boolean {
  const named = new Set([...v.expect.labSaw, ...v.expect.labNeverSaw].map((w) => `${w.source}\0${w.type}`));
  return (e) => EVIDENCE_TYPES.has(e.type) || named.has(`${e.source}\0${e.type}`);
}

/** The client with the variant's overrides applied (argv replaced, env merged); none for a load-only scenario. */
function clientFor(s: Scenario, v: Variant): ClientDecl | undefined {
  const o = v.client ?? {};
  const c = s.client;
  if (!c) return undefined;
  if (c.type === 'command') {
    return {
      ...c,
      argv: o.argv ?? c.argv,
      env: { ...c.env, ...o.env },
      timeout: o.timeout ?? c.timeout,
      ...(o.resolver !== undefined || c.resolver !== undefined ? { resolver: o.resolver ?? c.resolver } : {}),
    };
  }
  return {
    ...c,
    url: o.url ?? c.url,
    trust: o.trust ?? c.trust,
    timeout: o.timeout ?? c.timeout,
    ...(o.proxy !== undefined || c.proxy !== undefined ? { proxy: o.proxy ?? c.proxy } : {}),
  };
}

/** Most of a load's notes a report keeps (the last lines). */
const LOAD_OUTPUT_CHARS = 20_000;

/** Runs the variant's load in its lab: references resolved for the client's view, toxics in force. */
async function runLoad(lab: Lab, load: LoadDecl, opts: RunOptions): Promise<LoadResult> {
  let output = '';
  const result = await runScenarioLoad(load, {
    interpolate: (value) => lab.interpolate(value, 'client'),
    ca: [lab.pki.root.certPem],
    relay: (target) => lab.relay(target),
    // Progress prints `<rate><unit>`: `120/s`, `12.3 MB/s`.
    ...(opts.onLoad ? { onStatus: (st) => opts.onLoad?.({ ...st, unit: ` ${st.unit}` }) } : {}),
    write: (text) => {
      output = (output + text).slice(-LOAD_OUTPUT_CHARS);
    },
  });
  return output ? { ...result, output } : result;
}

/** The verdict of a load: its thresholds, as k6 words a crossed one. */
function loadVerdict(r: LoadResult): Verdict {
  if (loadPassed(r)) return { ok: true, detail: `load: ${r.thresholds.length} thresholds held` };
  const crossed = r.thresholds.filter((t) => !t.ok);
  const detail =
    crossed.length > 0
      ? crossed
          .map((t) => `${t.metric} '${t.expression}' (${t.aggregation}=${Number(t.value.toFixed(3))})`)
          .join(', ')
      : `k6 exited ${r.exitCode}`;
  return { ok: false, class: 'load.threshold', detail: `thresholds crossed: ${detail}` };
}

async function runClient(
  lab: Lab,
  network: BackendNetwork,
  client: ClientDecl,
  clientHost: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<ClientOutcome> {
  if (client.type === 'probe') {
    const ca =
      client.trust === 'lab'
        ? [lab.pki.root.certPem]
        : client.trust === 'system'
          ? undefined
          : await Promise.all(client.trust.map((f) => readFile(lab.interpolate(f), 'utf8')));
    // In-process: its sockets close as the lab stops, so an abort need not wait for its timeout.
    const r = await orAbort(
      probeHttps({
        url: lab.interpolate(client.url),
        ...(client.proxy ? { proxy: lab.interpolate(client.proxy) } : {}),
        ...(ca ? { ca } : {}),
        lookup: lab.lookup,
        timeoutMs,
      }),
      signal,
    );
    return { verdict: r.verdict, phases: r.phases, durationMs: r.durationMs };
  }

  let argv = lab.interpolate(client.argv, 'client');
  if (isCurlClient(client, argv)) argv = [...argv, ...curlTimingArgs()];
  let spawned: number | undefined;
  // What the program gets wherever it runs: its environment, directory, input, time limit.
  const io = {
    argv,
    env: lab.interpolate(client.env, 'client'),
    ...(client.cwd ? { cwd: lab.interpolate(client.cwd, 'client') } : {}),
    ...(client.stdin !== undefined ? { stdin: lab.interpolate(client.stdin, 'client') } : {}),
    timeoutMs,
    onSpawn: (pid: number) => {
      spawned = pid;
      lab.trackProcess(pid, argv.join(' '));
    },
  };
  // Where it runs (here, in its host's namespace, in a container) is the backend's.
  const result = await network.runCommand(lab, {
    ...io,
    host: clientHost,
    resolve: client.resolve,
    ...(client.resolver !== undefined ? { resolver: client.resolver } : {}),
    ...(signal ? { signal } : {}),
  });
  // It has exited: `fieldlab clean` must not look for it any more.
  if (spawned !== undefined) lab.untrackProcess(spawned);
  const { verdict, phases, ownTotalMs } = classifyCommand(client, argv, result, timeoutMs);
  return {
    verdict,
    phases,
    durationMs: result.durationMs,
    ...(ownTotalMs !== undefined ? { ownTotalMs } : {}),
    client: {
      argv,
      exitCode: result.exitCode,
      signal: result.signal,
      stdout: result.stdout,
      stderr: result.stderr,
    },
  };
}

/**
 * The client's phases, marked as the client's and counted from when the harness started it, as lab phases
 * are. A program's own timers (curl's) count from its own start, which comes after its spawn (the private
 * namespace, exec, a container's exec): the time its run took beyond its own total (curl's time_total,
 * else its last timer) is taken as that start-up, and its phases move by it. An in-process probe starts
 * with the run: nothing to move.
 */
export function clientPhases(
  outcome: Pick<ClientOutcome, 'phases' | 'durationMs' | 'client' | 'ownTotalMs'>,
): Phase[] {
  let last = outcome.ownTotalMs ?? 0;
  if (outcome.ownTotalMs === undefined)
    for (const p of outcome.phases) last = Math.max(last, p.start, p.end ?? p.start);
  const shift = outcome.client ? Math.max(0, outcome.durationMs - last) : 0;
  return outcome.phases.map((p) => ({
    ...p,
    start: p.start + shift,
    ...(p.end !== undefined ? { end: p.end + shift } : {}),
    source: 'client',
  }));
}

/** Runs one variant of a scenario in a fresh lab and judges it. Never throws. */
export async function runVariant(
  loaded: LoadedScenario,
  v: Variant,
  opts: RunOptions,
): Promise<VariantResult> {
  const s = loaded.scenario;
  const startedAt = new Date().toISOString();
  const base: VariantResult = {
    scenario: s.name,
    variant: v.name,
    title: s.title,
    file: loaded.file,
    backend: opts.backend,
    status: 'errored',
    expected: toExpectation(v),
    observed: null,
    explanation: [],
    phases: [],
    durationMs: 0,
    startedAt,
    events: [],
  };

  const backends = v.backends ?? s.backends;
  if (!backends.includes(opts.backend)) {
    return {
      ...base,
      status: 'skipped',
      skipReason: `runs on the ${backends.join('/')} backend, not ${opts.backend}`,
    };
  }
  for (const cap of neededCapabilities(s, v, opts.backend)) {
    const c = checkCapability(cap);
    if (c.ok) continue;
    if (isRequired(cap)) {
      return {
        ...base,
        error: {
          code: 'E_CAPABILITY_REQUIRED',
          message: `needs ${cap}: ${c.reason}`,
          hint: 'FIELDLAB_REQUIRE makes a missing capability fail',
        },
      };
    }
    return { ...base, status: 'skipped', skipReason: `needs ${cap}: ${c.reason}` };
  }

  let lab: Lab | undefined;
  const load = loadOf(s, v);
  try {
    // A bad load (unknown workload, a threshold k6 could not parse) fails before a lab starts.
    if (load) checkLoad(load);
    // The lab stops the network with itself (and releases it if it fails to start).
    const timeline = {
      keep: verdictEvents(v),
      ...(opts.maxEvents !== undefined ? { maxEvents: opts.maxEvents } : {}),
    };
    const started = await startLabOn(backendFor(opts.backend), labFor(s, v, timeline), {
      scenario: s,
      variant: v,
      ...(opts.image !== undefined ? { image: opts.image } : {}),
    });
    const network = started.network;
    const running = started.lab;
    lab = running;
    const t0 = preciseNow();
    running.timeline.openWindow(t0);
    applyVariantFaults(v.faults, opts.backend, (target, spec) => network.applyFault(running, target, spec));
    await running.faultsApplied();
    const client = clientFor(s, v);
    const timeoutMs = client?.timeout ?? s.timeout;
    const clientHost = clientHostOf(s);
    // Phases count from here: the client's own timers start as it starts, the lab's events are epoch.
    const clientStart = preciseNow();
    opts.signal?.throwIfAborted();
    const ran = client
      ? await runClient(running, network, client, clientHost, timeoutMs, opts.signal)
      : undefined;
    opts.signal?.throwIfAborted();
    // The load runs after the client, in the same lab, while the faults apply; thresholds judge it.
    const loadResult =
      load && (!ran || ran.verdict.ok) ? await orAbort(runLoad(running, load, opts), opts.signal) : undefined;
    const outcome: ClientOutcome = ran ?? {
      verdict: { ok: true },
      phases: [],
      durationMs: loadResult?.durationMs ?? 0,
    };
    if (loadResult && outcome.verdict.ok) outcome.verdict = loadVerdict(loadResult);
    opts.signal?.throwIfAborted();
    // Bounded: a connection a toxic holds open is not waited for past a second.
    await running.settle(t0, 1_000);
    const events = running.eventsSince(t0);
    // What only the network saw (netns: the firewall rules that matched).
    events.push(...(await network.observe(running, preciseNow())));
    const refined = explain(outcome.verdict, events);
    const verdict = refined.verdict;
    const explanation = [...refined.explanation];
    if (!verdict.ok) {
      explanation.push(`${FAILURE_CLASSES[verdict.class].summary}: ${verdict.detail}`);
      const referenced = client ? referencedSimulators(client) : [];
      explanation.push(...(await network.explain(running, { clientHost, referenced, events })));
    }
    const problems = checkExpectation(
      v.expect,
      verdict,
      outcome.durationMs,
      events,
      outcome.client?.stdout ?? '',
      explanation,
    );
    explanation.push(...problems);
    return {
      ...base,
      status: problems.length === 0 ? 'passed' : 'failed',
      observed: verdict.ok
        ? { result: 'pass', detail: verdict.detail ?? 'ok' }
        : { result: 'fail', class: verdict.class, detail: verdict.detail },
      explanation,
      phases: [...clientPhases(outcome), ...labPhases(events, clientStart)],
      durationMs: outcome.durationMs,
      ...(outcome.client ? { client: outcome.client } : {}),
      ...(loadResult ? { load: loadResult } : {}),
      events,
      ...droppedEvents(running, running.timeline.droppedInWindow),
      ...containerLogs(running),
    };
  } catch (err) {
    const e =
      err instanceof FieldlabError
        ? { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) }
        : {
            code: 'E_INTERNAL',
            message: err instanceof Error ? (err.stack ?? err.message) : String(err),
            hint: 'this is a fieldlab bug: please report it with this message',
          };
    return {
      ...base,
      error: e,
      events: lab?.events ?? [],
      ...(lab ? droppedEvents(lab, lab.timeline.dropped) : {}),
    };
  } finally {
    await lab?.stop();
  }
}
