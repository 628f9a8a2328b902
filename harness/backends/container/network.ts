import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { FieldlabError } from '../../../simulators/common/errors.js';
import { type LabEvent, SimulatorEvents } from '../../../simulators/common/events.js';
import { type Authority, authorityOf } from '../../../simulators/pki/index.js';
import { type ContainerPaths, runInContainer } from '../../clients/container-command.js';
import { fixedBlock } from '../../lab/addresses.js';
import { endpointTarget, type Lab, type LabSimulator, type RunningSimulator } from '../../lab/lab.js';
import { firstDnsServer } from '../../lab/loopback-network.js';
import type { LabReadyHook } from '../../lab/network.js';
import { processStartTicks } from '../../lab/state.js';
import { orAbort } from '../abort.js';
import { programOf, relayFaults, seesNothingMore } from '../common.js';
import {
  httpControlChannel,
  type RemoteDnsFaults,
  type RemoteRelay,
  remoteDnsFaults,
  remoteRelay,
  type WorkerReady,
  type WorkerSpec,
  workerReadySchema,
} from '../remote/index.js';
import type { BackendNetwork } from '../types.js';
import { LAB_LABEL, OWNER_LABEL, OWNER_START_LABEL } from './clean.js';
import { containerGroups } from './groups.js';
import { type ContainerLabDns, ownResolver, planLabDns } from './lab-dns.js';

/**
 * The container backend (DESIGN.md "Network backends"): every simulator of a lab runs in its own
 * container of the fieldlab image (`fieldlab serve-lab`), on a Docker network of the lab's own
 * (198.18.N.0/24, labelled), under its lab host name as a network alias, sharing the lab directory as
 * `/lab`. Every container resolves names through the lab's DNS (lab-dns.ts), not Docker's. Containers
 * are started with testcontainers and waited on by their ready line; their events come back on their
 * logs; toxics and DNS faults go to each container's control API. Without Ryuk (its image cannot be
 * pulled here), the lab removes its containers and network itself, and `fieldlab clean` removes what a
 * killed run left (by label).
 */
export const CONTAINER_DIR = '/lab';
export const CONTAINER_ROOT = '/app';

export interface ContainerLabOptions {
  image: string;
  /** The lab's simulators (the variant's options merged in): which must share a container (groups.ts). */
  simulators?: readonly LabSimulator[];
}

/** The image's own user (Dockerfile: `useradd --uid 10001 ... fieldlab`), which simulator containers run as. */
export const IMAGE_UID = 10001;

/**
 * Who the lab's containers run as, and who owns what they read on the lab directory, so that they and no
 * other local user can read it (the specs hold the lab CA's private keys): everything is 0600 in 0700
 * directories. Run as root (CI), the files go to the image's user (10001); otherwise they cannot change
 * owner, so the containers run as the invoking user instead (`user`: `uid:gid`).
 */
export interface LabOwner {
  uid: number;
  gid: number;
  /** `docker run --user` for every container of the lab; undefined: the image's own user. */
  user?: string;
}

export function labOwner(): LabOwner {
  const uid = process.geteuid?.() ?? 0;
  const gid = process.getegid?.() ?? 0;
  if (uid === 0) return { uid: IMAGE_UID, gid: IMAGE_UID };
  return { uid, gid, user: `${uid}:${gid}` };
}

/** A directory (0700) or file (0600) only the lab's containers' user can read (and root). */
function giveTo(owner: LabOwner, path: string): void {
  if (owner.user === undefined) chownSync(path, owner.uid, owner.gid);
}

/** Simulator types that take DNS faults (harness/faults/dns.ts), through their container's control API. */
const DNS_SIMULATOR_TYPES: readonly string[] = ['geo-dns', 'resolver'];

/** The worker's ready line on its logs (`{"ready":true,...}`, harness/cli/serve-lab.ts). */
const READY_LINE = /^\{"ready":true[,}]/;

/** Bound on each simulator container's start (image pull excluded: the image must exist). */
const STARTUP_TIMEOUT_MS = 60_000;

type Testcontainers = typeof import('testcontainers');
type RuntimeClient = Awaited<ReturnType<Testcontainers['getContainerRuntimeClient']>>;

