import { randomBytes } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { LookupFunction } from 'node:net';
import { join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { LabEvent } from '../../simulators/common/events.js';
import type { Endpoint } from '../../simulators/common/handle.js';
import { parseOptions } from '../../simulators/common/options.js';
import { type Authority, type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { type RelayHandle, startRelay } from '../faults/index.js';
import type { SimulatorDecl } from '../scenario/model.js';
import type { NetnsLab } from '../topology/netns/index.js';
import { adapterFor, adapterTypes, type LabSimulatorHandle, type StartedSimulator } from './adapters.js';
import { type AddressBlock, claimBlock, fixedBlock } from './addresses.js';
import { createLabLookup } from './lookup.js';
import { type NetnsFront, startNetnsFront } from './netns-front.js';
import { type LabRecord, newLabDir, newLabRecord, processStartTicks, writeRecord } from './state.js';
import { Timeline, type TimelineOptions } from './timeline.js';

/**
 * A running lab on the loopback backend:
 *
 *   client ──► relay (host address : public port, toxics) ──► simulator (host address : ephemeral port)
 *
 * Every lab host gets its own 127.A.B.n address; every TCP endpoint of a simulator is fronted by a relay
 * so faults can be added and removed at run time. Everything the lab creates lives in its state
 * directory, recorded for `fieldlab clean`.
 */
/** A simulator in a lab definition: a scenario's declaration, with its defaultable fields optional. */
export type LabSimulator = Omit<SimulatorDecl, 'ports' | 'options'> & {
  ports?: Record<string, number>;
  options?: Record<string, unknown>;
};

export interface LabDefinition {
  name: string;
  hosts?: Array<{ name: string }>;
  simulators: LabSimulator[];
  /** netns backend: the built network, and which namespace host each lab name lives on. */
  netns?: NetnsPlacement;
  /**
   * One simulator per container (the container backend's worker): every host binds this address
   * (`0.0.0.0`) instead of a loopback block, lab files go to `dir` (a volume every container of the lab
   * shares, kept on stop), and certificates come from the lab's CA (`authority`).
   */
  container?: {
    bind: string;
    dir: string;
    authority: Authority;
  };
  /** The event timeline's bound and which events a run must keep (see `Timeline`). */
  timeline?: TimelineOptions;
}

/** How the client of a container lab sees the lab's files: the host's lab directory is mounted here. */
export interface ContainerPaths {
  /** The lab directory inside containers (`/lab`). */
  dir: string;
  /** fieldlab's own directory inside the image (`/app`). */
  root: string;
  /** The lab's Docker network (set once created), the image, and labels for what the lab starts. */
  network?: string;
  image: string;
  labels: Record<string, string>;
  /** `docker run --user` for the lab's containers (the lab directory's owner); absent: the image's user. */
  user?: string;
}

/**
 * Where a lab's names live on the netns backend. Simulators still run in this process on loopback; each
 * TCP endpoint also gets a front bound in its host's namespace, which is what clients (run in another
 * namespace) reach across the kernel's network. The lab stops the network with itself.
 */
export interface NetnsPlacement {
  network: NetnsLab;
  /** The network host a lab name is on, and the address it resolves to there. */
  hostOf(name: string): { host: string; address: string } | undefined;
  /** Every name the namespaces resolve (their hosts files), with its address. */
  names: ReadonlyMap<string, string>;
}

/** Which side of the lab a `${...}` reference is read for: simulators in this process, or the client. */
export type RefView = 'lab' | 'client';

export interface RunningSimulator {
  decl: LabSimulator;
  handle: LabSimulatorHandle;
  /** Endpoints as clients see them: the relay's port, the lab host name in URLs. */
  endpoints: Endpoint[];
  /** Relay per fronted endpoint name. */
  relays: Map<string, RelayHandle>;
  vars: Record<string, string>;
  /** netns backend: endpoints as the client sees them across the lab network (namespace addresses). */
  clientEndpoints?: Endpoint[];
  fronts: NetnsFront[];
  /** Container backend: the container's last log lines (what is not an event), for the report. */
  logs?: string[];
}

/** Where a lab runs besides loopback. */
export interface LabPlacement {
  netns?: NetnsPlacement;
  /** Container backend (host side): lab paths as the containers see them. */
  containerPaths?: ContainerPaths;
  /**
   * This lab is one simulator of a container lab (`serve-lab`): its directory is the shared volume
   * (the host removes it), and names it does not know resolve through the container's resolver.
   */
  containerWorker?: boolean;
}

export class Lab {
  /** Every simulator's and relay's events, bounded (oldest routine events dropped first). */
  readonly timeline: Timeline;
  readonly simulators = new Map<string, RunningSimulator>();
  readonly hosts = new Map<string, string>();
  readonly lookup: LookupFunction;
  private readonly listeners = new Set<(e: LabEvent) => void>();
  /** Where the lab runs besides loopback (see `LabPlacement`). */
  readonly netns?: NetnsPlacement;
  readonly containerPaths?: ContainerPaths;
  readonly containerWorker: boolean;
  /** Faults still being put in place elsewhere (container relays), for `faultsApplied`. */
  private readonly pendingFaults = new Set<Promise<void>>();
  private readonly afterStop: Array<() => Promise<unknown>> = [];

  /** Runs `fn` at the end of `stop()` (e.g. removing a container network once its containers are gone). */
  onStopped(fn: () => Promise<unknown>): void {
    this.afterStop.push(fn);
  }
  private stopping: Promise<void> | undefined;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly dir: string,
    readonly block: AddressBlock,
    readonly pki: PkiHandle,
    private readonly record: LabRecord,
    placement: LabPlacement = {},
    timeline: TimelineOptions = {},
  ) {
    this.timeline = new Timeline(timeline);
    this.netns = placement.netns;
    this.containerPaths = placement.containerPaths;
    this.containerWorker = placement.containerWorker === true;
    // A simulator in a lab container finds the others through the container's resolver (Docker's DNS
    // knows every lab host name on the lab network).
    this.lookup = createLabLookup(
      this.hosts,
      () => this.dnsServer(),
      this.containerWorker ? (dnsLookup as LookupFunction) : undefined,
    );
  }

  get hostsFile(): string {
    return join(this.dir, 'hosts');
  }

  get resolvConf(): string {
    return join(this.dir, 'resolv.conf');
  }

  /** Records an event on the lab timeline (and tells live listeners). */
  addEvent(e: LabEvent): void {
    this.timeline.add(e);
    for (const l of this.listeners) l(e);
  }

  /** The events the timeline holds, in arrival order (a copy). */
  get events(): LabEvent[] {
    return this.timeline.all();
  }

  onEvent(listener: (e: LabEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Resolves once every connection the lab saw since `t` has closed, or after `ms`: what a simulator
   * records as a client hangs up (a TLS alert, the close itself) lands just after the client exits.
   */
  settle(t: number, ms: number): Promise<void> {
    const key = (e: LabEvent) => `${e.source}#${String((e.data as { id?: unknown } | undefined)?.id)}`;
    const open = new Set<string>();
    for (const e of this.eventsSince(t)) {
      if (e.type === 'connection') open.add(key(e));
      else if (e.type === 'closed') open.delete(key(e));
    }
    if (open.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        off();
        resolve();
      };
      const timer = setTimeout(done, ms);
      const off = this.onEvent((e) => {
        if (e.type !== 'closed') return;
        open.delete(key(e));
        if (open.size === 0) done();
      });
    });
  }

  /** A fault being put in place elsewhere (a container relay's control API), for `faultsApplied`. */
  trackFault(applied: Promise<void>): void {
    this.pendingFaults.add(applied);
    void applied.finally(() => this.pendingFaults.delete(applied)).catch(() => undefined);
  }

  /** Resolves once every fault added to this lab's relays is in place; throws the first refusal. */
  async faultsApplied(): Promise<void> {
    await Promise.all([...this.pendingFaults]);
  }

  /** Events since a time (ms epoch), for one variant's window. */
  eventsSince(t: number): LabEvent[] {
    return this.timeline.since(t);
  }

  sim(name: string): RunningSimulator {
    const s = this.simulators.get(name);
    if (!s) throw new FieldlabError('E_NO_SUCH_SIMULATOR', `the lab has no simulator ${name}`);
    return s;
  }

  /** The relay in front of `name` or `name.endpoint`. */
  relay(target: string): RelayHandle {
    const [simName = '', epName] = target.split('.');
    const s = this.sim(simName);
    const ep = epName ?? s.endpoints[0]?.name;
    const r = ep === undefined ? undefined : s.relays.get(ep);
    if (!r) {
      throw new FieldlabError('E_NO_RELAY', `${target} has no relayed TCP endpoint to put a fault on`, {
        hint: `relayed endpoints of ${simName}: ${[...s.relays.keys()].join(', ') || 'none'}`,
      });
    }
    return r;
  }

  /**
   * `address:port` of the lab's DNS server (its first geo-dns simulator), when this process can reach
   * it (on netns it serves inside a namespace, for clients there).
   */
  dnsServer(): string | undefined {
    if (this.netns) return undefined;
    for (const sim of this.simulators.values()) {
      if (sim.decl.type !== 'geo-dns') continue;
      const udp = sim.endpoints.find((e) => e.name === 'dns-udp');
      if (udp) return `${udp.host}:${udp.port}`;
    }
    return undefined;
  }

  /** Environment that makes common clients trust the lab CA. */
  trustEnv(): Record<string, string> {
    const ca = this.pki.trust.bundlePath;
    return {
      SSL_CERT_FILE: ca,
      CURL_CA_BUNDLE: ca,
      NODE_EXTRA_CA_CERTS: ca,
      REQUESTS_CA_BUNDLE: ca,
      GIT_SSL_CAINFO: ca,
    };
  }

  /**
   * Resolves one `${...}` reference. On the netns backend the client's view differs from the lab's:
   * addresses and ports are the namespace ones the client reaches, not the loopback ones simulators use.
   */
  resolveRef(ref: string, view: RefView = 'lab'): string {
    const parts = ref.split('.');
    const [head, ...rest] = parts;
    const client = view === 'client' && this.netns !== undefined;
    if (head === 'lab' && rest[0] === 'host') {
      // `${lab.host.<host name>}`: a lab host's address (host names contain dots).
      const name = rest.slice(1).join('.');
      const addr = client ? this.netns?.names.get(name) : this.hosts.get(name);
      if (addr === undefined) throw refError(ref, `lab hosts: ${[...this.hosts.keys()].join(', ')}`);
      return addr;
    }
    if (head === 'lab') {
      // Lazy: caDir runs `openssl rehash`, which only scenarios that use it should need.
      const v: Record<string, () => string> = {
        ca: () => this.pki.trust.bundlePath,
        caDir: () => this.pki.trust.hashDir,
        hosts: () => this.hostsFile,
        resolv: () => this.resolvConf,
        dir: () => this.dir,
        root: packageRoot,
      };
      const get = rest.length === 1 ? v[rest[0] ?? ''] : undefined;
      if (get === undefined) throw refError(ref, `lab has ${Object.keys(v).join(', ')}`);
      const c = this.containerPaths;
      if (c && rest[0] === 'root') return c.root;
      const value = get();
      return c && value.startsWith(this.dir) ? `${c.dir}${value.slice(this.dir.length)}` : value;
    }
    const s = this.simulators.get(head ?? '');
    if (!s) throw refError(ref, `simulators: ${[...this.simulators.keys()].join(', ')}`);
    const endpoints = (client ? s.clientEndpoints : undefined) ?? s.endpoints;
    let ep = endpoints[0];
    let field = rest[0];
    if (rest.length === 2) {
      ep = endpoints.find((e) => e.name === rest[0]);
      field = rest[1];
      if (!ep) throw refError(ref, `${head} endpoints: ${s.endpoints.map((e) => e.name).join(', ')}`);
    }
    if (field === undefined) throw refError(ref, 'name a field, e.g. url, host, address, port');
    if (rest.length === 1 && Object.hasOwn(s.vars, field)) return s.vars[field] ?? '';
    const fields: Record<string, string | undefined> = {
      host: s.decl.host,
      address: ep?.host,
      port: ep ? String(ep.port) : undefined,
      url: ep?.url,
      hostport: ep ? `${s.decl.host}:${ep.port}` : undefined,
    };
    const v = fields[field];
    if (v === undefined)
      throw refError(ref, `fields: ${[...Object.keys(fields), ...Object.keys(s.vars)].join(', ')}`);
    return v;
  }

  /** Fills `${...}` references in strings, deeply (`view` 'client' for what the client is given). */
  interpolate<T>(value: T, view: RefView = 'lab'): T {
    if (typeof value === 'string') {
      // `$${x}` stands for a literal `${x}` (e.g. an AWS provisioning template's `${SerialNumber}`).
      return value.replace(/\$(\$?)\{([^}]*)\}/g, (_, esc: string, ref: string) =>
        esc ? `\${${ref}}` : this.resolveRef(ref, view),
      ) as T;
    }
    if (Array.isArray(value)) return value.map((v) => this.interpolate(v, view)) as T;
    if (value && typeof value === 'object') {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.interpolate(v, view)])) as T;
    }
    return value;
  }

  /** Records a process the lab (or its client) started, so `fieldlab clean` can end it after a crash. */
  trackProcess(pid: number, what: string): void {
    this.record.resources.push({ kind: 'process', pid, startTicks: processStartTicks(pid), what });
    writeRecord(this.dir, this.record);
  }

  untrackProcess(pid: number): void {
    this.record.resources = this.record.resources.filter((r) => !(r.kind === 'process' && r.pid === pid));
    writeRecord(this.dir, this.record);
  }

  /** Stops everything and removes the lab's files. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      const sims = [...this.simulators.values()].reverse();
      for (const s of sims) {
        await Promise.allSettled(s.fronts.map((f) => f.stop()));
        await Promise.allSettled([...s.relays.values()].map((r) => r.stop()));
        await s.handle.stop().catch(() => undefined);
      }
      await this.pki.stop().catch(() => undefined);
      // After every socket bound in a namespace is closed (an open one keeps the namespace alive).
      await this.netns?.network.teardown();
      this.block.release();
      for (const fn of this.afterStop) await fn().catch(() => undefined);
      if (!this.containerWorker) rmSync(this.dir, { recursive: true, force: true });
    })();
    return this.stopping;
  }
}

/**
 * How a scenario names a simulator endpoint (fault targets, the sources of relay and front events): the
 * main endpoint by the simulator's name, another as `sim.endpoint`.
 */
