import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { FieldlabError } from '../../simulators/common/errors.js';
import { type LabEvent, SimulatorEvents } from '../../simulators/common/events.js';
import type { Endpoint } from '../../simulators/common/handle.js';
import { authorityOf, start as startPki } from '../../simulators/pki/index.js';
import { parseToxic, type RelayEvents, type RelayHandle } from '../faults/index.js';
import type { ToxicSpecInput } from '../faults/spec.js';
import type { LabSimulatorHandle } from './adapters.js';
import { fixedBlock } from './addresses.js';
import { LAB_LABEL, OWNER_LABEL, OWNER_START_LABEL } from './container-clean.js';
import { CONTROL_PORT, type WorkerSpec } from './container-worker.js';
import { type ContainerPaths, endpointTarget, Lab, type LabDefinition } from './lab.js';
import { newLabDir, newLabRecord, writeRecord } from './state.js';

/**
 * The container backend (DESIGN.md "Network backends"): every simulator of a lab runs in its own
 * container of the fieldlab image (`fieldlab serve-lab`), on a Docker network of the lab's own
 * (198.18.N.0/24, labelled), under its lab host name as a network alias, sharing the lab directory as
 * `/lab`. Containers are started with testcontainers and waited on by their healthcheck; their events
 * come back on their logs; toxics go to each container's control API. Without Ryuk (its image cannot be
 * pulled here), the lab removes its containers and network itself, and `fieldlab clean` removes what a
 * killed run left (by label).
 */
export const CONTAINER_DIR = '/lab';
export const CONTAINER_ROOT = '/app';