async function testcontainers(): Promise<Testcontainers> {
  // Ryuk (the reaper container) would need a registry; the lab cleans up after itself instead.
  process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
  // testcontainers looks for the host through the default `bridge` network, which an engine started
  // with --bridge=none lacks; the lab reaches containers by their own addresses, never by mapped ports.
  process.env.TESTCONTAINERS_HOST_OVERRIDE ??= 'localhost';
  return import('testcontainers');
}

/** Creates the lab's network on the first free 198.18.N.0/24 (N ≥ 1; compose uses N = 0). */
async function createNetwork(client: RuntimeClient, labId: string, labels: Record<string, string>) {
  const name = `fl-${labId}`;
  let lastError: unknown;
  for (let attempt = 0; attempt < 40; attempt++) {
    const n = 1 + ((process.pid + attempt * 37 + Math.floor(Math.random() * 200)) % 254);
    try {
      const network = await client.network.create({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        IPAM: { Driver: 'default', Config: [{ Subnet: `198.18.${n}.0/24`, Gateway: `198.18.${n}.1` }] },
        Labels: labels,
      });
      return {
        name,
        prefix: `198.18.${n}`,
        remove: () => client.network.remove(network).catch(() => undefined),
      };
    } catch (err) {
      lastError = err;
      // Another lab (or compose) holds that subnet: try another.
      if (!/overlap|already exists|in use/i.test(String((err as Error).message))) break;
    }
  }
  throw new FieldlabError(
    'E_CONTAINER_NETWORK',
    `cannot create the lab network ${name}: ${String(lastError)}`,
    {
      hint: 'is the Docker engine running (scripts/setup.sh starts one), and are 198.18.x.0/24 networks free?',
    },
  );
}

/** Reads a container's log lines: JSON lines are the worker's ready line and events; the rest is kept. */
function consumeLogs(
  stream: Readable,
  onJson: (o: { ready?: boolean; event?: LabEvent } & Record<string, unknown>) => void,
  onText: (line: string) => void,
): void {
  createInterface({ input: stream }).on('line', (line) => {
    if (line.startsWith('{')) {
      try {
        onJson(JSON.parse(line));
        return;
      } catch {
        // not ours: keep it as text
      }
    }
    onText(line);
  });
}

