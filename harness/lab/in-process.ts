import type { Socket as UdpSocket } from 'node:dgram';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { Endpoint } from '../../simulators/common/handle.js';
import { parseOptions } from '../../simulators/common/options.js';
import { adapterFor, adapterTypes, type StartedSimulator } from '../adapters/index.js';
import { startRelay } from '../faults/index.js';
import { endpointTarget, type Lab, type LabSimulator, type RunningSimulator } from './lab.js';

/** Endpoint protocols a TCP relay cannot front. */
export const UDP_PROTOCOLS: ReadonlySet<string> = new Set(['udp', 'dns', 'dns-udp']);

/** Where a simulator binds its own public sockets (netns: in its host's namespace); absent on loopback. */
export interface PublicBinder {
  bindPublic(port?: number): Promise<object>;
  bindPublicUdp(port: number): Promise<UdpSocket>;
}

export interface InProcessOptions {
  /** Binds public sockets where the client is (netns). */
  binder?: PublicBinder;
  /**
   * false: the options are used as given. A container worker's options were filled in by the host (which
   * knows the other containers): filling them again would resolve a literal `$${x}` the host unescaped.
   */
  interpolate?: boolean;
}

export interface InProcessSimulator {
  running: RunningSimulator;
  /** Endpoint names the simulator bound itself (through `binder`), not fronted by a relay. */
  direct: readonly string[];
  labReady: StartedSimulator['labReady'];
}

/**
 * Starts one simulator in this process on its host's address, with a relay in front of every TCP
 * endpoint (where faults go), and registers it in the lab. Every backend whose simulators run in the
 * fieldlab process (loopback, netns, a container's worker) starts them here.
 */
export async function startInProcess(
  lab: Lab,
  decl: LabSimulator,
  index: number,
  opts: InProcessOptions = {},
): Promise<InProcessSimulator> {
  const adapter = adapterFor(decl.type);
  if (!adapter) {
    throw new FieldlabError(
      'E_UNKNOWN_SIMULATOR',
      `lab.simulators[${index}].type: unknown simulator type ${decl.type}`,
      { hint: `known types: ${adapterTypes().join(', ')}` },
    );
  }
  const address = lab.hosts.get(decl.host) ?? '';
  const options = parseOptions(
    adapter.options,
    opts.interpolate === false
      ? (decl.options ?? {})
      : lab.interpolate(decl.options ?? {}, adapter.optionsForClients ? 'client' : 'lab'),
    `${decl.name} (${decl.type})`,
  );
  const binder = opts.binder;
  const started = await adapter.start(
    {
      name: decl.name,
      hostName: decl.host,
      address,
      pki: lab.pki,
      labDir: lab.dir,
      sharedDir: lab.network.files?.shared ?? lab.dir,
      lookup: lab.lookup,
      trackProcess: (pid, what) => lab.trackProcess(pid, what),
      peer: (name) => {
        const r = lab.simulators.get(name);
        return r && { type: r.decl.type, handle: r.handle };
      },
      publicPort: decl.port ?? 0,
      ...(binder
        ? {
            bindPublic: (port = decl.port ?? 0) => binder.bindPublic(port),
            bindPublicUdp: (port: number) => binder.bindPublicUdp(port),
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
  return { running, direct: started.direct ?? [], labReady: started.labReady };
}

/** An endpoint's URL with the lab host name and the public port in it. */
export function publicUrl(ep: Endpoint, hostName: string, port: number): string | undefined {
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

/** The port the scenario gives an endpoint: `ports[name]`, else `port` for the main one, else any (0). */
export function publicPortOf(decl: LabSimulator, endpoint: string, main: boolean): number {
  return decl.ports?.[endpoint] ?? (main ? (decl.port ?? 0) : 0);
}
