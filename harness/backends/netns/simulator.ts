import { join } from 'node:path';
import { authorityOf } from '../../../simulators/pki/index.js';
import type { Lab, LabSimulator, RunningSimulator } from '../../lab/lab.js';
import type { LabReadyHook } from '../../lab/network.js';
import { startWorkerProcess, type WorkerSimulator } from '../remote/worker-process.js';
import type { NetnsPlacement } from './network.js';

/**
 * The simulators of one netns lab, each group in its own `fieldlab serve-lab` process inside its network
 * host's namespace (backends/remote/worker-process.ts): it binds the host's own address there, its relays
 * (where toxics apply) included, so every hop to it and from it (a proxy's to the hub) crosses the veths,
 * routes, nftables and WireGuard of the scenario. A group is one simulator, or peers that reach each
 * other's handles (see peers.ts), all on one host.
 */
export class NetnsSimulators {
  private readonly started = new Set<LabSimulator[]>();

  constructor(
    private readonly placement: NetnsPlacement,
    /** The lab's simulators in worker groups (the variant's options merged in), in declaration order. */
    private readonly groups: readonly LabSimulator[][],
  ) {}

  /**
   * Starts the worker of `decl`'s group with the first member (its peers declared later start with it:
   * a reference to them in a later simulator's options resolves); the others' calls find it running. Its
   * labReady hooks run in the worker, with the names the namespaces resolve.
   */
  async start(
    lab: Lab,
    decl: LabSimulator,
    /** Where it listens in its namespace; default its host's (first) address. */
    bind?: string,
  ): Promise<LabReadyHook | undefined> {
    const group = this.groups.find((g) => g.some((s) => s.name === decl.name)) ?? [decl];
    if (this.started.has(group)) return undefined;
    this.started.add(group);
    const placed = this.placement.hostOf(decl.host);
    if (!placed) {
      throw new Error(`netns lab: ${decl.host} is on no host of lab.network (the plan checks this)`);
    }
    // Filled in before the worker starts, as the namespaces see the lab (its addresses and public ports).
    const [first, ...peers] = group
      .map((s) => (s.name === decl.name ? decl : s))
      .map((s) => interpolated(lab, s));
    if (!first) return undefined;
    const worker = await startWorkerProcess({
      network: this.placement.network,
      host: placed.host,
      address: bind ?? placed.address,
      lab: lab.name,
      simulator: first,
      peers,
      names: this.placement.names,
      dir: join(lab.dir, first.name),
      authority: authorityOf(lab.pki),
      faults: lab,
      onEvent: (e) => lab.addEvent(e),
      onExit: ({ code, signal, logs }) =>
        lab.addEvent({
          time: Date.now(),
          source: first.name,
          type: 'worker-exited',
          data: { code, signal, host: placed.host, last: logs.slice(-5) },
        }),
    });
    for (const [i, sim] of [worker, ...worker.peers].entries()) {
      const own = i === 0 ? first : peers[i - 1];
      if (own) lab.simulators.set(own.name, running(own, sim));
    }
    return undefined;
  }
}

/** A simulator's options with `${...}` filled in (the lab's view is the namespaces' on netns). */
function interpolated(lab: Lab, decl: LabSimulator): LabSimulator {
  return decl.options ? { ...decl, options: lab.interpolate(decl.options) } : decl;
}

/** What the lab keeps of a simulator in a worker: its endpoints are the namespace ones, for every view. */
function running(decl: LabSimulator, sim: Omit<WorkerSimulator, 'peers'>): RunningSimulator {
  return {
    decl,
    handle: sim.handle,
    endpoints: sim.endpoints,
    relays: new Map(sim.relays),
    vars: sim.vars,
    logs: sim.logs,
  };
}
