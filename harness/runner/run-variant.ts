import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { FieldlabError } from '../../simulators/common/errors.js';
import { type LabEvent, preciseNow } from '../../simulators/common/events.js';
import { type Capability, checkCapability, isRequired } from '../capabilities.js';
import { runCommand } from '../clients/command.js';
import { runInContainer } from '../clients/container-command.js';
import { applyFault } from '../faults/dns.js';
import { startContainerLab } from '../lab/container-lab.js';
import { type Lab, type LabDefinition, type NetnsPlacement, startLab } from '../lab/lab.js';
import { buildNetwork } from '../lab/netns-network.js';
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
  patchedHosts,
  type Scenario,
  type Variant,
} from '../scenario/model.js';
import { forEachString, referencesIn } from '../scenario/semantics.js';
import { classifyCommand, isCurlClient } from './classify-command.js';
import { checkExpectation } from './expectation.js';
import { explainRoutes, firewallEvents } from './netns-explain.js';
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
 * Capabilities a variant needs beyond what the scenario declares: the client program, the namespace (a
 * private one on loopback; on netns the network's own tools).
 */
export function neededCapabilities(s: Scenario, v: Variant, backend: Backend = 'loopback'): Capability[] {
  const caps = new Set<Capability>(s.requires as Capability[]);
  if (loadOf(s, v)?.driver === 'k6') caps.add('k6');
  if (s.client?.type === 'command') {
    const argv0 = v.client?.argv?.[0] ?? s.client.argv[0];
    if (argv0 && !argv0.includes('${')) caps.add(`cmd:${basename(argv0)}`);
    if (s.client.resolve === 'lab' && backend === 'loopback') caps.add('userns');
    // In a container the program comes from the image, not this machine.
    if (backend === 'container') caps.delete(`cmd:${basename(argv0 ?? '')}`);
  }
  if (backend === 'container') caps.add('docker');
  if (backend === 'netns') {
    caps.add('netns');
    const hosts = s.lab.network ? patchedHosts(s.lab.network, v.network) : [];
    if (hosts.some((h) => h.wireguard)) {
      caps.add('cmd:wireguard-go');
      caps.add('cmd:wg');
    }
    if (hosts.some((h) => h.bandwidth?.length)) caps.add('cmd:tc');
  }
  return [...caps];
}

/** The simulator containers' last log lines, for the report (container backend only). */
function containerLogs(lab: Lab): { logs?: Record<string, string[]> } {
  const logs: Record<string, string[]> = {};
  for (const [name, s] of lab.simulators) if (s.logs && s.logs.length > 0) logs[name] = s.logs.slice(-50);
  return Object.keys(logs).length > 0 ? { logs } : {};
}

/** The report's note that the lab timeline overflowed (only when it did). */
function droppedEvents(lab: Lab, count: number): Pick<VariantResult, 'droppedEvents'> {
  return count > 0 ? { droppedEvents: { count, maxEvents: lab.timeline.maxEvents } } : {};
}

/** Simulators the client is pointed at (its `${sim...}` references), for the netns explanation. */
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

/** The lab for one variant: the scenario's, with the variant's option overrides merged in. */
function labFor(s: Scenario, v: Variant, netns?: NetnsPlacement, maxEvents?: number): LabDefinition {
  return {
    name: s.name,
    ...(netns ? { netns } : {}),
    timeline: { keep: verdictEvents(v), ...(maxEvents !== undefined ? { maxEvents } : {}) },
    hosts: s.lab.hosts,
    simulators: s.lab.simulators.map((sim) => ({
      ...sim,
      options: { ...sim.options, ...(v.simulators[sim.name] ?? {}) },
    })),
  };
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

/** `p`, or a rejection with the signal's reason as soon as it aborts. */
function orAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function runClient(
  lab: Lab,
  client: ClientDecl,
  timeoutMs: number,
  netns?: string,
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
  const inContainer = lab.containerPaths;
  const result = inContainer
    ? // Its container goes with the lab's (stop removes them), which ends the docker CLI.
      await orAbort(runInContainer({ ...io, lab: { ...inContainer, hostDir: lab.dir } }), signal)
    : await runCommand({
        ...io,
        // A process: ended (SIGTERM, then SIGKILL) and awaited, so none outlives the lab.
        ...(signal ? { signal } : {}),
        ...(netns
          ? { netns }
          : client.resolve === 'lab'
            ? { namespace: { hostsFile: lab.hostsFile, resolvConf: lab.resolvConf } }
            : {}),
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
  const network = opts.backend === 'netns' ? s.lab.network : undefined;
  const load = loadOf(s, v);
  try {
    // A bad load (unknown workload, a threshold k6 could not parse) fails before a lab starts.
    if (load) checkLoad(load);
    // The lab stops the network with itself (startLab tears it down if it fails to start).
    const dnsHost = s.lab.simulators.find((x) => x.type === 'geo-dns')?.host;
    const placement = network ? await buildNetwork(network, v.network, dnsHost) : undefined;
    lab =
      opts.backend === 'container'
        ? await startContainerLab(labFor(s, v, undefined, opts.maxEvents), {
            image: opts.image ?? process.env.FIELDLAB_IMAGE ?? 'fieldlab:local',
          })
        : await startLab(labFor(s, v, placement, opts.maxEvents));
    const t0 = preciseNow();
    lab.timeline.openWindow(t0);
    for (const f of v.faults) {
      const { target, backends, ...spec } = f;
      if (backends && !backends.includes(opts.backend)) continue;
      applyFault(lab, target, spec);
    }
    await lab.faultsApplied();
    const client = clientFor(s, v);
    const timeoutMs = client?.timeout ?? s.timeout;
    const clientHost = clientHostOf(s);
    // Phases count from here: the client's own timers start as it starts, the lab's events are epoch.
    const clientStart = preciseNow();
    opts.signal?.throwIfAborted();
    const ran = client
      ? await runClient(
          lab,
          client,
          timeoutMs,
          placement ? placement.network.ns(clientHost) : undefined,
          opts.signal,
        )
      : undefined;
    opts.signal?.throwIfAborted();
    // The load runs after the client, in the same lab, while the faults apply; thresholds judge it.
    const loadResult =
      load && (!ran || ran.verdict.ok) ? await orAbort(runLoad(lab, load, opts), opts.signal) : undefined;
    const outcome: ClientOutcome = ran ?? {
      verdict: { ok: true },
      phases: [],
      durationMs: loadResult?.durationMs ?? 0,
    };
    if (loadResult && outcome.verdict.ok) outcome.verdict = loadVerdict(loadResult);
    opts.signal?.throwIfAborted();
    // Bounded: a connection a toxic holds open is not waited for past a second.
    await lab.settle(t0, 1_000);
    const events = lab.eventsSince(t0);
    if (network) events.push(...(await firewallEvents(lab, preciseNow())));
    const refined = explain(outcome.verdict, events);
    const verdict = refined.verdict;
    const explanation = [...refined.explanation];
    if (!verdict.ok) {
      explanation.push(`${FAILURE_CLASSES[verdict.class].summary}: ${verdict.detail}`);
      if (network) {
        const refs = client ? referencedSimulators(client) : [];
        explanation.push(...(await explainRoutes(lab, clientHost, refs, events)));
      }
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
      ...droppedEvents(lab, lab.timeline.droppedInWindow),
      ...containerLogs(lab),
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
