import { createServer, type Server, type Socket } from 'node:net';
import { FieldlabError } from '../../simulators/common/errors.js';
import { SimulatorEvents } from '../../simulators/common/events.js';
import { listen } from '../../simulators/common/net.js';
import { formatPath } from '../../simulators/common/options.js';
import { type ActiveToxic, type CloseReason, RelayConnection } from './connection.js';
import { SOCKET_HIGH_WATER } from './link.js';
import { toxicDefinition } from './registry.js';
import { type ToxicSpec, type ToxicSpecInput, toxicSpecSchema } from './spec.js';
import type { RelayControl } from './toxic.js';

/** Options of `startRelay`. */
export interface RelayOptions {
  name: string;
  listen: { host: string; port: number };
  upstream: { host: string; port: number };
  /** Toxics present from the start (`start` counts from the relay's start). */
  toxics?: ToxicSpecInput[];
}

/** Events a relay emits (also as `LabEvent`s on `'event'`). */
export type RelayEvents = {
  connection: { id: number; remote: string };
  /** `local`: the relay's side of the upstream connection, the simulator's `connection.remote`. */
  'upstream-connected': { id: number; ms: number; local: string };
  'upstream-error': { id: number; code: string; message: string };
  /** A toxic acts on a connection (emitted once per toxic and connection, when it first acts). */
  'toxic-applied': { id: number; toxic: string; type: ToxicSpec['type']; stream: ToxicSpec['stream'] };
  'toxic-added': { toxic: ToxicSpec };
  /** A toxic became active (at once, or after its `start`). */
  'toxic-started': { toxic: string };
  'toxic-removed': { toxic: string; reason: 'removed' | 'expired' | 'stop' };
  closed: { id: number; bytesUp: number; bytesDown: number; durationMs: number; reason: CloseReason };
  /** The listener is up (at start, and again after a `refuse` toxic is removed). */
  listening: { host: string; port: number };
  /** Listening again failed (the port was taken meanwhile). */
  'listen-error': { code: string; message: string };
};

/** A running relay (see `startRelay`). */
export interface RelayHandle {
  readonly name: string;
  readonly endpoint: { host: string; port: number };
  readonly events: SimulatorEvents<RelayEvents>;
  /** Validates (E_BAD_TOXIC naming the field), registers and schedules a toxic; E_TOXIC_EXISTS on a dup. */
  addToxic(spec: ToxicSpecInput): ToxicSpec;
  /** Changes a toxic's attributes in place (type and name stay); live connections roll it again. */
  updateToxic(name: string, attrs: Partial<ToxicSpecInput>): ToxicSpec;
  /** Removes a toxic; data it held flows on. E_NO_SUCH_TOXIC when unknown. */
  removeToxic(name: string): void;
  /** Toxics registered now, in order, with resolved names (scheduled ones not yet started included). */
  toxics(): ToxicSpec[];
  /** Where new connections go. */
  setUpstream(upstream: { host: string; port: number }): void;
  stats(): { connections: number; active: number; bytesUp: number; bytesDown: number };
  /** Closes the listener and every connection; idempotent. */
  stop(): Promise<void>;
}

type Named = ToxicSpec & { name: string };

interface Entry extends ActiveToxic {
  spec: Named;
  active: boolean;
  timers: NodeJS.Timeout[];
  undo: (() => void) | undefined;
}

/** Validates a toxic spec; E_BAD_TOXIC names the first bad field. */
export function parseToxic(input: unknown, owner: string): Named {
  const r = toxicSpecSchema.safeParse(input);
  if (!r.success) {
    const lines = r.error.issues.map((i) => `toxic.${formatPath(i.path)}: ${i.message}`);
    throw new FieldlabError('E_BAD_TOXIC', `${owner}: ${lines.join('; ')}`, {
      where: `toxic.${formatPath(r.error.issues[0]?.path ?? [])}`,
      hint: 'see harness/faults/spec.ts for the toxic types and their attributes',
    });
  }
  const spec = r.data;
  return { ...spec, name: spec.name ?? `${spec.type}_${spec.stream}` };
}

