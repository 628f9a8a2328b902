import {
  type DnsFaultSpec,
  type DnsFaultSpecInput,
  type DnsFaultTarget,
  parseDnsFault,
} from '../../../simulators/common/dns-faults.js';
import { FieldlabError } from '../../../simulators/common/errors.js';
import type { LabEvent } from '../../../simulators/common/events.js';
import type { ControlChannel, ControlRequestBody } from './protocol.js';
import type { FaultTracker } from './relay.js';

/** A DNS simulator in another process, as the lab holds it: a `DnsFaultTarget`, fed with its events. */
export interface RemoteDnsFaults extends DnsFaultTarget {
  /** An event of the simulator from the worker: a fault that expired there is gone here too. */
  ingest(e: LabEvent): void;
}

/**
 * The lab's side of a DNS simulator (geo-dns, resolver) running in a worker process (a container or a
 * network namespace): its DNS faults travel over the worker's control channel, as a remote relay's toxics
 * do (see relay.ts). A bad fault fails here at once, naming the field, as the simulator would; a local
 * mirror answers `dnsFaults()`; the lab awaits every request in `faultsApplied()`, so a refusal by the
 * worker surfaces before the client runs.
 */
export function remoteDnsFaults(opts: {
  /** The DNS simulator's name (its events' source, the faults' target). */
  target: string;
  channel: ControlChannel;
  faults: FaultTracker;
}): RemoteDnsFaults {
  const { target, channel, faults } = opts;
  let mirror: DnsFaultSpec[] = [];
  let inFlight = 0;

  const sendTracked = (body: ControlRequestBody): void => {
    inFlight++;
    const sent = channel.request(body).then(
      (reply) => {
        inFlight--;
        if (reply.ok && reply.faults && inFlight === 0) mirror = reply.faults.map((f) => ({ ...f }));
        if (!reply.ok) {
          const { code, message, hint } = reply.error;
          throw new FieldlabError(code, message, hint ? { hint } : {});
        }
      },
      (err: unknown) => {
        inFlight--;
        throw err;
      },
    );
    faults.trackFault(sent);
  };

  return {
    addDnsFault(input: DnsFaultSpecInput): DnsFaultSpec {
      const spec = parseDnsFault(input, target);
      if (mirror.some((f) => f.name === spec.name)) {
        throw new FieldlabError(
          'E_FAULT_EXISTS',
          `${target}: a DNS fault named ${spec.name} already exists`,
          {
            hint: 'give the fault another name, or remove the existing one',
          },
        );
      }
      mirror.push({ ...spec });
      // The parsed spec (its name resolved, durations in ms): both sides call it the same.
      sendTracked({ op: 'addDnsFault', target, fault: { ...spec } });
      return { ...spec };
    },
    removeDnsFault(name: string): void {
      if (!mirror.some((f) => f.name === name)) {
        throw new FieldlabError('E_NO_SUCH_FAULT', `${target}: no DNS fault named ${name}`, {
          hint: `DNS faults here: ${mirror.map((f) => f.name).join(', ') || 'none'}`,
        });
      }
      mirror = mirror.filter((f) => f.name !== name);
      sendTracked({ op: 'removeDnsFault', target, name });
    },
    dnsFaults: () => mirror.map((f) => ({ ...f })),
    ingest(e: LabEvent): void {
      if (e.source !== target || inFlight > 0) return;
      const data = (e.data ?? {}) as { toxic?: unknown };
      // Added on the worker by someone else (its control API), or expired there (its `duration`).
      if (e.type === 'toxic-added') {
        const spec = data.toxic as DnsFaultSpec | undefined;
        if (spec?.name && !mirror.some((f) => f.name === spec.name)) mirror.push({ ...spec });
      } else if (e.type === 'toxic-removed') {
        mirror = mirror.filter((f) => f.name !== data.toxic);
      }
    },
  };
}
