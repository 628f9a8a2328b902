import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FieldlabError } from '../../../simulators/common/errors.js';
import { type LabEvent, SimulatorEvents } from '../../../simulators/common/events.js';
import type { Endpoint } from '../../../simulators/common/handle.js';
import type { Authority } from '../../../simulators/pki/index.js';
import type { LabSimulatorHandle } from '../../adapters/index.js';
import { endpointTarget, type LabSimulator } from '../../lab/lab.js';
import { type RemoteDnsFaults, remoteDnsFaults } from './dns-faults.js';
import { type ControlChannel, controlReplySchema } from './protocol.js';
import { type FaultTracker, type RemoteRelay, remoteRelay } from './relay.js';
import { type WorkerReady, type WorkerSpec, workerReadySchema } from './spec.js';
import { StdioControlChannel } from './stdio-channel.js';

/** What the worker needs of a netns lab (`NetnsLab` has it): a process started inside a host. */
export interface NamespaceSpawner {
  spawnIn(host: string, argv: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** The host's address on a segment, default its first. */
  address(host: string, segment?: string): string;
}

export interface StartWorkerOptions {
  /** The network (a `NetnsLab`) and the host whose namespace the simulator runs in. */
  network: NamespaceSpawner;
  host: string;
  /** The address it listens on there; default the host's first (`network.address(host)`). */
  address?: string;
  /** The lab's name, and the simulator with its options filled in as the namespaces see the lab. */
  lab: string;
  simulator: LabSimulator;
  /** More simulators of the same host run in this process after it (peers: a DPS with its hub). */
  peers?: readonly LabSimulator[];
  /** Every lab name with its address as the namespaces resolve it, for the simulators' labReady hooks. */
  names?: ReadonlyMap<string, string>;
  /** The simulator's own directory (made 0700); its spec, which holds the lab CA's keys, goes in it. */
  dir: string;
  authority: Authority;
  /** The lab (`trackFault`): the relays' requests are awaited by its `faultsApplied()`. */
  faults: FaultTracker;
  /** Every event of the worker (simulator, relays, its PKI), times moved onto this process's clock. */
  onEvent(e: LabEvent): void;
  /** The worker ended on its own (not through `stop()`): its exit and last lines, for the report. */
  onExit?(info: { code: number | null; signal: string | null; logs: string[] }): void;
  /** The fieldlab CLI to run; default this node with fieldlab's built `dist/harness/cli/bin.js`. */
  fieldlab?: readonly string[];
  /** Bound on the ready line; default 30 s. */
  readyTimeoutMs?: number;
  /** After SIGTERM, how long `stop()` waits before SIGKILL; default 5 s. */
  stopTimeoutMs?: number;
}

/** A simulator running as its own process: what a lab keeps of it. */
export interface WorkerSimulator {
  name: string;
  pid: number;
  /** Its public endpoints: the namespace address and each relay's (or direct endpoint's) port. */
  endpoints: Endpoint[];
  vars: Record<string, string>;
  /** The relay in front of each relayed endpoint, by endpoint name. */
  relays: Map<string, RemoteRelay>;
  /** `stop()`: SIGTERM, then SIGKILL after a bound; resolves once the process is gone. */
  handle: LabSimulatorHandle;
  channel: ControlChannel;
  /** Added to the worker's event times (0 unless its clock differs by more than a few ms). */
  clockOffsetMs: number;
  /** Its last stderr lines (and stdout lines that are not JSON), for the report. */
  logs: string[];
  /** The `peers` it runs too, in order: the same process (pid, channel, logs, stop). */
  peers: Omit<WorkerSimulator, 'peers'>[];
}

const MAX_LOG_LINES = 200;
/** Simulator types that take DNS faults (harness/faults/dns.ts): through the worker's control channel. */
const DNS_SIMULATOR_TYPES: readonly string[] = ['geo-dns', 'resolver'];
/** Clocks closer than this are the same clock (namespaces share the kernel's): no offset. */
const CLOCK_SKEW_MS = 5;

/** fieldlab's own directory, from the source tree (harness/backends/remote) or from dist/. */
function packageRoot(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  return here.includes(`${sep}dist${sep}`) ? resolve(here, '../../../..') : resolve(here, '../../..');
}

function defaultFieldlab(): string[] {
  const bin = join(packageRoot(), 'dist', 'harness', 'cli', 'bin.js');
  if (!existsSync(bin)) {
    throw new FieldlabError('E_WORKER_START', `${bin} is missing: a simulator process runs the built CLI`, {
      hint: 'run `npm run build`',
    });
  }
  return [process.execPath, bin];
}

/**
 * Starts one simulator as `fieldlab serve-lab <spec>` inside a host's network namespace (through
 * `spawnIn`: the process dies with this one, and `fieldlab clean` finds it in the lab's record), bound on
 * the host's own address there. Waits (bounded) for its ready line, takes the clock offset from a clock
 * exchange right after it, streams its events into `onEvent`, and controls its relays over its
 * stdin/stdout. E_WORKER_START, with its last stderr lines, when it does not come up.
 */
export async function startWorkerProcess(opts: StartWorkerOptions): Promise<WorkerSimulator> {
  const { simulator: decl } = opts;
  const address = opts.address ?? opts.network.address(opts.host);
  const fieldlab = opts.fieldlab ?? defaultFieldlab();
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const specFile = join(opts.dir, 'serve-lab.spec.json');
  const spec: WorkerSpec = {
    lab: opts.lab,
    simulator: decl,
    dir: opts.dir,
    authority: opts.authority,
    bind: address,
    bindsPublic: true,
    stdioControl: true,
    ...(opts.peers?.length ? { peers: [...opts.peers] } : {}),
    ...(opts.names ? { names: Object.fromEntries(opts.names) } : {}),
  };
  writeFileSync(specFile, JSON.stringify(spec), { mode: 0o600 });

  const child = opts.network.spawnIn(opts.host, [...fieldlab, 'serve-lab', specFile], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const what = `${decl.name} (${decl.type}) in ${opts.host}`;
  const { stdout, stderr } = child;
  if (!stdout || !stderr) {
    child.kill('SIGKILL');
    throw new FieldlabError('E_WORKER_START', `${what}: spawned without pipes`, {
      hint: 'spawnIn must keep the default stdio (pipes)',
    });
  }
  const logs: string[] = [];
  const log = (line: string) => {
    logs.push(line);
    if (logs.length > MAX_LOG_LINES) logs.shift();
  };
  const channel = new StdioControlChannel((line) => {
    if (!child.stdin?.writable) throw new Error('its stdin is closed');
    child.stdin.write(line);
  }, what);
  // A write after the worker died: the exit handler reports it, not an unhandled 'error'.
  child.stdin?.on('error', () => {});

  let ready: WorkerReady | undefined;
  let readyAt = 0;
  let offset: number | undefined;
  const early: LabEvent[] = [];
  const relays = new Map<string, RemoteRelay>();
  // Each simulator's own events, by name (the worker may run peers too).
  const simEvents = new Map(
    [decl, ...(opts.peers ?? [])].map((d) => [d.name, new SimulatorEvents<Record<string, unknown>>(d.name)]),
  );
  // The DNS simulators' faults (a fault that expires in the worker is gone from the mirror too).
  const dnsFaults: RemoteDnsFaults[] = [];
  const deliver = (raw: LabEvent) => {
    const e = offset ? { ...raw, time: raw.time + offset } : raw;
    for (const r of relays.values()) r.ingest(e);
    for (const d of dnsFaults) d.ingest(e);
    simEvents.get(e.source)?.emit('event', e);
    opts.onEvent(e);
  };

  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  createInterface({ input: stdout }).on('line', (line) => {
    const obj = line.startsWith('{') ? parseJson(line) : undefined;
    if (obj === undefined) return log(line);
    if ('event' in obj) {
      const e = asLabEvent(obj.event);
      if (!e) return log(line);
      if (offset === undefined) {
        if (early.length < 10_000) early.push(e);
      } else deliver(e);
      return;
    }
    if ('reply' in obj) {
      const r = controlReplySchema.safeParse(obj);
      if (r.success && channel.onReply(r.data)) return;
      return log(line);
    }
    if (obj.ready === true && !ready) {
      const r = workerReadySchema.safeParse(obj);
      if (r.success) {
        ready = r.data;
        readyAt = Date.now();
        wake();
        return;
      }
    }
    log(line);
  });
  createInterface({ input: stderr }).on('line', log);

  let exited: { code: number | null; signal: string | null } | undefined;
  let stopping = false;
  const exit = new Promise<void>((done) => {
    const ended = (code: number | null, signal: string | null) => {
      if (exited) return;
      exited = { code, signal };
      channel.close(`the simulator process exited (${signal ?? `code ${code}`})`);
      rmSync(specFile, { force: true });
      wake();
      done();
      if (!stopping && ready) opts.onExit?.({ ...exited, logs: [...logs] });
    };
    child.once('exit', ended);
    // It never ran (no `exit` follows): ended all the same.
    child.once('error', (err) => {
      log(`spawn: ${err.message}`);
      if (child.pid === undefined) ended(null, null);
    });
  });

  const stop = async (): Promise<void> => {
    stopping = true;
    if (exited || child.exitCode !== null || child.signalCode !== null) return exit;
    child.kill('SIGTERM');
    const killed = await Promise.race([
      exit.then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(true), opts.stopTimeoutMs ?? 5_000).unref()),
    ]);
    if (killed) {
      child.kill('SIGKILL');
      await exit;
    }
  };