/**
 * Starts a userspace TCP relay (Toxiproxy for fieldlab): listens on `listen`, relays every connection to
 * `upstream`, and applies the toxics registered at the time, which can be added, updated and removed
 * while connections run.
 */
export async function startRelay(options: RelayOptions): Promise<RelayHandle> {
  const relay = new Relay(options);
  await relay.listenFirst();
  try {
    for (const t of options.toxics ?? []) relay.addToxic(t);
  } catch (err) {
    await relay.stop();
    throw err;
  }
  return relay;
}

class Relay implements RelayHandle {
  readonly name: string;
  readonly events: SimulatorEvents<RelayEvents>;
  endpoint: { host: string; port: number };
  private upstream: { host: string; port: number };
  private server: Server | undefined;
  private readonly entries: Entry[] = [];
  private readonly conns = new Set<RelayConnection>();
  private readonly closedWaiters = new Set<() => void>();
  private nextId = 1;
  private totals = { connections: 0, bytesUp: 0, bytesDown: 0 };
  private listenerHolds = 0;
  private stopped = false;
  private readonly control: RelayControl = {
    holdListener: () => {
      this.listenerHolds++;
      if (this.listenerHolds === 1) this.closeListener();
      let released = false;
      return () => {
        if (released) return;
        released = true;
        this.listenerHolds--;
        if (this.listenerHolds === 0 && !this.stopped) void this.relisten();
      };
    },
  };

  constructor(options: RelayOptions) {
    this.name = options.name;
    this.events = new SimulatorEvents<RelayEvents>(options.name);
    this.endpoint = { ...options.listen };
    this.upstream = { ...options.upstream };
  }

  async listenFirst(): Promise<void> {
    const server = this.newServer();
    this.endpoint.port = await listen(server, this.endpoint.host, this.endpoint.port);
    this.server = server;
    this.events.emitEvent('listening', { ...this.endpoint });
  }

  private newServer(): Server {
    const server = createServer(
      { allowHalfOpen: true, pauseOnConnect: true, highWaterMark: SOCKET_HIGH_WATER },
      (s) => this.onConnection(s),
    );
    server.on('error', () => {});
    return server;
  }

  private closeListener(): void {
    const s = this.server;
    this.server = undefined;
    // The listening socket closes at once (new SYNs get RST); the callback would wait for connections.
    s?.close();
  }

  private async relisten(): Promise<void> {
    if (this.server) return;
    const server = this.newServer();
    try {
      await listen(server, this.endpoint.host, this.endpoint.port);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      this.events.emitEvent('listen-error', { code: e.code ?? 'ERROR', message: e.message });
      return;
    }
    if (this.stopped || this.listenerHolds > 0) {
      server.close();
      return;
    }
    this.server = server;
    this.events.emitEvent('listening', { ...this.endpoint });
  }

  private onConnection(socket: Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    const id = this.nextId++;
    this.totals.connections++;
    const conn = new RelayConnection(id, socket, {
      upstreamConnected: (cid, ms, local) =>
        this.events.emitEvent('upstream-connected', { id: cid, ms, local }),
      upstreamError: (cid, code, message) =>
        this.events.emitEvent('upstream-error', { id: cid, code, message }),
      toxicApplied: (cid, spec) =>
        this.events.emitEvent('toxic-applied', {
          id: cid,
          toxic: spec.name,
          type: spec.type,
          stream: spec.stream,
        }),
      bytes: (dir, n) => {
        if (dir === 'up') this.totals.bytesUp += n;
        else this.totals.bytesDown += n;
      },
      closed: (c, reason) => {
        this.conns.delete(c);
        this.events.emitEvent('closed', {
          id: c.id,
          bytesUp: c.bytesUp,
          bytesDown: c.bytesDown,
          durationMs: performance.now() - c.started,
          reason,
        });
        if (this.conns.size === 0) for (const w of this.closedWaiters) w();
      },
    });
    this.conns.add(conn);
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.events.emitEvent('connection', { id, remote });
    conn.start(
      this.entries.filter((e) => e.active),
      this.upstream,
    );
  }

