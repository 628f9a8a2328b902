import { z } from 'zod';
import { authoritySchema } from '../../../simulators/pki/index.js';
import type { LabSimulator } from '../../lab/lab.js';

/**
 * The spec of one simulator started in another process (`fieldlab serve-lab <spec>`): a container of
 * the container backend, or a process in a network namespace of the netns backend. The lab writes it
 * (0600: it holds the lab CA's keys); the worker reads it.
 */
export const workerSpecSchema = z.strictObject({
  lab: z.string().min(1),
  /** The simulator, its options already filled in as the lab's other hosts see the lab. */
  simulator: z.custom<LabSimulator>(
    (v) => typeof v === 'object' && v !== null && typeof (v as LabSimulator).type === 'string',
  ),
  /**
   * More simulators of the same lab host, started after `simulator` in this one process, in this order:
   * peers that reach each other's handles (`peer()`: a DPS's hub, Krypton's DPS). Netns backend.
   */
  peers: z
    .array(
      z.custom<LabSimulator>(
        (v) => typeof v === 'object' && v !== null && typeof (v as LabSimulator).type === 'string',
      ),
    )
    .optional(),
  /**
   * Every lab name with the address it resolves to for the lab's hosts (a namespace's hosts file): what
   * the simulators' `labReady` hooks get (a geo-dns serves them, a proxy allows them). Default: its own.
   */
  names: z.record(z.string(), z.string()).optional(),
  /** This simulator's own directory (the container's share of the lab volume, or the lab's own). */
  dir: z.string().min(1),
  /** The lab CA, inline or as the file `fieldlab pki` writes (`authority.json`, compose's shared volume). */
  authority: authoritySchema.optional(),
  authorityFile: z.string().min(1).optional(),
  /**
   * The address every endpoint (and the control API) listens on: default all of the container's
   * (`0.0.0.0`); in a network namespace, the host's own address there (a host may have several).
   */
  bind: z.string().min(1).optional(),
  /**
   * The simulator binds its public ports itself on `bind` (it runs where its clients are: a namespace),
   * as the netns backend's in-process simulators do through `bindPublic`: a DNS server on 53, etc.
   */
  bindsPublic: z.boolean().optional(),
  /** The lab's secret for the HTTP control API (Authorization: Bearer); without it, no HTTP control API. */
  controlToken: z.string().min(32).optional(),
  /** Take control requests as JSON lines on stdin (answers on stdout); the worker stops when stdin closes. */
  stdioControl: z.boolean().optional(),
});
export type WorkerSpec = z.infer<typeof workerSpecSchema>;

/** One simulator the worker runs, as its ready line gives it. */
const readySimulator = {
  simulator: z.string(),
  name: z.string(),
  endpoints: z.array(
    z.object({
      name: z.string(),
      host: z.string(),
      port: z.number(),
      protocol: z.string(),
      url: z.string().optional(),
    }),
  ),
  vars: z.record(z.string(), z.string()),
  /** Endpoint names fronted by a relay (faults apply there). */
  relayed: z.array(z.string()).default([]),
};

/** The worker's ready line (first JSON line with `ready: true` on its stdout). */
export const workerReadySchema = z.object({
  ready: z.literal(true),
  ...readySimulator,
  pid: z.number(),
  /** The spec's `peers`, started in the same process, in order. */
  peers: z.array(z.object(readySimulator)).default([]),
  /** The worker's `Date.now()` when it was ready. */
  now: z.number().optional(),
});
export type WorkerReady = z.infer<typeof workerReadySchema>;
