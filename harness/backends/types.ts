import type { LabEvent } from '../../simulators/common/events.js';
import type { Capability } from '../capabilities.js';
import type { CommandResult } from '../clients/command.js';
import type { DnsFaultSpecInput } from '../faults/dns.js';
import type { ToxicSpecInput } from '../faults/spec.js';
import type { Lab, LabDefinition } from '../lab/lab.js';
import type { LabNetwork } from '../lab/network.js';
import type { Backend as BackendName, Scenario, Variant } from '../scenario/model.js';

export type { BackendName };

/** What a lab is started for: the scenario and variant it runs (a lab file of `fieldlab up` has no variant). */
export interface LabContext {
  /** The client and load: a backend may refuse one it cannot place (netns: an in-process probe). */
  scenario: Pick<Scenario, 'name' | 'lab'> & Partial<Pick<Scenario, 'client' | 'load'>>;
  /** The variant's simulator options: a backend may need the lab's simulators before they start. */
  variant?: Pick<Variant, 'network'> & Partial<Pick<Variant, 'simulators' | 'load'>>;
  /** Container backend: the fieldlab image its containers run (default $FIELDLAB_IMAGE, else fieldlab:local). */
  image?: string;
}

/** A command client to run on a lab host, with what the lab gives it (already interpolated). */
export interface CommandRun {
  /** The lab host (network host name) the client runs on. */
  host: string;
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
  stdin?: string;
  timeoutMs: number;
  /** `lab`: lab names resolve for the program; `none`: it resolves as the machine does. */
  resolve: 'lab' | 'none';
  /**
   * With `resolve: lab`: the resolver simulator (port 53) the program's resolv.conf names instead of the
   * lab's own DNS (already checked to exist in the lab).
   */
  resolver?: string;
  onSpawn?: (pid: number) => void;
  /** Ends the program (SIGTERM, then SIGKILL) or its container. */
  signal?: AbortSignal;
}

/** What a failed client was given and never reached, for `explain`. */
export interface FailureContext {
  clientHost: string;
  /** Simulators the client was pointed at (its `${sim...}` references). */
  referenced: readonly string[];
  /** The run's events (with the network's own, from `observe`). */
  events: readonly LabEvent[];
}

/**
 * One lab's network on a backend: the lab's side (`LabNetwork`: place a host, start a simulator on it,
 * how the client sees the lab) and the runner's (faults, clients, what the network saw).
 */
export interface BackendNetwork extends LabNetwork {
  /** Puts one fault in place on a target (a simulator or `sim.endpoint`): a toxic, a DNS fault. */
  applyFault(lab: Lab, target: string, spec: ToxicSpecInput | DnsFaultSpecInput): void;
  /** Removes a toxic by name from a target; the connections it held go on unharmed. */
  removeFault(lab: Lab, target: string, name: string): void;
  /** Runs a command client on a lab host, where that host is on this backend. */
  runCommand(lab: Lab, run: CommandRun): Promise<CommandResult>;
  /** Events only the network saw during the run (netns: the firewall rules that matched), at `time`. */
  observe(lab: Lab, time: number): Promise<LabEvent[]>;
  /** Sentences that explain a failure from what the network saw (netns: where the route went). */
  explain(lab: Lab, failure: FailureContext): Promise<string[]>;
}

/** What `clean` removed and what it left (a live owner's lab), as lines `fieldlab clean` prints. */
export interface CleanResult {
  removed: string[];
  skippedLive: string[];
}

/**
 * A network backend (DESIGN.md "Network backends"): one folder under harness/backends/ with one entry,
 * registered by name in harness/backends/index.ts. The lab and the runner never branch on a backend.
 */
export interface Backend {
  readonly name: BackendName;
  /** Capabilities a scenario's variant needs on this backend beyond what the scenario declares. */
  capabilities(scenario: Scenario, variant: Variant): Capability[];
  /** Prepares one lab's network (netns: the namespaces of `lab.network`; container: a Docker network). */
  prepare(context: LabContext): Promise<BackendNetwork>;
  /** Removes what labs of this backend left behind after a crash (a live owner's only with `force`). */
  clean(opts: { force: boolean }): CleanResult;
  /** Removes, synchronously and at once, what this process's own labs left (a second Ctrl-C). */
  cleanOwnSync(): string[];
}

/** A lab started on a backend, with its network (faults, clients, explanations). */
export interface BackendLab {
  lab: Lab;
  network: BackendNetwork;
}

export type { LabDefinition };
