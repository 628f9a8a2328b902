import { FieldlabError } from '../../../simulators/common/errors.js';
import { type LabEvent, SimulatorEvents } from '../../../simulators/common/events.js';
import { parseToxic, type RelayEvents, type RelayHandle } from '../../faults/relay.js';
import type { ToxicSpec, ToxicSpecInput } from '../../faults/spec.js';
import type { ControlChannel, ControlReply, ControlRequestBody, RelayStats } from './protocol.js';

/** Where a fault being put in place elsewhere is registered (the lab's `trackFault`). */
export interface FaultTracker {
  trackFault(applied: Promise<void>): void;
}

/** A relay in another process, as the lab holds it: a `RelayHandle`, fed with the worker's relay events. */
export interface RemoteRelay extends RelayHandle {
  /** An event of this relay from the worker (source `<target>-relay`): updates the mirror and re-emits it. */
  ingest(e: LabEvent): void;
  /** The worker's own figures and toxics, asked now (what `stats()` and `toxics()` then answer). */
  refresh(): Promise<{ toxics: ToxicSpec[]; stats: RelayStats }>;
}

export interface RemoteRelayOptions {
  /** The fault target (`sim` or `sim.endpoint`); the relay is `<target>-relay`. */
  target: string;
  /** The relay's public endpoint, as clients reach it. */
  endpoint: { host: string; port: number };
  channel: ControlChannel;
  faults: FaultTracker;
}

/** `RelayHandle`'s own messages for what it refuses at once (the worker's relay refuses the same). */
function noSuchToxic(relay: string, name: string, have: readonly ToxicSpec[]): FieldlabError {
  return new FieldlabError('E_NO_SUCH_TOXIC', `${relay}: no toxic named ${name}`, {
    hint: `toxics on this relay: ${have.map((x) => x.name).join(', ') || 'none'}`,
  });
}

/**
 * The lab's side of a relay running in a worker process (a container or a network namespace): every
 * operation travels over the worker's control channel. The synchronous ones are checked here first, as
 * the relay itself would (a bad toxic fails at once, naming the field), change a local mirror of the
 * toxics so `toxics()` answers at once, and register the request with the lab (`faultsApplied()` awaits
 * it, so a refusal by the worker surfaces before the client runs). `stats()` answers the last known
 * figures: those of the latest reply, moved on by the relay's events.
 */
