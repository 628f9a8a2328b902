import { connect, type Socket } from 'node:net';
import { errorCode } from '../../simulators/common/errors.js';
import { hostPort } from '../../simulators/common/net.js';
import { Link, SOCKET_HIGH_WATER } from './link.js';
import { ReusedReads } from './reads.js';
import type { ToxicSpec } from './spec.js';
import type { ToxicConnection } from './stub.js';
import { isCleanupToxic, isConnectionToxic, type Toxic, type ToxicDefinition } from './toxic.js';

export type CloseReason = 'client' | 'upstream' | 'toxic' | 'stop';

/** A toxic as the relay holds it while active. */
export interface ActiveToxic {
  spec: ToxicSpec & { name: string };
  def: ToxicDefinition;
}

/** What a connection reports to its relay. */
export interface ConnectionEvents {
  /** `local` is the upstream socket's own address (`host:port`): what the simulator sees as its peer. */
  upstreamConnected(id: number, ms: number, local: string): void;
  upstreamError(id: number, code: string, message: string): void;
  toxicApplied(id: number, spec: ActiveToxic['spec']): void;
  bytes(direction: 'up' | 'down', n: number): void;
  closed(conn: RelayConnection, reason: CloseReason): void;
}

interface Attached {
  spec: ActiveToxic['spec'];
  toxic: Toxic;
}

/**
 * One client connection through the relay: dials the upstream, runs two links (upstream = client→server,
 * downstream = server→client), and carries the toxics rolled for it. Half-closes propagate each way; a
 * reset from one side resets the other.
 */
export class RelayConnection {
  readonly started = performance.now();
  bytesUp = 0;
  bytesDown = 0;
  private upstream: Socket | undefined;
  /** How the upstream socket is read (the relay opens it, so it can have `onread`). */
  private readonly upstreamReads = new ReusedReads();
  private links: { upstream: Link; downstream: Link } | undefined;
  private readonly attached: Attached[] = [];
  private readonly appliedNames = new Set<string>();
  private reason: CloseReason | undefined;
  private blackholed = false;
  private finished = false;
  private clientClosed = false;
  private upstreamClosed = true;

  constructor(
    readonly id: number,
    private readonly client: Socket,
    private readonly events: ConnectionEvents,
  ) {}

  /** Rolls the active toxics, then dials upstream (unless a toxic says otherwise). */
  start(toxics: readonly ActiveToxic[], upstream: { host: string; port: number }): void {
    const client = this.client;
    client.setNoDelay(true);
    client.on('error', (err) => this.onSocketError('client', err));
    client.on('end', () => this.firstCause('client'));
    client.on('close', () => {
      this.clientClosed = true;
      this.firstCause('client');
      if (!this.upstreamClosed && (this.blackholed || !this.links)) this.upstream?.destroy();
      this.maybeFinish();
    });
    for (const t of toxics) this.attach(t, true);
    if (this.client.destroyed || this.reason) return;
    if (this.blackholed) return;
    this.dial(upstream);
  }

  /** Rolls one toxic for this connection and attaches it when chosen (`fresh` at accept time). */
  attach(t: ActiveToxic, fresh: boolean, at?: { overall: number; inStream: number }): void {
    if (this.finished || this.client.destroyed) return;
    // Toxiproxy: a connection gets the toxic with probability `toxicity`.
    if (!(Math.random() < t.spec.toxicity)) return;
    const toxic = t.def.create(t.spec as never);
    const rec: Attached = { spec: t.spec, toxic };
    if (at === undefined) this.attached.push(rec);
    else this.attached.splice(at.overall, 0, rec);
    const conn = this.control(t.spec, fresh);
    if (isConnectionToxic(toxic)) toxic.onConnection(conn);
    if (this.links && !this.blackholed) {
      void this.links[t.spec.stream].add(t.spec.name, toxic, conn, at?.inStream);
    }
  }

  /** Takes a toxic off this connection (its held data flows on); resolves with its former index. */
  async detach(name: string): Promise<number> {
    const i = this.attached.findIndex((a) => a.spec.name === name);
    const rec = this.attached[i];
    if (!rec) return -1;
    this.attached.splice(i, 1);
    if (this.links) {
      const at = await this.links[rec.spec.stream].remove(name);
      if (at < 0 && isCleanupToxic(rec.toxic)) rec.toxic.cleanup();
    } else if (isCleanupToxic(rec.toxic)) rec.toxic.cleanup();
    return i;
  }

  /** Replaces a toxic in place (Toxiproxy's update: same position, rolled again). */
  async replace(t: ActiveToxic, previous: ActiveToxic['spec']): Promise<void> {
    const i = await this.detach(t.spec.name);
    const sameStream = previous.stream === t.spec.stream;
    const at =
      i >= 0 && sameStream ? { overall: i, inStream: this.streamIndex(t.spec.stream, i) } : undefined;
    this.attach(t, false, at);
  }

