import { FieldlabError } from '../../../simulators/common/errors.js';
import { publicPortOf, publicUrl, startInProcess, UDP_PROTOCOLS } from '../../lab/in-process.js';
import { endpointTarget, type Lab, type LabSimulator, type RunningSimulator } from '../../lab/lab.js';
import type { LabReadyHook } from '../../lab/network.js';
import { startNetnsFront } from './front.js';
import type { NetnsPlacement } from './network.js';

/** The event source of the namespace front of a simulator endpoint. */
export function frontName(sim: string, endpoint: string, main: boolean): string {
  return `${endpointTarget(sim, endpoint, main)}-front`;
}

/**
 * Starts a simulator on its netns host. For now it runs in this process on loopback (behind its relays,
 * where toxics apply), and each TCP endpoint gets a front bound in its host's namespace, which is what
 * clients in other namespaces reach across the kernel's network; an endpoint the simulator must own
 * (it sees clients' real addresses) it binds there itself (`bindPublic`). This one step is what moves
 * the simulator into its own process in its namespace later.
 */
export async function startSimulator(
  lab: Lab,
  placement: NetnsPlacement,
  decl: LabSimulator,
  index: number,
): Promise<LabReadyHook | undefined> {
  const placed = placement.hostOf(decl.host);
  const binder = placed && {
    bindPublic: async (port = decl.port ?? 0) =>
      (await placement.network.bindIn(placed.host, placed.address, port)).handle,
    bindPublicUdp: async (port: number) =>
      (await placement.network.bindUdpIn(placed.host, placed.address, port)).socket,
  };
  const { running, direct, labReady } = await startInProcess(lab, decl, index, binder ? { binder } : {});
  if (placed) await frontInNetns(lab, placement, running, placed, direct);
  return labReady;
}

/**
 * Binds each TCP endpoint's public port on the simulator's namespace host and pipes it to the loopback
 * relay (so toxics still apply). Endpoints the simulator bound there itself (`direct`) are already the
 * client's; UDP has no front yet.
 */
async function frontInNetns(
  lab: Lab,
  placement: NetnsPlacement,
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
    const { handle } = await placement.network.bindIn(placed.host, placed.address, wanted);
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