/** Prepares a container lab's network: checks the image, then hands the steps to the lab (see `LabNetwork`). */
export async function containerNetwork(opts: ContainerLabOptions): Promise<BackendNetwork> {
  const tc = await testcontainers();
  const client = await tc.getContainerRuntimeClient();
  // No registry here, and a pull would hide a missing build: the image must be local.
  if (!(await client.image.exists(tc.ImageName.fromString(opts.image)))) {
    throw new FieldlabError('E_CONTAINER_IMAGE', `the image ${opts.image} is not built`, {
      hint: 'build it: BASE_IMAGE=$(scripts/docker-base-image.sh) scripts/docker-image.sh (scripts/setup.sh does)',
    });
  }
  // 0700, entered only by the containers' user (and root): the specs in it hold the lab CA's keys.
  const owner = labOwner();
  // The per-lab secret of the simulators' control APIs (toxics): only the specs carry it.
  const controlToken = randomBytes(32).toString('base64url');
  const labels: Record<string, string> = {
    [OWNER_LABEL]: String(process.pid),
    [OWNER_START_LABEL]: String(processStartTicks(process.pid) ?? ''),
  };
  const paths: ContainerPaths = {
    dir: CONTAINER_DIR,
    root: CONTAINER_ROOT,
    image: opts.image,
    labels,
    ...(owner.user ? { user: owner.user } : {}),
  };
  let network: { name: string; prefix: string; remove(): Promise<unknown> } | undefined;
  let authority: Authority | undefined;
  let hostDir = '';
  const groups = containerGroups(opts.simulators ?? []);
  const groupOf = (decl: LabSimulator) => groups.find((g) => g.some((s) => s.name === decl.name));
  const started = new Set<LabSimulator[]>();
  // Every lab host gets its container's address before anything starts (the lab interpolates
  // `${sim.address}` and `${lab.host.x}` with it; certificates name it): hosts of one group share one.
  let nextAddress = 2;
  const place = (host: string): string => {
    if (!network) throw new Error('container lab: open() first');
    const group = groups.find((g) => g.some((s) => s.host === host)) ?? [];
    for (const s of group) {
      const mate = placed.get(s.host);
      if (mate !== undefined) return mate;
    }
    // .1 is the network's gateway, .255 its broadcast.
    if (nextAddress > 254) {
      throw new FieldlabError('E_CONTAINER_NETWORK', `${host}: the lab network has no free address left`, {
        hint: 'a container lab has at most 253 hosts: declare fewer hosts or simulators',
      });
    }
    const address = `${network.prefix}.${nextAddress++}`;
    placed.set(host, address);
    return address;
  };
  const placed = new Map<string, string>();
  const simulatorHosts = new Set(opts.simulators?.map((s) => s.host));
  // Decided at the first simulator's start, once every host has its address (lab-dns.ts).
  let dns: ContainerLabDns | undefined;
  // The lab's own resolver's container, started beside the simulators' once the geo-dns servers it
  // forwards to run (their ports are known then); awaited by the lab's labReady hooks, and by close().
  let dnsStarted: Promise<void> | undefined;
  let openLab: Lab | undefined;
  const startOwnResolver = (lab: Lab, c: Omit<ContainerStart, 'address' | 'dns'>): void => {
    if (!dns?.own || dnsStarted) return;
    const geoDns = (opts.simulators ?? []).filter((s) => s.type === 'geo-dns');
    if (!geoDns.every((s) => (lab.simulators.get(s.name)?.endpoints.length ?? 0) > 0)) return;
    const own = ownResolver(lab, opts.simulators ?? []);
    dnsStarted = startContainer(tc, lab, own, [], { ...c, address: dns.address, dns });
    // Its failure is the lab's when the hook awaits it (or close(), if the lab failed first).
    dnsStarted.catch(() => undefined);
  };

  return {
    backend: 'container',
    block: fixedBlock(''),
    writesNameFiles: false,
    async open(lab) {
      openLab = lab;
      hostDir = lab.dir;
      giveTo(owner, lab.dir);
      // Containers read the trust bundle (the keys in it stay 0600, this process's); the lab directory
      // around it keeps everyone else out.
      chmodSync(lab.pki.dir, 0o755);
      authority = authorityOf(lab.pki);
      labels[LAB_LABEL] = lab.id;
      network = await createNetwork(client, lab.id, labels);
      paths.network = network.name;
    },
    // A host's address is its container's, fixed on the lab network before the container starts. A
    // declared host no simulator runs on has none: a client container has only its own address.
    place: (host) => (simulatorHosts.has(host) || !opts.simulators ? place(host) : undefined),
    async startSimulator(lab, decl) {
      if (!network || !authority) throw new Error('container lab: open() first');
      const c = { image: opts.image, network: network.name, labels, owner, authority, controlToken };
      // The first start decides the lab's DNS (before any container: each reads its resolv.conf). The
      // lab's own resolver is up before the lab is ready: its hook waits for it.
      let hook: LabReadyHook | undefined;
      if (!dns) {
        dns = planLabDns(lab, opts.simulators ?? [], place);
        if (dns.own) {
          hook = async () => {
            startOwnResolver(lab, c);
            await dnsStarted;
          };
        }
      }
      startOwnResolver(lab, c);
      // Peers declared later start with the first of their group; their own calls find it running.
      const group = groupOf(decl) ?? [decl];
      if (started.has(group)) return hook;
      started.add(group);
      const [first, ...peers] = group.map((s) => (s.name === decl.name ? decl : s));
      if (!first) return hook;
      await startContainer(tc, lab, first, peers, {
        ...c,
        address: lab.hosts.get(first.host) ?? place(first.host),
        dns,
      });
      startOwnResolver(lab, c);
      return hook;
    },
    clientNames: (lab) => lab.hosts,
    // Programs in the lab's containers see the lab directory at /lab and fieldlab at /app.
    labPath: (path) =>
      hostDir && path.startsWith(hostDir) ? `${CONTAINER_DIR}${path.slice(hostDir.length)}` : path,
    labRoot: CONTAINER_ROOT,
    dnsServer: firstDnsServer,
    // lab.stop() stops every simulator (its container) first, then this removes the network.
    close: async () => {
      // A lab that failed while its resolver's container was starting: that one too (stop is idempotent).
      if (dnsStarted && dns) {
        await dnsStarted.catch(() => undefined);
        await openLab?.simulators
          .get(dns.name)
          ?.handle.stop()
          .catch(() => undefined);
      }
      await network?.remove();
    },
    ...relayFaults,
    ...seesNothingMore,
    // Its container goes with the lab's (stop removes them), which ends the docker CLI.
    runCommand: (lab, run) => {
      // `resolve: lab`: the lab's DNS, or the resolver the run names (`client.resolver`); `none`: Docker's.
      const resolvConf =
        run.resolve !== 'lab'
          ? undefined
          : run.resolver !== undefined
            ? lab.resolvConfFor(run.resolver)
            : dns?.resolvConf;
      return orAbort(
        runInContainer({
          ...programOf(run),
          lab: { ...paths, hostDir: lab.dir },
          ...(resolvConf !== undefined ? { resolvConf } : {}),
        }),
        run.signal,
      );
    },
  };
}

