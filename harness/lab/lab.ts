import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import type { LookupFunction } from 'node:net';
import { hostname } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { LabEvent } from '../../simulators/common/events.js';
import type { Endpoint } from '../../simulators/common/handle.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import type { LabSimulatorHandle } from '../adapters/index.js';
import type { RelayHandle } from '../faults/index.js';
import type { SimulatorDecl } from '../scenario/model.js';
import type { AddressBlock } from './addresses.js';
import { type LabDns, pickedResolverAddress, startLabDns } from './lab-dns.js';
import { createLabLookup } from './lookup.js';
import { loopbackNetwork } from './loopback-network.js';
import type { LabNetwork, LabReadyHook } from './network.js';
import { type LabRecord, newLabDir, newLabRecord, processStartTicks, writeRecord } from './state.js';
import { Timeline, type TimelineOptions } from './timeline.js';
import { type WorkerPlacement, workerNetwork } from './worker-network.js';

/** A simulator in a lab definition: a scenario's declaration, with its defaultable fields optional. */
export type LabSimulator = Omit<SimulatorDecl, 'ports' | 'options'> & {
  ports?: Record<string, number>;
  options?: Record<string, unknown>;
};

export interface LabDefinition {
  name: string;
  hosts?: Array<{ name: string }>;
  simulators: LabSimulator[];
  /**
   * One simulator per container (the container backend's worker): every host binds this address
   * (`0.0.0.0`) instead of a loopback block, lab files go to `dir` (a volume every container of the lab
   * shares, kept on stop), and certificates come from the lab's CA (`authority`).
   */
  container?: WorkerPlacement;
  /** The event timeline's bound and which events a run must keep (see `Timeline`). */
  timeline?: TimelineOptions;
}

/** Which side of the lab a `${...}` reference is read for: simulators in this process, or the client. */
export type RefView = 'lab' | 'client';

export interface RunningSimulator {
  decl: LabSimulator;
  handle: LabSimulatorHandle;
  /** Endpoints as simulators of the lab see them: the relay's port, the lab host name in URLs. */
  endpoints: Endpoint[];
  /** Relay per fronted endpoint name. */
  relays: Map<string, RelayHandle>;
  vars: Record<string, string>;
  /** The simulator's last log lines (what is not an event) when it runs elsewhere, for the report. */
  logs?: string[];
}

/**
 * A running lab: its simulators, the relays in front of their TCP endpoints (faults are added and removed
 * there at run time), the bounded event timeline, and `${...}` references. Where hosts live, how a
 * simulator starts and what the client sees come from its `network` (one backend's, see `LabNetwork`):
 *
 *   client ──► relay (host address : public port, toxics) ──► simulator (host address : ephemeral port)
 *
 * Everything the lab creates lives in its state directory, recorded for `fieldlab clean`.
 */
export class Lab {
  /** Every simulator's and relay's events, bounded (oldest routine events dropped first). */
  readonly timeline: Timeline;
  readonly simulators = new Map<string, RunningSimulator>();
  readonly hosts = new Map<string, string>();
  readonly lookup: LookupFunction;
  /** Where the client's resolv.conf points (the lab resolver), or the hosts-file fallback and why. */
  dns: LabDns | undefined;
  private readonly listeners = new Set<(e: LabEvent) => void>();
  /** Faults still being put in place elsewhere (container relays), for `faultsApplied`. */
  private readonly pendingFaults = new Set<Promise<void>>();
  private stopping: Promise<void> | undefined;

  constructor(
    readonly id: string,
    readonly name: string,
    readonly dir: string,
    readonly pki: PkiHandle,
    private readonly record: LabRecord,
    /** Where the lab's hosts live and what its client sees: one backend's part (see `LabNetwork`). */
    readonly network: LabNetwork,
    timeline: TimelineOptions = {},
  ) {
    this.timeline = new Timeline(timeline);
    this.lookup = createLabLookup(this.hosts, () => this.dnsServer(), network.fallbackLookup);
  }

  /** The addresses this process's simulators bind. */
  get block(): AddressBlock {
    return this.network.block;
  }

  get hostsFile(): string {
    return join(this.dir, 'hosts');
  }

  get resolvConf(): string {
    return join(this.dir, 'resolv.conf');
  }

