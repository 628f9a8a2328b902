import { lookup as dnsLookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { dirname } from 'node:path';
import type { Authority } from '../../simulators/pki/index.js';
import { fixedBlock } from './addresses.js';
import { startInProcess } from './in-process.js';
import { firstDnsServer } from './loopback-network.js';
import type { LabNetwork } from './network.js';

/** One simulator of a container lab, run by the container's worker (`fieldlab serve-lab`). */
export interface WorkerPlacement {
  /** The address every host binds (`0.0.0.0`: all of the container's). */
  bind: string;
  /** The simulator's directory on the lab's shared volume (the host removes it). */
  dir: string;
  /** The lab's CA, shared by every container of the lab. */
  authority: Authority;
}

/**
 * The network of a container lab's worker: its one simulator binds every address of its container,
 * its files go to the shared volume (kept: the host removes them), its certificates come from the lab's
 * CA, and names it does not know resolve through the container's resolver (Docker's DNS knows every lab
 * host name on the lab network).
 */
export function workerNetwork(placement: WorkerPlacement): LabNetwork {
  const block = fixedBlock(placement.bind);
  return {
    backend: 'container',
    block,
    // Its own directory is in the lab's (the lab volume, or the netns lab's directory): the parent is
    // shared with the lab's other simulators (files made once per lab, e.g. the JITP device CA).
    files: { dir: placement.dir, keep: true, shared: dirname(placement.dir) },
    authority: placement.authority,
    fallbackLookup: dnsLookup as LookupFunction,
    writesNameFiles: false,
    open: async () => {},
    place: () => placement.bind,
    startSimulator: async (lab, decl, index) =>
      (await startInProcess(lab, decl, index, { interpolate: false })).labReady,
    clientNames: (lab) => lab.hosts,
    dnsServer: firstDnsServer,
    close: async () => {},
  };
}