  /** Closes both sides now. */
  close(reason: CloseReason): void {
    this.firstCause(reason);
    this.links?.upstream.stop();
    this.links?.downstream.stop();
    this.client.destroy();
    this.upstream?.destroy();
  }

  private streamIndex(stream: 'upstream' | 'downstream', overall: number): number {
    return this.attached.slice(0, overall).filter((a) => a.spec.stream === stream).length;
  }

  private control(spec: ActiveToxic['spec'], fresh: boolean): ToxicConnection {
    return {
      id: this.id,
      fresh,
      applied: () => {
        if (this.appliedNames.has(spec.name)) return;
        this.appliedNames.add(spec.name);
        this.events.toxicApplied(this.id, spec);
      },
      close: () => this.close('toxic'),
      reset: () => {
        this.firstCause('toxic');
        this.links?.upstream.stop();
        this.links?.downstream.stop();
        if (!this.client.destroyed) this.client.resetAndDestroy();
        this.upstream?.destroy();
      },
      blackhole: () => this.blackhole(),
    };
  }

  private blackhole(): void {
    if (this.blackholed) return;
    this.blackholed = true;
    this.links?.upstream.stop();
    this.links?.downstream.stop();
    // Read and drop whatever the client sends; never answer. A live upstream stays open, unused.
    this.client.removeAllListeners('data');
    this.client.on('data', () => {});
    this.client.resume();
    this.upstreamReads.handler = undefined;
    this.upstream?.pause();
  }

  private dial(target: { host: string; port: number }): void {
    const t0 = performance.now();
    const up = connect({
      host: target.host,
      port: target.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: this.upstreamReads.onread,
      // Stream options reach the Duplex (the typings omit them); same mark as the accepted side.
      ...({ readableHighWaterMark: SOCKET_HIGH_WATER, writableHighWaterMark: SOCKET_HIGH_WATER } as object),
    });
    this.upstream = up;
    this.upstreamClosed = false;
    let connected = false;
    up.on('error', (err) => {
      this.events.upstreamError(this.id, errorCode(err) ?? 'ERROR', err.message);
      if (connected) this.onSocketError('upstream', err);
      else {
        // A refused (or unreachable) backend: the client sees its connection dropped, as through a relay.
        this.firstCause('upstream');
        this.client.destroy();
      }
    });
    up.on('end', () => this.firstCause('upstream'));
    up.on('close', () => {
      this.upstreamClosed = true;
      this.firstCause('upstream');
      this.maybeFinish();
    });
    up.once('connect', () => {
      connected = true;
      this.events.upstreamConnected(
        this.id,
        performance.now() - t0,
        hostPort(up.localAddress ?? '?', up.localPort ?? 0),
      );
      if (this.blackholed || this.reason) return;
      this.startLinks(up);
    });
  }

  private startLinks(up: Socket): void {
    const owner = (dir: 'up' | 'down') => ({
      delivered: (n: number) => {
        if (dir === 'up') this.bytesUp += n;
        else this.bytesDown += n;
        this.events.bytes(dir, n);
      },
      toxicEnd: () => this.close('toxic'),
      sinkLost: () => this.close(this.reason ?? (dir === 'up' ? 'upstream' : 'client')),
    });
    const links = {
      upstream: new Link(this.client, up, owner('up')),
      downstream: new Link(up, this.client, owner('down'), this.upstreamReads),
    };
    this.links = links;
    for (const a of this.attached) {
      void links[a.spec.stream].add(a.spec.name, a.toxic, this.control(a.spec, true));
    }
    links.upstream.start();
    links.downstream.start();
  }

  private onSocketError(side: 'client' | 'upstream', err: Error): void {
    this.firstCause(side);
    const other = side === 'client' ? this.upstream : this.client;
    if (!other || other.destroyed) return;
    this.links?.upstream.stop();
    this.links?.downstream.stop();
    // A reset on one side is passed on as a reset; other failures as a plain close.
    if (errorCode(err) === 'ECONNRESET') other.resetAndDestroy();
    else other.destroy();
  }

  private firstCause(reason: CloseReason): void {
    this.reason ??= reason;
  }

  private maybeFinish(): void {
    if (this.finished || !this.clientClosed || !this.upstreamClosed) return;
    this.finished = true;
    this.links?.upstream.stop();
    this.links?.downstream.stop();
    this.links?.upstream.cleanup();
    this.links?.downstream.cleanup();
    if (!this.links) for (const a of this.attached) if (isCleanupToxic(a.toxic)) a.toxic.cleanup();
    this.events.closed(this, this.reason ?? 'client');
  }
}