export function remoteRelay(opts: RemoteRelayOptions): RemoteRelay {
  const { target, channel, faults } = opts;
  const name = `${target}-relay`;
  const events = new SimulatorEvents<RelayEvents>(name);
  let mirror: ToxicSpec[] = [];
  let figures: RelayStats = { connections: 0, active: 0, bytesUp: 0, bytesDown: 0 };
  // Requests not answered yet: a reply's toxics replace the mirror only when none is left, so a reply to
  // an earlier request never undoes a later change already mirrored.
  let inFlight = 0;

  const absorb = (reply: ControlReply): void => {
    if (reply.stats) figures = { ...reply.stats };
    if (reply.toxics && inFlight === 0) mirror = reply.toxics.map((t) => ({ ...t }));
  };

  const send = async (body: ControlRequestBody): Promise<ControlReply> => {
    inFlight++;
    let reply: ControlReply;
    try {
      reply = await channel.request(body);
    } finally {
      inFlight--;
    }
    absorb(reply);
    if (!reply.ok) {
      const { code, message, hint } = reply.error;
      throw new FieldlabError(code, message, hint ? { hint } : {});
    }
    return reply;
  };

  /** Sends a request from a synchronous method: the lab awaits it in `faultsApplied()`. */
  const sendTracked = (body: ControlRequestBody): void => {
    faults.trackFault(send(body).then(() => undefined));
  };

  const find = (toxic: string): ToxicSpec => {
    const t = mirror.find((x) => x.name === toxic);
    if (!t) throw noSuchToxic(name, toxic, mirror);
    return t;
  };

  return {
    name,
    endpoint: { ...opts.endpoint },
    events,
    addToxic(input: ToxicSpecInput): ToxicSpec {
      const spec = parseToxic(input, name);
      if (mirror.some((t) => t.name === spec.name)) {
        throw new FieldlabError('E_TOXIC_EXISTS', `${name}: a toxic named ${spec.name} already exists`, {
          hint: 'give the toxic another name, or update/remove the existing one',
        });
      }
      mirror.push({ ...spec });
      // The parsed spec, its name resolved: both sides call it the same.
      sendTracked({ op: 'add', target, toxic: { ...spec } });
      return { ...spec };
    },
    updateToxic(toxic: string, attrs: Partial<ToxicSpecInput>): ToxicSpec {
      const old = find(toxic);
      for (const field of ['type', 'name'] as const) {
        const v = (attrs as Record<string, unknown>)[field];
        if (v !== undefined && v !== old[field]) {
          throw new FieldlabError('E_BAD_TOXIC', `${name}: toxic.${field} cannot change (${toxic})`, {
            where: `toxic.${field}`,
            hint: 'remove the toxic and add a new one',
          });
        }
      }
      const spec = parseToxic({ ...old, ...attrs }, name);
      mirror = mirror.map((t) => (t.name === toxic ? { ...spec } : t));
      sendTracked({ op: 'update', target, name: toxic, attrs: { ...attrs } });
      return { ...spec };
    },
    removeToxic(toxic: string): void {
      find(toxic);
      mirror = mirror.filter((t) => t.name !== toxic);
      sendTracked({ op: 'remove', target, name: toxic });
    },
    toxics(): ToxicSpec[] {
      return mirror.map((t) => ({ ...t }));
    },
    setUpstream(upstream: { host: string; port: number }): void {
      if (!upstream.host || !Number.isInteger(upstream.port) || upstream.port < 1 || upstream.port > 65535) {
        throw new FieldlabError(
          'E_BAD_UPSTREAM',
          `${name}: upstream ${upstream.host}:${upstream.port} is not an address and port`,
          {
            hint: 'give a host and a port 1–65535',
          },
        );
      }
      sendTracked({ op: 'setUpstream', target, upstream: { host: upstream.host, port: upstream.port } });
    },
    stats(): RelayStats {
      return { ...figures };
    },
    async refresh() {
      const reply = await send({ op: 'list', target });
      return { toxics: reply.toxics ?? [], stats: reply.stats ?? { ...figures } };
    },
    ingest(e: LabEvent): void {
      if (e.source !== name) return;
      applyEvent(e);
      // The worker's own event, time and all: listeners see what the relay saw, when it saw it.
      events.emit(e.type, e.data);
      events.emit('event', e);
    },
    // The relay lives and dies with its worker (stopped with the simulator).
    stop: async () => {},
  };

  function applyEvent(e: LabEvent): void {
    const data = (e.data ?? {}) as Record<string, unknown>;
    switch (e.type) {
      case 'connection':
        figures.connections++;
        figures.active++;
        return;
      case 'closed':
        figures.active = Math.max(0, figures.active - 1);
        figures.bytesUp += typeof data.bytesUp === 'number' ? data.bytesUp : 0;
        figures.bytesDown += typeof data.bytesDown === 'number' ? data.bytesDown : 0;
        return;
      case 'toxic-added': {
        // Added on the worker by someone else (its HTTP API): mirrored too. One added here is there already.
        const spec = data.toxic as ToxicSpec | undefined;
        if (inFlight === 0 && spec?.name && !mirror.some((t) => t.name === spec.name))
          mirror.push({ ...spec });
        return;
      }
      case 'toxic-removed':
        // Expired (its `duration`) or stopped on the worker: gone here too. One removed here is gone already.
        if (inFlight === 0) mirror = mirror.filter((t) => t.name !== data.toxic);
        return;
    }
  }
}