interface ContainerStart {
  image: string;
  network: string;
  /** The container's address on the lab network (every endpoint of its simulators listens on it). */
  address: string;
  labels: Record<string, string>;
  owner: LabOwner;
  authority: Authority;
  controlToken: string;
  /** The lab's DNS, whose resolv.conf the container reads. */
  dns?: ContainerLabDns;
}

/**
 * Starts one simulator (and its peers: one process, see groups.ts) in a container of its own
 * (`fieldlab serve-lab <spec>`) at its fixed address on the lab network, under every lab host name of
 * its simulators, and registers them in the lab at once (so lab.stop() stops it even if the rest of its
 * start fails). Their events come back on its logs; their relays' toxics go to its control API.
 */
async function startContainer(
  tc: Testcontainers,
  lab: Lab,
  decl: LabSimulator,
  peers: readonly LabSimulator[],
  c: ContainerStart,
): Promise<void> {
  const interpolated = (d: LabSimulator): LabSimulator => ({
    ...d,
    options: lab.interpolate(d.options ?? {}),
  });
  const spec: WorkerSpec = {
    lab: lab.name,
    simulator: interpolated(decl),
    ...(peers.length > 0 ? { peers: peers.map(interpolated) } : {}),
    // Every lab host's address (all fixed before any container starts), for the labReady hooks.
    names: Object.fromEntries(lab.hosts),
    dir: `${CONTAINER_DIR}/${decl.name}`,
    authority: c.authority,
    // Its own address, not 0.0.0.0: certificates name the address the lab and its clients dial.
    bind: c.address,
    controlToken: c.controlToken,
  };
  const simDir = join(lab.dir, decl.name);
  mkdirSync(simDir, { mode: 0o700 });
  giveTo(c.owner, simDir);
  const specFile = join(lab.dir, `${decl.name}.spec.json`);
  // `wx`: a new file, never one that something else put there.
  writeFileSync(specFile, JSON.stringify(spec), { mode: 0o600, flag: 'wx' });
  giveTo(c.owner, specFile);

  const members = [decl, ...peers];
  const relays = new Map<string, RemoteRelay>();
  const dnsTargets: RemoteDnsFaults[] = [];
  let ready: WorkerReady | undefined;
  const logs: string[] = [];
  const aliases = [...new Set(members.map((m) => m.host))];
  const container = await labContainer(tc, c.image, c.network, aliases, c.address, c.owner.user)
    .withCommand(['serve-lab', `${CONTAINER_DIR}/${decl.name}.spec.json`])
    .withBindMounts([
      { source: lab.dir, target: CONTAINER_DIR, mode: 'rw' },
      // Its lookups (a proxy's of the hub) go to the lab's DNS, where DNS faults reach them.
      ...(c.dns ? [{ source: c.dns.resolvConf, target: '/etc/resolv.conf', mode: 'ro' as const }] : []),
    ])
    .withLabels(c.labels)
    .withLogConsumer((stream) =>
      consumeLogs(
        stream,
        (o) => {
          if (o.ready) ready = workerReadySchema.safeParse(o).data;
          else if (o.event) {
            // A relay's events also move its handle's figures and toxics (one that expired is gone).
            for (const r of relays.values()) r.ingest(o.event);
            for (const d of dnsTargets) d.ingest(o.event);
            lab.addEvent(o.event);
          }
        },
        (line) => {
          logs.push(line);
          if (logs.length > 200) logs.shift();
        },
      ),
    )
    // Its ready line, printed once every simulator listens (what the image's healthcheck tests too, but
    // from a `node` started every 2 s: a healthcheck's first run waits its interval, and each run costs CPU).
    .withWaitStrategy(tc.Wait.forLogMessage(READY_LINE))
    .withStartupTimeout(STARTUP_TIMEOUT_MS)
    .start()
    .catch((err: Error) => {
      throw new FieldlabError(
        'E_CONTAINER_START',
        `${decl.name} (${decl.type}) did not become ready: ${err.message}`,
        {
          hint: logs.slice(-5).join(' | ') || `is the image ${c.image} built (scripts/docker-image.sh)?`,
        },
      );
    });
  const ip = container.getIpAddress(c.network);
  const channel = httpControlChannel({ host: ip, token: c.controlToken });
  // The group's simulators stop with their one container: the first stop ends it, the others wait on it.
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      channel.close();
      await container.stop();
    })();
    return stopping;
  };
  const runningOf = (member: LabSimulator): RunningSimulator => {
    // A DNS simulator's faults go to its container's control API (harness/faults/dns.ts finds them here).
    const dnsFaults = DNS_SIMULATOR_TYPES.includes(member.type)
      ? remoteDnsFaults({ target: member.name, channel, faults: lab })
      : undefined;
    if (dnsFaults) dnsTargets.push(dnsFaults);
    return {
      decl: member,
      handle: {
        name: member.name,
        endpoints: [],
        events: new SimulatorEvents<Record<string, unknown>>(member.name),
        stats: () => ({}),
        stop,
        ...(dnsFaults
          ? {
              addDnsFault: dnsFaults.addDnsFault,
              removeDnsFault: dnsFaults.removeDnsFault,
              dnsFaults: dnsFaults.dnsFaults,
            }
          : {}),
      },
      endpoints: [],
      relays: new Map(),
      vars: {},
      logs,
    };
  };
  const running = new Map(members.map((m) => [m.name, runningOf(m)]));
  for (const [name, r] of running) lab.simulators.set(name, r);
  const got = await waitFor(() => ready, 10_000, `${decl.name}: no ready line in its logs`);
  for (const sim of [got, ...got.peers]) {
    const r = running.get(sim.name);
    if (!r) continue;
    // `${sim.address}` is the container's address; URLs keep the lab host name (certificates name it).
    r.endpoints = sim.endpoints.map((e) => ({ ...e, host: ip }));
    r.vars = sim.vars;
    lab.hosts.set(r.decl.host, ip);
    // Toxics, their updates and removal go to the container's control API (the lab's secret with them).
    for (const [i, ep] of sim.endpoints.entries()) {
      // Only endpoints the worker fronts with a relay take toxics (not UDP, not ones it binds itself).
      if (!sim.relayed.includes(ep.name)) continue;
      const target = endpointTarget(sim.name, ep.name, i === 0);
      const relay = remoteRelay({ target, endpoint: { host: ip, port: ep.port }, channel, faults: lab });
      relays.set(target, relay);
      r.relays.set(ep.name, relay);
    }
  }
}

/**
 * A container attached only to the lab network at a fixed address, under its lab host names. testcontainers' own aliases
 * attach a container to the default bridge first and connect it to the network after, which fails on
 * an engine without a default bridge (`--bridge=none`): the alias goes into the create request instead.
 */
function labContainer(
  tc: Testcontainers,
  image: string,
  network: string,
  aliases: string[],
  address: string,
  user?: string,
) {
  class LabContainer extends tc.GenericContainer {
    constructor() {
      super(image);
      this.createOpts.NetworkingConfig = {
        EndpointsConfig: { [network]: { Aliases: aliases, IPAMConfig: { IPv4Address: address } } },
      };
      this.withNetworkMode(network);
      // The image's HEALTHCHECK is for `docker run`/compose users; the lab waits on the ready line instead.
      this.createOpts.Healthcheck = { Test: ['NONE'] };
      if (user !== undefined) this.withUser(user);
    }
  }
  return new LabContainer();
}

/** Polls a value set by a log consumer; bounded. */
async function waitFor<T>(get: () => T | undefined, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new FieldlabError('E_CONTAINER_START', what);
    await new Promise((r) => setTimeout(r, 50));
  }
}
