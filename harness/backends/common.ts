import { basename } from 'node:path';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { LabEvent } from '../../simulators/common/events.js';
import { adapterFor } from '../adapters/index.js';
import type { Capability } from '../capabilities.js';
import { applyFault } from '../faults/dns.js';
import { linkHosts } from '../faults/spec.js';
import type { Lab } from '../lab/lab.js';
import { loadOf, type Scenario, type Variant } from '../scenario/model.js';
import type { BackendNetwork, CommandRun } from './types.js';

/**
 * Capabilities a variant needs on any backend: what the scenario declares, k6 for a k6 load, the command
 * client's program (`cmd:<name>`) when it runs on this machine, and what its simulators' options need.
 */
export function baseCapabilities(s: Scenario, v: Variant): Set<Capability> {
  const caps = new Set<Capability>(s.requires as Capability[]);
  if (loadOf(s, v)?.driver === 'k6') caps.add('k6');
  const argv0 = commandProgram(s, v);
  if (argv0 !== undefined) caps.add(`cmd:${basename(argv0)}`);
  // What the simulators' options need (aws-iot `maxFragmentLength: ignore`: tls-front).
  for (const sim of s.lab.simulators) {
    const options = { ...sim.options, ...(v.simulators[sim.name] ?? {}) };
    for (const cap of adapterFor(sim.type)?.requires(options) ?? []) caps.add(cap);
  }
  return caps;
}

/** The command client's program, when the scenario has one and names it literally. */
export function commandProgram(s: Scenario, v: Variant): string | undefined {
  if (s.client?.type !== 'command') return undefined;
  const argv0 = v.client?.argv?.[0] ?? s.client.argv[0];
  return argv0 && !argv0.includes('${') ? argv0 : undefined;
}

/**
 * Faults on the lab's relays (TCP toxics) and DNS simulators (DNS faults): where every backend puts
 * them so far, since each runs a relay in front of every TCP endpoint (in this process or its worker).
 */
export const relayFaults: Pick<BackendNetwork, 'applyFault' | 'removeFault'> = {
  applyFault: (lab, target, spec) => {
    if (linkHosts(target)) {
      // A link between two network hosts exists only where hosts are namespaces.
      throw new FieldlabError(
        'E_LINK_FAULT_BACKEND',
        `${target} is a link between two network hosts, which this backend does not have`,
        { hint: 'run it on the netns backend: add `backends: [netns]` to the fault' },
      );
    }
    applyFault(lab, target, spec);
  },
  removeFault: (lab, target, name) => lab.relay(target).removeToxic(name),
};

/** For a backend whose network shows nothing beyond the simulators' own events. */
export const seesNothingMore: Pick<BackendNetwork, 'observe' | 'explain'> = {
  observe: async (_lab: Lab, _time: number): Promise<LabEvent[]> => [],
  explain: async () => [],
};

/**
 * What a command client's program gets wherever a backend runs it (here, in a namespace, in a
 * container): argv, environment, directory, input, time limit, and the callback for its PID.
 */
export function programOf(run: CommandRun) {
  return {
    argv: run.argv,
    env: run.env,
    timeoutMs: run.timeoutMs,
    ...(run.cwd !== undefined ? { cwd: run.cwd } : {}),
    ...(run.stdin !== undefined ? { stdin: run.stdin } : {}),
    ...(run.onSpawn ? { onSpawn: run.onSpawn } : {}),
  };
}