  /**
   * The resolv.conf a client in the lab's private mount namespace reads: the lab's own, or with `resolver`
   * (the scenario's `client.resolver`) one naming that resolver persona, written as `resolv-<name>.conf`.
   * Either way the hosts file holds only localhost, so every lab name is a query to that resolver. Throws
   * where the lab has no DNS on port 53 (see `pickedResolverAddress`).
   */
  resolvConfFor(resolver?: string): string {
    if (resolver === undefined) return this.resolvConf;
    const address = pickedResolverAddress(this.dns, resolver, this.simulators.get(resolver));
    const file = join(this.dir, `resolv-${resolver}.conf`);
    writeFileSync(file, `# fieldlab lab ${this.id}: the resolver ${resolver}\nnameserver ${address}\n`);
    return file;
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
    if (!s) {
      throw new FieldlabError('E_NO_SUCH_SIMULATOR', `the lab has no simulator ${name}`, {
        ...(name === 'lab-dns'
          ? {
              hint: 'lab-dns runs only when the scenario declares no resolver on port 53 and port 53 can be bound (dns53); target the declared resolver or the geo-dns instead',
            }
          : {}),
      });
    }
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

  /** `address:port` of the lab's DNS server, when this process can reach it (the network says). */
  dnsServer(): string | undefined {
    return this.network.dnsServer(this);
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
   * Resolves one `${...}` reference. The client's view may differ from the lab's (the network says): on
   * netns, addresses and ports are the namespace ones the client reaches, not the loopback ones
   * simulators use.
   */
  resolveRef(ref: string, view: RefView = 'lab'): string {
    const parts = ref.split('.');
    const [head, ...rest] = parts;
    const client = view === 'client';
    const net = this.network;
    if (head === 'lab' && rest[0] === 'host') {
      // `${lab.host.<host name>}`: a lab host's address (host names contain dots).
      const name = rest.slice(1).join('.');
      const addr = client && net.clientAddress ? net.clientAddress(name) : this.hosts.get(name);
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
      // Paths as the lab's programs see them (a container mounts the lab directory elsewhere).
      if (rest[0] === 'root' && net.labRoot !== undefined) return net.labRoot;
      const value = get();
      return net.labPath ? net.labPath(value) : value;
    }
    const s = this.simulators.get(head ?? '');
    if (!s) throw refError(ref, `simulators: ${[...this.simulators.keys()].join(', ')}`);
    const endpoints = s.endpoints;
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
        await Promise.allSettled([...s.relays.values()].map((r) => r.stop()));
        await s.handle.stop().catch(() => undefined);
      }
      await this.pki.stop().catch(() => undefined);
      // After every socket bound in the network is closed (an open one keeps a namespace alive).
      await this.network.close().catch(() => undefined);
      if (!this.network.files?.keep) rmSync(this.dir, { recursive: true, force: true });
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

/** fieldlab's own directory (where dist/ and examples live), from the source tree or from dist/. */
function packageRoot(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  return here.includes(`${sep}dist${sep}`) ? resolve(here, '../../..') : resolve(here, '../..');
}

function refError(ref: string, have: string): FieldlabError {
  return new FieldlabError('E_BAD_REFERENCE', `cannot resolve \${${ref}}`, { hint: have });
}

/** Starts a lab on a network (default: a claimed loopback block; a container worker's `def.container`). */
export async function startLab(def: LabDefinition, network?: LabNetwork): Promise<Lab> {
  const net = network ?? (def.container ? workerNetwork(def.container) : loopbackNetwork());
  const id = `${def.name.slice(0, 33)}-${randomBytes(3).toString('hex')}`;
  // 0700 in a state directory no other user can change: the lab CA's keys are in it.
  const dir = net.files?.dir ?? newLabDir(id);
  if (net.files) mkdirSync(dir, { recursive: true, mode: 0o700 });
  const record = newLabRecord(id, def.name, net.backend, net.block.prefix);
  writeRecord(dir, record);

  let pki: PkiHandle;
  try {
    pki = await startPki({ name: 'pki', dir, ...(net.authority ? { authority: net.authority } : {}) });
  } catch (err) {
    await net.close().catch(() => undefined);
    if (!net.files?.keep) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  record.caBundle = pki.trust.bundlePath;
  writeRecord(dir, record);
  const lab = new Lab(id, def.name, dir, pki, record, net, def.timeline);
  pki.events.onAny((e) => lab.addEvent(e));

  try {
    await net.open(lab);
    // Host numbering: declared hosts first, then hosts implied by simulators, in order of appearance.
    const place = (host: string) => {
      if (lab.hosts.has(host)) return;
      const address = net.place(host, lab.hosts.size + 1);
      if (address !== undefined) lab.hosts.set(host, address);
    };
    for (const h of def.hosts ?? []) place(h.name);
    for (const s of def.simulators) place(s.host);
    // Written before any simulator starts (their options may name the files), again once the lab DNS runs.
    if (net.writesNameFiles) writeNameFiles(lab);

    const ready: LabReadyHook[] = [];
    for (const [i, decl] of def.simulators.entries()) {
      const hook = await net.startSimulator(lab, decl, i);
      if (hook) ready.push(hook);
    }
    if (net.labDns) {
      lab.dns = await startLabDns(lab, def);
      if (lab.dns.kind === 'resolver' && lab.dns.hook) ready.push(lab.dns.hook);
      if (net.writesNameFiles) writeNameFiles(lab);
    }
    // Hooks hand names to clients (DNS records): the names as the client resolves them.
    const names = net.clientNames(lab);
    for (const hook of ready) await hook(names);
    return lab;
  } catch (err) {
    await lab.stop();
    throw err;
  }
}

/**
 * The hosts file and resolv.conf that clients in the lab's private mount namespace see. With the lab DNS
 * running, resolv.conf names it (port 53) and the hosts file holds only localhost, so every lab name is a
 * DNS query the lab answers (and faults). Otherwise the hosts file has the lab's names and resolv.conf
 * points at an address in the lab's own block where nothing listens: a lookup of any other name fails at
 * once and never leaves the machine.
 */
function writeNameFiles(lab: Lab): void {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost ip6-localhost ip6-loopback'];
  // The machine's own name, as Debian's /etc/hosts has it: programs look it up (a client id, a log line)
  // and that lookup is no query for the lab's DNS.
  const self = hostname();
  if (self && self !== 'localhost' && !lab.hosts.has(self)) lines.push(`127.0.1.1\t${self}`);
  const dns = lab.dns?.kind === 'resolver' ? lab.dns : undefined;
  if (!dns) for (const [name, addr] of lab.hosts) lines.push(`${addr}\t${name}`);
  writeFileSync(lab.hostsFile, `# fieldlab lab ${lab.id}\n${lines.join('\n')}\n`);
  const resolv = dns
    ? `nameserver ${dns.address}\n`
    : `nameserver ${lab.block.address(250)}\noptions timeout:1 attempts:1\n`;
  writeFileSync(lab.resolvConf, `# fieldlab lab ${lab.id}\n${resolv}`);
}
