import type { Socket as UdpSocket } from 'node:dgram';
import type { LookupFunction } from 'node:net';
import type { z } from 'zod';
import type { LabEvent } from '../../simulators/common/events.js';
import type { Endpoint } from '../../simulators/common/handle.js';
import { parseOptions } from '../../simulators/common/options.js';
import type { PkiHandle } from '../../simulators/pki/index.js';
import type { Capability } from '../capabilities.js';

/**
 * How a scenario's `type:` becomes a running simulator: each adapter validates the options a scenario
 * may write, then starts the simulator on the lab host's address with what the lab provides
 * (certificates from the lab PKI, other simulators' addresses). One file per type in this folder.
 */
export interface AdapterContext {
  /** Simulator name in the lab. */
  name: string;
  /** Lab host name (a DNS name) and its address. */
  hostName: string;
  address: string;
  pki: PkiHandle;
  labDir: string;
  /**
   * The directory every simulator of the lab shares: `labDir`, except in a worker (a container, a
   * namespace's process), where `labDir` is the simulator's own and this is the lab's around it.
   */
  sharedDir?: string;
  /** Resolves lab names (and only those): for simulators that connect onwards, like proxies. */
  lookup: LookupFunction;
  /** Records a child process the simulator started, so `fieldlab clean` can end it after a crash. */
  trackProcess(pid: number, what: string): void;
  /**
   * netns backend: a listening socket bound at the simulator's own namespace address on `port` (default
   * the scenario's public port of the main endpoint), for a simulator that must see clients' real source
   * addresses (mark that endpoint `direct`). Absent on loopback.
   */
  bindPublic?(port?: number): Promise<object>;
  /** The same for UDP (a bound `dgram.Socket`), on `port`. */
  bindPublicUdp?(port: number): Promise<UdpSocket>;
  /** The public port the scenario gives the main endpoint (0: any). */
  publicPort: number;
  /**
   * A simulator of the same lab, by name, with its type (e.g. the hub a DPS assigns devices to). An
   * adapter reads it through `peerOf`, which gives that simulator's own handle type.
   */
  peer(name: string): { type: string; handle: LabSimulatorHandle } | undefined;
}

/** What the lab needs of any simulator's handle (each simulator's own handle type has more). */
export interface LabSimulatorHandle {
  readonly name: string;
  readonly endpoints: readonly Endpoint[];
  readonly events: { onAny(listener: (e: LabEvent) => void): unknown };
  stats(): unknown;
  stop(): Promise<void>;
}

export interface StartedSimulator<H extends LabSimulatorHandle = LabSimulatorHandle> {
  handle: H;
  /** Extra `${name.<var>}` values (file paths, URLs) scenarios may reference. */
  vars?: Record<string, string>;
  /** Endpoint names that must not be fronted by a relay (UDP, or ones the simulator must own). */
  direct?: string[];
  /** Called once every simulator of the lab runs, with the lab's host names and addresses. */
  labReady?(hosts: ReadonlyMap<string, string>): Promise<void>;
}

/** One simulator type as its file defines it: typed end to end by its options schema `S` and handle `H`. */
export interface AdapterDefinition<S extends z.ZodType, H extends LabSimulatorHandle> {
  type: string;
  /** One line for `fieldlab list --simulators`. */
  summary: string;
  /**
   * Its options hold addresses it hands to clients (DNS records): on the netns backend `${...}` in them
   * resolve as a client sees the lab (namespace addresses), not as simulators in this process do.
   */
  optionsForClients?: boolean;
  /** What a scenario may write under `options:` (strict: an unknown key is an error). */
  options: S;
  /**
   * The lab simulators its options name whose handles it uses (`peerOf`), read from the scenario's raw
   * options: a backend that runs simulators in other processes keeps peers in one.
   */
  peers?(options: Record<string, unknown>): unknown[];
  /**
   * Machine capabilities these options need (a scenario's raw options, a variant's overrides merged), so a
   * variant that needs a missing one is skipped with its reason: e.g. aws-iot `maxFragmentLength: ignore`
   * needs `tls-front`.
   */
  requires?(options: Record<string, unknown>): Capability[];
  start(ctx: AdapterContext, options: z.output<S>): Promise<StartedSimulator<H>>;
  /**
   * `fieldlab serve <type>`: the simulator alone, on its own options (what its `start(options)` takes,
   * certificates as PEM), which it validates. Absent: the type cannot run without a lab.
   */
  serve?(options: Record<string, unknown>): Promise<H>;
}

/** A simulator type as the registry holds it (its options and handle types erased to the lab's view). */
export interface SimulatorAdapter<H extends LabSimulatorHandle = LabSimulatorHandle> {
  readonly type: string;
  readonly summary: string;
  readonly optionsForClients: boolean;
  readonly options: z.ZodType;
  /** Names of the simulators its (raw) options make peers of it (see `AdapterDefinition.peers`). */
  peers(options: Record<string, unknown>): string[];
  /** See `AdapterDefinition.requires`. */
  requires(options: Record<string, unknown>): Capability[];
  /** Validates `options` (a scenario's, `${...}` filled in) against `this.options`, then starts. */
  start(ctx: AdapterContext, options: unknown): Promise<StartedSimulator>;
  /** The handle as this type's own, when this adapter started it (a peer's); undefined otherwise. */
  handleOf(handle: LabSimulatorHandle): H | undefined;
  /** See `AdapterDefinition.serve`. */
  serve?(options: Record<string, unknown>): Promise<LabSimulatorHandle>;
}

/**
 * Makes a registry entry from a type's definition. The options are parsed here, against the schema the
 * definition's `start` is typed by, and every handle it starts is remembered (weakly) with its own type,
 * so another adapter gets a peer's full handle through `handleOf` without a cast.
 */
export function defineAdapter<S extends z.ZodType, H extends LabSimulatorHandle>(
  def: AdapterDefinition<S, H>,
): SimulatorAdapter<H> {
  const started = new WeakMap<LabSimulatorHandle, H>();
  return {
    type: def.type,
    summary: def.summary,
    optionsForClients: def.optionsForClients ?? false,
    options: def.options,
    peers: (options) => (def.peers?.(options) ?? []).filter((n): n is string => typeof n === 'string'),
    requires: (options) => def.requires?.(options) ?? [],
    async start(ctx, options) {
      const s = await def.start(ctx, parseOptions(def.options, options, `${ctx.name} (${def.type})`));
      started.set(s.handle, s.handle);
      return s;
    },
    handleOf: (handle) => started.get(handle),
    serve: def.serve,
  };
}

/** The lab simulator `name` as a simulator of `adapter`'s type, or undefined (none, or another type). */
export function peerOf<H extends LabSimulatorHandle>(
  ctx: AdapterContext,
  name: string,
  adapter: SimulatorAdapter<H>,
): H | undefined {
  const peer = ctx.peer(name);
  return peer ? adapter.handleOf(peer.handle) : undefined;
}

/**
 * `serve` for a simulator whose `start` takes options its `schema` validates: parsed here once, so the
 * JSON a user gives reaches `start` typed (and a bad field is named as the simulator names it).
 */
export function servedBy<S extends z.ZodType, H extends LabSimulatorHandle>(
  schema: S,
  owner: string,
  start: (options: z.output<S>) => Promise<H>,
): (options: Record<string, unknown>) => Promise<H> {
  return (options) => start(parseOptions(schema, options, owner));
}
