import type { LookupFunction } from 'node:net';
import type { Authority } from '../../simulators/pki/index.js';
import type { StartedSimulator } from '../adapters/index.js';
import type { AddressBlock } from './addresses.js';
import type { Lab, LabSimulator } from './lab.js';

/** Hands the lab's names to clients once every simulator runs (a DNS simulator's records). */
export type LabReadyHook = NonNullable<StartedSimulator['labReady']>;

/**
 * The part of a network backend one lab holds (harness/backends/types.ts `BackendNetwork` extends it):
 * where the lab's hosts are, how a simulator starts on one, and how the client's view of the lab differs
 * from the view of the simulators this process runs. `Lab` reads only this, so it never branches on a
 * backend; `startLab` calls these steps in order: `block` → `open` → `place` each host → `startSimulator`
 * each simulator → the simulators' `labReady` hooks with `clientNames` → (on stop) `close`.
 */
export interface LabNetwork {
  /** The backend's name, for the lab's record (`fieldlab clean`, `fieldlab ca`). */
  readonly backend: string;
  /** The addresses simulators in this process bind (a claimed 127.A.B.0/24, or a fixed one). */
  readonly block: AddressBlock;
  /** The lab's files: where they go and whether the lab keeps them on stop (default: a new state dir, removed). */
  readonly files?: {
    dir: string;
    keep: boolean;
    /** The directory every simulator of the lab shares, when `dir` is one simulator's own (default `dir`). */
    shared?: string;
  };
  /** The lab CA to issue from (default: a new one). */
  readonly authority?: Authority;
  /** Names this lab's table lacks go here when there is no lab DNS server (default: they fail). */
  readonly fallbackLookup?: LookupFunction;
  /** Whether clients in this process's private mount namespace read the lab's hosts file and resolv.conf. */
  readonly writesNameFiles: boolean;
  /**
   * Whether the lab runs its own resolver on port 53 of a lab address for the clients' resolv.conf (see
   * harness/lab/lab-dns.ts); it falls back to the hosts file where port 53 cannot be bound.
   */
  readonly labDns?: boolean;
  /** Prepares what the lab needs around its directory and CA before any host is placed. */
  open(lab: Lab): Promise<void>;
  /** A host's address in this process (undefined: known only once a simulator runs on it). */
  place(host: string, index: number): string | undefined;
  /** Starts one simulator on its host and registers it in `lab.simulators`. */
  startSimulator(lab: Lab, decl: LabSimulator, index: number): Promise<LabReadyHook | undefined>;
  /** The names clients resolve, with the address each resolves to for them. */
  clientNames(lab: Lab): ReadonlyMap<string, string>;
  /** A lab host's address as the client reaches it; absent: the lab's own (`lab.hosts`). */
  clientAddress?(name: string): string | undefined;
  /** A lab path as the lab's programs see it (a container's mount), and fieldlab's own directory there. */
  labPath?(path: string): string;
  readonly labRoot?: string;
  /** `address:port` of the lab's DNS server when this process can reach it. */
  dnsServer(lab: Lab): string | undefined;
  /** Releases the network once every simulator of the lab has stopped. */
  close(): Promise<void>;
}