  addToxic(input: ToxicSpecInput): ToxicSpec {
    const spec = parseToxic(input, this.name);
    if (this.entries.some((e) => e.spec.name === spec.name)) {
      throw new FieldlabError('E_TOXIC_EXISTS', `${this.name}: a toxic named ${spec.name} already exists`, {
        hint: 'give the toxic another name, or update/remove the existing one',
      });
    }
    const entry: Entry = {
      spec,
      def: toxicDefinition(spec.type),
      active: false,
      timers: [],
      undo: undefined,
    };
    this.entries.push(entry);
    this.events.emitEvent('toxic-added', { toxic: { ...spec } });
    this.schedule(entry);
    return { ...spec };
  }

  private schedule(entry: Entry): void {
    const start = entry.spec.start ?? 0;
    if (start > 0) entry.timers.push(setTimeout(() => this.activate(entry), start));
    else this.activate(entry);
  }

  private activate(entry: Entry): void {
    if (this.stopped || !this.entries.includes(entry) || entry.active) return;
    entry.active = true;
    entry.undo = entry.def.activate?.(this.control, entry.spec as never);
    for (const c of this.conns) c.attach(entry, false);
    this.events.emitEvent('toxic-started', { toxic: entry.spec.name });
    const duration = entry.spec.duration;
    if (duration !== undefined) {
      entry.timers.push(setTimeout(() => this.remove(entry, 'expired'), duration));
    }
  }

  private remove(entry: Entry, reason: 'removed' | 'expired' | 'stop'): void {
    const i = this.entries.indexOf(entry);
    if (i < 0) return;
    this.entries.splice(i, 1);
    for (const t of entry.timers) clearTimeout(t);
    entry.undo?.();
    if (entry.active) for (const c of this.conns) void c.detach(entry.spec.name);
    this.events.emitEvent('toxic-removed', { toxic: entry.spec.name, reason });
  }

  private entry(name: string): Entry {
    const e = this.entries.find((x) => x.spec.name === name);
    if (!e) {
      throw new FieldlabError('E_NO_SUCH_TOXIC', `${this.name}: no toxic named ${name}`, {
        hint: `toxics on this relay: ${this.entries.map((x) => x.spec.name).join(', ') || 'none'}`,
      });
    }
    return e;
  }

  updateToxic(name: string, attrs: Partial<ToxicSpecInput>): ToxicSpec {
    const entry = this.entry(name);
    const old = entry.spec;
    for (const field of ['type', 'name'] as const) {
      const v = (attrs as Record<string, unknown>)[field];
      if (v !== undefined && v !== old[field]) {
        throw new FieldlabError('E_BAD_TOXIC', `${this.name}: toxic.${field} cannot change (${name})`, {
          where: `toxic.${field}`,
          hint: 'remove the toxic and add a new one',
        });
      }
    }
    const spec = parseToxic({ ...old, ...attrs }, this.name);
    entry.spec = spec;
    const previousUndo = entry.undo;
    if (entry.active) {
      entry.undo = entry.def.activate?.(this.control, spec as never);
      previousUndo?.();
      for (const c of this.conns) void c.replace(entry, old);
    }
    if ('start' in attrs || 'duration' in attrs) {
      for (const t of entry.timers) clearTimeout(t);
      entry.timers = [];
      if (!entry.active) this.schedule(entry);
      else if (spec.duration !== undefined) {
        entry.timers.push(setTimeout(() => this.remove(entry, 'expired'), spec.duration));
      }
    }
    return { ...spec };
  }

  removeToxic(name: string): void {
    this.remove(this.entry(name), 'removed');
  }

  toxics(): ToxicSpec[] {
    return this.entries.map((e) => ({ ...e.spec }));
  }

  setUpstream(upstream: { host: string; port: number }): void {
    this.upstream = { ...upstream };
  }

  stats(): { connections: number; active: number; bytesUp: number; bytesDown: number } {
    return { ...this.totals, active: this.conns.size };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const e of this.entries) for (const t of e.timers) clearTimeout(t);
    const server = this.server;
    this.server = undefined;
    const serverClosed = server
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : Promise.resolve();
    const allClosed =
      this.conns.size === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => this.closedWaiters.add(resolve));
    for (const c of [...this.conns]) c.close('stop');
    await allClosed;
    await serverClosed;
  }
}