export function endpointTarget(sim: string, endpoint: string, main: boolean): string {
  return main ? sim : `${sim}.${endpoint}`;
}

/** The event source of the namespace front of a simulator endpoint (netns backend). */
export function frontName(sim: string, endpoint: string, main: boolean): string {
  return `${endpointTarget(sim, endpoint, main)}-front`;
}

/** fieldlab's own directory (where dist/ and examples live), from the source tree or from dist/. */
function packageRoot(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  return here.includes(`${sep}dist${sep}`) ? resolve(here, '../../..') : resolve(here, '../..');
}

function refError(ref: string, have: string): FieldlabError {
  return new FieldlabError('E_BAD_REFERENCE', `cannot resolve \${${ref}}`, { hint: have });
}

function publicUrl(ep: Endpoint, hostName: string, port: number): string | undefined {
  if (!ep.url) return undefined;
  try {
    const u = new URL(ep.url);
    u.hostname = hostName;
    u.port = String(port);
    return u.toString();
  } catch {
    return undefined;
  }
}

const UDP_PROTOCOLS = new Set(['udp', 'dns', 'dns-udp']);

/** The port the scenario gives an endpoint: `ports[name]`, else `port` for the main one, else any (0). */
function publicPortOf(decl: LabSimulator, endpoint: string, main: boolean): number {
  return decl.ports?.[endpoint] ?? (main ? (decl.port ?? 0) : 0);
}

