import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { FieldlabError } from '../../simulators/common/errors.js';
import { type LabEvent, SimulatorEvents } from '../../simulators/common/events.js';
import type { Endpoint } from '../../simulators/common/handle.js';
import { authorityOf, start as startPki } from '../../simulators/pki/index.js';
import type { RelayHandle } from '../faults/index.js';
import type { ToxicSpecInput } from '../faults/spec.js';
import type { LabSimulatorHandle } from './adapters.js';
import { fixedBlock } from './addresses.js';
import { LAB_LABEL, OWNER_LABEL, OWNER_START_LABEL } from './container-clean.js';
import { CONTROL_PORT, type WorkerSpec } from './container-worker.js';
import { type ContainerPaths, endpointTarget, Lab, type LabDefinition } from './lab.js';
import { labsDir, newLabRecord, writeRecord } from './state.js';

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
  const dir = join(labsDir(), id);
  // Containers run as the image's user (uid 10001): they write their own subdirectories here.
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  const record = newLabRecord(id, def.name, 'container');
  writeRecord(dir, record);
  const pki = await startPki({ name: 'pki', dir });
  chmodSync(pki.dir, 0o755);
  const authority = authorityOf(pki);
  const block = fixedBlock('');
  const labels = {
    [LAB_LABEL]: id,
    [OWNER_LABEL]: String(process.pid),
    [OWNER_START_LABEL]: String(record.pidStartTicks ?? ''),
  };
  const paths = { dir: CONTAINER_DIR, root: CONTAINER_ROOT, image: opts.image, labels } as ContainerPaths;
  const lab = new Lab(id, def.name, dir, block, pki, record, { containerPaths: paths });
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
      };
      mkdirSync(simDir, { recursive: true });
      chmodSync(simDir, 0o777);
      const specFile = join(dir, `${decl.name}.spec.json`);
      writeFileSync(specFile, JSON.stringify(spec), { mode: 0o644 });

      const events = new SimulatorEvents<Record<string, unknown>>(decl.name);
      let ready: { endpoints: Endpoint[]; vars: Record<string, string> } | undefined;
      const logs: string[] = [];
      const container = await labContainer(tc, opts.image, network.name, decl.host)
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
      for (const [i, ep] of got.endpoints.entries())
        relays.set(ep.name, remoteRelay(lab, ip, endpointTarget(decl.name, ep.name, i === 0)));
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
function labContainer(tc: Testcontainers, image: string, network: string, alias: string) {
  class LabContainer extends tc.GenericContainer {
    constructor() {
      super(image);
      this.createOpts.NetworkingConfig = { EndpointsConfig: { [network]: { Aliases: [alias] } } };
      this.withNetworkMode(network);
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

/**
 * POSTs to a simulator container's control API on a connection of its own: a pooled keep-alive socket
 * may lead to a container that is gone, its address since given to another lab's container (which
 * answers with a reset). Bounded.
 */
function postControl(ip: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: ip,
        port: CONTROL_PORT,
        path: '/toxics',
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json' },
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
        new FieldlabError('E_CONTAINER_CONTROL', `control API ${ip}:${CONTROL_PORT}: ${err.message}`, {
          hint: "the simulator's container stopped or is not answering: see its logs in the report",
        }),
      ),
    );
    req.end(JSON.stringify(body));
  });
}

/** A relay in a container: toxics travel to its control API. Only `addToxic` is offered. */
function remoteRelay(lab: Lab, ip: string, target: string): RelayHandle {
  const unsupported = () => {
    throw new FieldlabError('E_CONTAINER_RELAY', `${target}: only adding toxics reaches a container relay`);
  };
  return {
    addToxic(spec: ToxicSpecInput) {
      // Synchronous in the relay API; the request is awaited through `lab.faultsApplied()` before the client runs.
      const sent = postControl(ip, { target, toxic: spec }).then((r) => {
        if (r.status !== 200) throw new FieldlabError('E_BAD_FAULT', `${target}: ${r.body}`);
      });
      lab.trackFault(sent);
      return spec as never;
    },
    removeToxic: unsupported,
    toxics: () => [],
    stop: async () => {},
  } as unknown as RelayHandle;
}