export interface ContainerLabOptions {
  image: string;
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
      return { name, remove: () => client.network.remove(network).catch(() => undefined) };
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

export async function startContainerLab(def: LabDefinition, opts: ContainerLabOptions): Promise<Lab> {
  const tc = await testcontainers();
  const client = await tc.getContainerRuntimeClient();
  // No registry here, and a pull would hide a missing build: the image must be local.
  if (!(await client.image.exists(tc.ImageName.fromString(opts.image)))) {
    throw new FieldlabError('E_CONTAINER_IMAGE', `the image ${opts.image} is not built`, {
      hint: 'build it: BASE_IMAGE=$(scripts/docker-base-image.sh) scripts/docker-image.sh (scripts/setup.sh does)',
    });
  }
  const id = `${def.name}-${randomBytes(3).toString('hex')}`.slice(0, 40);
  // 0700, entered only by the containers' user (and root): the specs in it hold the lab CA's keys.
  const owner = labOwner();
  const dir = newLabDir(id);
  giveTo(owner, dir);
  const record = newLabRecord(id, def.name, 'container');
  writeRecord(dir, record);
  // The per-lab secret of the simulators' control APIs (toxics): only the specs carry it.
  const controlToken = randomBytes(32).toString('base64url');
  const pki = await startPki({ name: 'pki', dir });
  // Containers read the trust bundle (the keys in it stay 0600, this process's); the lab directory
  // around it keeps everyone else out.
  chmodSync(pki.dir, 0o755);
  const authority = authorityOf(pki);
  const block = fixedBlock('');
  const labels = {
    [LAB_LABEL]: id,
    [OWNER_LABEL]: String(process.pid),
    [OWNER_START_LABEL]: String(record.pidStartTicks ?? ''),
  };
  const paths: ContainerPaths = {
    dir: CONTAINER_DIR,
    root: CONTAINER_ROOT,
    image: opts.image,
    labels,
    ...(owner.user ? { user: owner.user } : {}),
  };
  const lab = new Lab(id, def.name, dir, block, pki, record, { containerPaths: paths }, def.timeline);
  // lab.stop() stops every simulator (its container), then removes the network, then the directory.
  let network: { name: string; remove(): Promise<unknown> } | undefined;
  lab.onStopped(async () => network?.remove());

  try {
    network = await createNetwork(client, id, labels);
    paths.network = network.name;
    for (const decl of def.simulators) {
      const options = lab.interpolate(decl.options ?? {});
      const simDir = join(dir, decl.name);
      const spec: WorkerSpec = {
        lab: def.name,
        simulator: { ...decl, options },
        dir: `${CONTAINER_DIR}/${decl.name}`,
        authority,
        controlToken,
      };
      mkdirSync(simDir, { mode: 0o700 });
      giveTo(owner, simDir);
      const specFile = join(dir, `${decl.name}.spec.json`);
      // `wx`: a new file, never one that something else put there.
      writeFileSync(specFile, JSON.stringify(spec), { mode: 0o600, flag: 'wx' });
      giveTo(owner, specFile);

      const events = new SimulatorEvents<Record<string, unknown>>(decl.name);
      let ready: { endpoints: Endpoint[]; vars: Record<string, string> } | undefined;
      const logs: string[] = [];
      const container = await labContainer(tc, opts.image, network.name, decl.host, owner.user)
        .withCommand(['serve-lab', `${CONTAINER_DIR}/${decl.name}.spec.json`])
        .withBindMounts([{ source: dir, target: CONTAINER_DIR, mode: 'rw' }])
        .withLabels(labels)
        .withLogConsumer((stream) =>
          consumeLogs(
            stream,
            (o) => {
              if (o.ready) ready = o as never;
              else if (o.event) lab.addEvent(o.event);
            },
            (line) => {
              logs.push(line);
              if (logs.length > 200) logs.shift();
            },
          ),
        )
        .withWaitStrategy(tc.Wait.forHealthCheck())
        .withStartupTimeout(STARTUP_TIMEOUT_MS)
        .start()
        .catch((err: Error) => {
          throw new FieldlabError(
            'E_CONTAINER_START',
            `${decl.name} (${decl.type}) did not become healthy: ${err.message}`,
            {
              hint:
                logs.slice(-5).join(' | ') || `is the image ${opts.image} built (scripts/docker-image.sh)?`,
            },
          );
        });
      const ip = container.getIpAddress(network.name);
      const remote: LabSimulatorHandle = {
        name: decl.name,
        endpoints: [],
        events,
        stats: () => ({}),
        stop: () => container.stop().then(() => undefined),
      };
      // Registered at once: lab.stop() stops it even if the rest of its start fails.
      const running = { decl, handle: remote, endpoints: [], relays: new Map(), vars: {}, fronts: [], logs };
      lab.simulators.set(decl.name, running);
      const got = await waitFor(() => ready, 10_000, `${decl.name}: no ready line in its logs`);
      // `${sim.address}` is the container's address; URLs keep the lab host name (certificates name it).
      const endpoints = got.endpoints.map((e) => ({ ...e, host: ip }));
      lab.hosts.set(decl.host, ip);
      const relays = new Map<string, RelayHandle>();
      for (const [i, ep] of got.endpoints.entries()) {
        const target = endpointTarget(decl.name, ep.name, i === 0);
        relays.set(ep.name, remoteRelay(lab, { ip, port: ep.port, token: controlToken }, target));
      }
      Object.assign(running, { endpoints, relays, vars: got.vars });
    }
    return lab;
  } catch (err) {
    await lab.stop();
    throw err;
  }
}

/**
 * A container attached only to the lab network, under its lab host name. testcontainers' own aliases
 * attach a container to the default bridge first and connect it to the network after, which fails on
 * an engine without a default bridge (`--bridge=none`): the alias goes into the create request instead.
 */
function labContainer(tc: Testcontainers, image: string, network: string, alias: string, user?: string) {
  class LabContainer extends tc.GenericContainer {
    constructor() {
      super(image);
      this.createOpts.NetworkingConfig = { EndpointsConfig: { [network]: { Aliases: [alias] } } };
      this.withNetworkMode(network);
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

/** Where a simulator container's control API is, and the lab's secret it wants. */
interface ControlTarget {
  ip: string;
  /** The relay's own port (for the handle's `endpoint`). */
  port: number;
  token: string;
}

/**
 * POSTs to a simulator container's control API on a connection of its own: a pooled keep-alive socket
 * may lead to a container that is gone, its address since given to another lab's container (which
 * answers with a reset). Carries the lab's secret (RFC 6750 §2.1 bearer token). Bounded.
 */
function postControl(to: ControlTarget, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: to.ip,
        port: CONTROL_PORT,
        path: '/toxics',
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${to.token}` },
        timeout: 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
    req.on('error', (err) =>
      reject(
        new FieldlabError('E_CONTAINER_CONTROL', `control API ${to.ip}:${CONTROL_PORT}: ${err.message}`, {
          hint: "the simulator's container stopped or is not answering: see its logs in the report",
        }),
      ),
    );
    req.end(JSON.stringify(body));
  });
}

/**
 * A relay in a container: toxics travel to its control API (checked here first, so a bad one fails at
 * once, as on loopback). Only `addToxic` is offered; the relay's events come back on the container's logs.
 */
function remoteRelay(lab: Lab, to: ControlTarget, target: string): RelayHandle {
  const unsupported = (): never => {
    throw new FieldlabError('E_CONTAINER_RELAY', `${target}: only adding toxics reaches a container relay`);
  };
  return {
    name: `${target}-relay`,
    endpoint: { host: to.ip, port: to.port },
    events: new SimulatorEvents<RelayEvents>(`${target}-relay`),
    addToxic(input: ToxicSpecInput) {
      const spec = parseToxic(input, target);
      // Synchronous in the relay API; the request is awaited through `lab.faultsApplied()` before the client runs.
      const sent = postControl(to, { target, toxic: input }).then((r) => {
        if (r.status !== 200) throw new FieldlabError('E_BAD_FAULT', `${target}: ${r.body}`);
      });
      lab.trackFault(sent);
      return spec;
    },
    updateToxic: unsupported,
    removeToxic: unsupported,
    toxics: () => [],
    setUpstream: unsupported,
    stats: () => ({ connections: 0, active: 0, bytesUp: 0, bytesDown: 0 }),
    stop: async () => {},
  };
}