/** Starts a lab: claims addresses, starts the PKI and every simulator in order, fronts them with relays. */
export async function startLab(def: LabDefinition): Promise<Lab> {
  const id = `${def.name}-${randomBytes(3).toString('hex')}`;
  // 0700 in a state directory no other user can change: the lab CA's keys are in it.
  const dir = def.container?.dir ?? newLabDir(id);
  if (def.container) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const bind = def.container?.bind;
  const block = bind ? fixedBlock(bind) : claimBlock();
  const record = newLabRecord(id, def.name, 'loopback', block.prefix);
  writeRecord(dir, record);

  let pki: PkiHandle;
  try {
    pki = await startPki({
      name: 'pki',
      dir,
      ...(def.container ? { authority: def.container.authority } : {}),
    });
  } catch (err) {
    await def.netns?.network.teardown();
    block.release();
    if (!def.container) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  record.caBundle = pki.trust.bundlePath;
  writeRecord(dir, record);
  const lab = new Lab(
    id,
    def.name,
    dir,
    block,
    pki,
    record,
    { netns: def.netns, containerWorker: def.container !== undefined },
    def.timeline,
  );
  pki.events.onAny((e) => lab.addEvent(e));

  try {
    // Host numbering: declared hosts first, then hosts implied by simulators, in order of appearance.
    for (const h of def.hosts ?? [])
      if (!lab.hosts.has(h.name)) lab.hosts.set(h.name, block.address(lab.hosts.size + 1));
    for (const s of def.simulators)
      if (!lab.hosts.has(s.host)) lab.hosts.set(s.host, block.address(lab.hosts.size + 1));
    if (!def.container) writeNameFiles(lab);

    const ready: Array<NonNullable<StartedSimulator['labReady']>> = [];
    for (const [i, decl] of def.simulators.entries()) {
      const hook = await startOne(lab, decl, i);
      if (hook) ready.push(hook);
    }
    // Hooks hand names to clients (DNS records): on netns, the names as the namespaces resolve them.
    for (const hook of ready) await hook(lab.netns ? lab.netns.names : lab.hosts);
    return lab;
  } catch (err) {
    await lab.stop();
    throw err;
  }
}

async function startOne(lab: Lab, decl: LabSimulator, index: number): Promise<StartedSimulator['labReady']> {
  const adapter = adapterFor(decl.type);
  if (!adapter) {
    throw new FieldlabError(
      'E_UNKNOWN_SIMULATOR',
      `lab.simulators[${index}].type: unknown simulator type ${decl.type}`,
      {
        hint: `known types: ${adapterTypes().join(', ')}`,
      },
    );
  }
  const address = lab.hosts.get(decl.host) ?? '';
  const netns = lab.netns;
  const placed = netns?.hostOf(decl.host);
  const options = parseOptions(
    adapter.options,
    // A container worker's options were filled in by the host (which knows the other containers):
    // filling them again would resolve a literal `$${x}` the host already unescaped.
    lab.containerWorker
      ? (decl.options ?? {})
      : lab.interpolate(decl.options ?? {}, adapter.optionsForClients ? 'client' : 'lab'),
    `${decl.name} (${decl.type})`,
  );
  const started = await adapter.start(
    {
      name: decl.name,
      hostName: decl.host,
      address,
      pki: lab.pki,
      labDir: lab.dir,
      lookup: lab.lookup,
      trackProcess: (pid, what) => lab.trackProcess(pid, what),
      peer: (name) => {
        const r = lab.simulators.get(name);
        return r && { type: r.decl.type, handle: r.handle };
      },
      publicPort: decl.port ?? 0,
      ...(placed && netns
        ? {
            bindPublic: async (port = decl.port ?? 0) =>
              (await netns.network.bindIn(placed.host, placed.address, port)).handle,
            bindPublicUdp: async (port: number) =>
              (await netns.network.bindUdpIn(placed.host, placed.address, port)).socket,
          }
        : {}),
    },
    options,
  );
  const handle = started.handle;
  handle.events.onAny((e) => lab.addEvent(e));
  const running: RunningSimulator = {
    decl,
    handle,
    endpoints: [],
    relays: new Map(),
    vars: started.vars ?? {},
    fronts: [],
  };
  lab.simulators.set(decl.name, running);

  for (const [i, ep] of handle.endpoints.entries()) {
    const wanted = publicPortOf(decl, ep.name, i === 0);
    if (UDP_PROTOCOLS.has(ep.protocol) || started.direct?.includes(ep.name)) {
      running.endpoints.push({
        ...ep,
        ...(ep.url ? { url: publicUrl(ep, decl.host, ep.port) ?? ep.url } : {}),
      });
      continue;
    }
    const relayName = `${endpointTarget(decl.name, ep.name, i === 0)}-relay`;
    const relay = await startRelay({
      name: relayName,
      listen: { host: address, port: wanted },
      upstream: { host: ep.host, port: ep.port },
    });
    relay.events.onAny((e) => lab.addEvent(e));
    running.relays.set(ep.name, relay);
    const url = publicUrl(ep, decl.host, relay.endpoint.port);
    running.endpoints.push({
      name: ep.name,
      host: address,
      port: relay.endpoint.port,
      protocol: ep.protocol,
      ...(url ? { url } : {}),
    });
  }
  if (placed && netns) await frontInNetns(lab, netns, running, placed, started.direct ?? []);
  return started.labReady;
}

/**
 * netns backend: binds each TCP endpoint's public port on the simulator's namespace host and pipes it
 * to the loopback relay (so toxics still apply). Endpoints the simulator bound there itself (`direct`,
 * through `bindPublic`) are already the client's; UDP has no front yet.
 */
async function frontInNetns(
  lab: Lab,
  netns: NetnsPlacement,
  running: RunningSimulator,
  placed: { host: string; address: string },
  direct: readonly string[],
): Promise<void> {
  const { decl } = running;
  running.clientEndpoints = [];
  for (const [i, ep] of running.endpoints.entries()) {
    if (direct.includes(ep.name)) {
      running.clientEndpoints.push(ep);
      continue;
    }
    if (UDP_PROTOCOLS.has(ep.protocol)) {
      throw new FieldlabError(
        'E_NETNS_UNSUPPORTED',
        `${decl.name}: its ${ep.name} endpoint is UDP, which the netns backend does not carry yet`,
        {
          hint: 'on netns, names resolve from each host’s /etc/netns hosts file (lab.network.hosts[].names)',
        },
      );
    }
    const wanted = publicPortOf(decl, ep.name, i === 0);
    const { handle } = await netns.network.bindIn(placed.host, placed.address, wanted);
    const front = await startNetnsFront({
      name: frontName(decl.name, ep.name, i === 0),
      handle,
      upstream: { host: ep.host, port: ep.port },
    });
    front.events.onAny((e) => lab.addEvent(e));
    running.fronts.push(front);
    const url = publicUrl(ep, decl.host, front.port);
    running.clientEndpoints.push({
      name: ep.name,
      host: placed.address,
      port: front.port,
      protocol: ep.protocol,
      ...(url ? { url } : {}),
    });
  }
}

/** The hosts file and resolv.conf that clients in the lab's private mount namespace see. */
function writeNameFiles(lab: Lab): void {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  for (const [name, addr] of lab.hosts) lines.push(`${addr}\t${name}`);
  writeFileSync(lab.hostsFile, `# fieldlab lab ${lab.id}\n${lines.join('\n')}\n`);
  // No lab DNS server yet on this backend: point the resolver at an address in the lab's own block where
  // nothing listens, so a lookup of a non-lab name fails at once and never leaves the machine.
  writeFileSync(
    lab.resolvConf,
    `# fieldlab lab ${lab.id}\nnameserver ${lab.block.address(250)}\noptions timeout:1 attempts:1\n`,
  );
}