  try {
    const readyTimeout = opts.readyTimeoutMs ?? 30_000;
    await new Promise<void>((done, fail) => {
      const check = () => {
        if (ready) finish();
        else if (exited) {
          finish(`it exited (${exited.signal ?? `code ${exited.code}`}) before its ready line`);
        }
      };
      const finish = (why?: string) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (!why) return done();
        fail(
          new FieldlabError('E_WORKER_START', `${what} did not start: ${why}`, {
            hint: logs.slice(-5).join(' | ') || 'it printed nothing: run `fieldlab serve-lab <spec>` by hand',
          }),
        );
      };
      const timer = setTimeout(() => finish(`no ready line in ${readyTimeout} ms`), readyTimeout);
      waiters.add(check);
      check();
    });
    const got = ready as WorkerReady;

    // One simulator the worker runs, with a remote relay on each endpoint it relays.
    const simulatorOf = (r: WorkerReady['peers'][number]): Omit<WorkerSimulator, 'peers'> => {
      const own = new Map<string, RemoteRelay>();
      for (const [i, ep] of r.endpoints.entries()) {
        if (!r.relayed.includes(ep.name)) continue;
        const target = endpointTarget(r.name, ep.name, i === 0);
        const relay = remoteRelay({
          target,
          endpoint: { host: ep.host, port: ep.port },
          channel,
          faults: opts.faults,
        });
        own.set(ep.name, relay);
        // Relay events are routed to every relay handle; each takes its own target's.
        relays.set(target, relay);
      }
      const endpoints = r.endpoints.map((e) => ({ ...e }));
      // A DNS simulator takes DNS faults over the same channel (faults/dns.ts finds them on its handle).
      const dns = DNS_SIMULATOR_TYPES.includes(r.simulator)
        ? remoteDnsFaults({ target: r.name, channel, faults: opts.faults })
        : undefined;
      if (dns) dnsFaults.push(dns);
      return {
        name: r.name,
        pid: got.pid,
        endpoints,
        vars: r.vars,
        relays: own,
        channel,
        clockOffsetMs: 0,
        logs,
        handle: {
          name: r.name,
          endpoints,
          events: simEvents.get(r.name) ?? new SimulatorEvents<Record<string, unknown>>(r.name),
          // Its own figures stay in its process; the relays' are on the relay handles.
          stats: () => ({ pid: got.pid, exited: exited !== undefined }),
          // The worker's peers stop with it: the first stop ends the process, the others find it gone.
          stop,
          ...(dns
            ? {
                addDnsFault: dns.addDnsFault,
                removeDnsFault: dns.removeDnsFault,
                dnsFaults: dns.dnsFaults,
              }
            : {}),
        },
      };
    };
    const main = simulatorOf(got);
    const peers = got.peers.map(simulatorOf);
    // Events held back until the offset is known reach the relays' handles too.
    offset = await clockOffset(channel, got, readyAt);
    for (const e of early.splice(0)) deliver(e);
    for (const s of [main, ...peers]) s.clockOffsetMs = offset;
    return { ...main, peers };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * How far the worker's clock is behind this one (ms to add to its event times). A clock request right
 * after the ready line, halfway through the round trip (NTP's estimate); the ready line's own time when
 * the worker cannot answer. Namespaces share the kernel's clock: an offset within the round trip's
 * uncertainty or a few ms is none.
 */
async function clockOffset(channel: ControlChannel, ready: WorkerReady, readyAt: number): Promise<number> {
  let estimate: number;
  let uncertainty: number;
  const t0 = Date.now();
  try {
    const reply = await channel.request({ op: 'clock' });
    const t1 = Date.now();
    if (!reply.ok || reply.now === undefined) throw new Error('no clock');
    estimate = (t0 + t1) / 2 - reply.now;
    uncertainty = (t1 - t0) / 2;
  } catch {
    if (ready.now === undefined) return 0;
    estimate = readyAt - ready.now;
    uncertainty = 0;
  }
  return Math.abs(estimate) > Math.max(CLOCK_SKEW_MS, uncertainty) ? Math.round(estimate) : 0;
}

function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** A lab event as the worker prints it (`{time, source, type, data}`), or undefined. */
function asLabEvent(v: unknown): LabEvent | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const e = v as Partial<LabEvent>;
  return typeof e.time === 'number' && typeof e.source === 'string' && typeof e.type === 'string'
    ? { time: e.time, source: e.source, type: e.type, data: e.data }
    : undefined;
}
