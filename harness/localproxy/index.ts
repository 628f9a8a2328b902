import { createServer, type Server, type Socket } from 'node:net';
import { FieldlabError } from '../../simulators/common/errors.js';
import { SimulatorEvents } from '../../simulators/common/events.js';
import { ConnectionTracker, closeServer, listen } from '../../simulators/common/net.js';
import { parseOptions } from '../../simulators/common/options.js';
import type { LocalProxyEvents, LocalProxyStats } from './events.js';
import {
  type LocalProxyOptions,
  localProxyOptionsSchema,
  mappingKey,
  parseDestinationApps,
  parseSourcePorts,
  type ResolvedLocalProxyOptions,
  resolveEndpoint,
  type ServiceEndpoint,
  SUBPROTOCOLS,
} from './options.js';
import { mappingError, Session } from './session.js';
import { type Attempt, AttemptError, attempt, loadCaPath, withSystemRoots } from './transport.js';

/**
 * A TypeScript localproxy, wire-compatible with the AWS localproxy (aws-samples/
 * aws-iot-securetunneling-localproxy): source mode listens locally and carries each TCP connection over
 * the tunnel WebSocket; destination mode connects to the local app for each stream the source starts.
 *
 * Lifecycle (as the AWS localproxy): connect → wait for SERVICE_IDS → (source) listen → relay. A dropped
 * WebSocket reconnects with the same token and client token; a 4xx handshake ends it; a 5xx, TLS or TCP
 * failure retries every `retryDelayMs`; a close frame from the service ends it.
 */

export type { CloseReason, LocalProxyEvents, LocalProxyStats } from './events.js';
export {
  type LocalProxyOptions,
  localProxyOptionsSchema,
  parseDestinationApps,
  parseSourcePorts,
  type ResolvedLocalProxyOptions,
  resolveEndpoint,
  SUBPROTOCOLS,
} from './options.js';
export { AttemptError, loadCaPath } from './transport.js';

/** A bound source listener. */
export interface LocalProxyListener {
  serviceId: string;
  host: string;
  port: number;
}

/** How a localproxy ended (the `closed` event's data). */
export type LocalProxyExit = LocalProxyEvents['closed'];

export interface LocalProxyHandle {
  readonly name: string;
  readonly mode: 'source' | 'destination';
  /** Source listeners (empty in destination mode, and until SERVICE_IDS arrived). */
  readonly listeners: readonly LocalProxyListener[];
  readonly events: SimulatorEvents<LocalProxyEvents>;
  stats(): LocalProxyStats;
  /**
   * Resolves once connected and (source) listening; rejects with a `FieldlabError` when it ends first
   * (E_TUNNEL_TOKEN_USED, E_TUNNEL_HANDSHAKE_REJECTED, retries exhausted...).
   */
  readonly ready: Promise<void>;
  /** Resolves when the localproxy ends (stop, close frame, 4xx, retries exhausted). */
  readonly done: Promise<LocalProxyExit>;
  /** Closes the WebSocket (close 1000), the listeners and every local connection. Idempotent. */
  stop(): Promise<void>;
}

export interface StartLocalProxyOptions {
  /**
   * Resolve only once connected and (source) listening; a fatal first failure rejects with a
   * `FieldlabError` (E_TUNNEL_TOKEN_USED...). Default true. With false, resolves at once.
   */
  waitReady?: boolean;
}

class LocalProxy implements LocalProxyHandle {
  readonly name: string;
  readonly mode: 'source' | 'destination';
  readonly events: SimulatorEvents<LocalProxyEvents>;
  readonly listeners: LocalProxyListener[] = [];
  readonly done: Promise<LocalProxyExit>;
  readonly ready: Promise<void>;
  private resolveDone!: (exit: LocalProxyExit) => void;
  private resolveReady!: () => void;
  private rejectReady!: (err: Error) => void;
  private readonly st: LocalProxyStats = {
    state: 'connecting',
    connects: 0,
    failures: 0,
    tcpConnections: 0,
    activeTcpConnections: 0,
    bytesToService: 0,
    bytesFromService: 0,
    wsMessagesOut: 0,
    wsMessagesIn: 0,
    tunnelMessagesOut: 0,
    tunnelMessagesIn: 0,
    dropped: 0,
    pings: 0,
    pongs: 0,
    localReadsPaused: 0,
    localWritesBlocked: 0,
  };
  private readonly endpoint: ServiceEndpoint;
  private readonly ports: Map<string, number>;
  private readonly servers: Array<{ server: Server; tracker: ConnectionTracker }> = [];
  private ca: string[] | undefined;
  private session: Session | undefined;
  private ws: Attempt | undefined;
  /** Source connections accepted while no session is up: started when one is. */
  private readonly waiting: Array<{ serviceId: string; socket: Socket }> = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private failuresInRow = 0;
  private attempts = 0;
  private isReady = false;
  private finished = false;
  private stopping: Promise<void> | undefined;
  private readonly abort = new AbortController();

  constructor(private readonly o: ResolvedLocalProxyOptions) {
    this.name = o.name;
    this.mode = o.mode;
    this.events = new SimulatorEvents<LocalProxyEvents>(o.name);
    this.endpoint = resolveEndpoint(o);
    this.ports = parseSourcePorts(o.sourceListenPort);
    const dests = parseDestinationApps(o.destinationApp, o.bindAddress);
    if (o.mode === 'destination' && dests.size === 0) {
      throw new FieldlabError('E_BAD_OPTION', 'localproxy: destination mode needs -d/--destination-app', {
        hint: 'e.g. -d 127.0.0.1:22 or -d ssh=127.0.0.1:22,http=127.0.0.1:80',
      });
    }
    this.dests = dests;
    this.done = new Promise((r) => {
      this.resolveDone = r;
    });
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // Nobody may be waiting on `ready` (waitReady false): no unhandled rejection.
    this.ready.catch(() => {});
  }

  private readonly dests: ReturnType<typeof parseDestinationApps>;

  stats(): LocalProxyStats {
    return {
      ...this.st,
      localReadsPaused: this.session?.outbox.pausedCount ?? 0,
      localWritesBlocked: this.session?.blockedCount ?? 0,
    };
  }

  async start(): Promise<void> {
    if (this.o.caPath) {
      try {
        this.ca = withSystemRoots([...(await loadCaPath(this.o.caPath)), ...(this.o.ca ?? [])]);
      } catch (err) {
        throw new FieldlabError('E_BAD_OPTION', `localproxy: cannot read CA path ${this.o.caPath}`, {
          cause: err,
          hint: 'give a directory of PEM certificates (openssl rehash <dir>)',
        });
      }
    } else if (this.o.ca) this.ca = withSystemRoots(this.o.ca);
    void this.connect();
  }

  private async connect(): Promise<void> {
    if (this.finished) return;
    this.attempts++;
    let a: Attempt;
    try {
      a = await attempt({
        endpoint: this.endpoint,
        mode: this.mode,
        subprotocol: SUBPROTOCOLS[this.o.subprotocol],
        accessToken: this.o.accessToken,
        clientToken: this.o.clientToken,
        httpsProxy: this.o.httpsProxy,
        ca: this.ca,
        noSslHostVerify: this.o.noSslHostVerify,
        timeoutMs: this.o.connectTimeoutMs,
        zeroMask: this.o.zeroMask,
        signal: this.abort.signal,
      });
    } catch (err) {
      this.failed(err);
      return;
    }
    if (this.finished) {
      a.ws.terminate();
      return;
    }
    this.failuresInRow = 0;
    this.ws = a;
    this.st.connects++;
    this.st.state = 'connected';
    const reconnect = this.st.connects > 1;
    this.events.emitEvent('connected', {
      url: a.url,
      protocol: a.protocol,
      ...(a.channelId ? { channelId: a.channelId } : {}),
      attempt: this.attempts,
      reconnect,
    });
    const session = new Session(
      a.ws,
      a.socket,
      {
        mode: this.mode,
        version: this.o.destinationClientType,
        destinations: this.dests,
        highWaterMark: this.o.highWaterMark,
        zeroMask: this.o.zeroMask,
      },
      this.events,
      this.st,
      (ids) => void this.onServiceIds(ids),
    );
    this.session = session;
    a.ws.on('pong', () => this.st.pongs++);
    a.ws.on('error', () => {});
    a.ws.on('close', (code, reason) => this.onClose(session, code, reason.toString()));
    this.pingTimer = setInterval(() => {
      if (a.ws.readyState === a.ws.OPEN) {
        a.ws.ping();
        this.st.pings++;
      }
    }, this.o.pingIntervalMs);
    this.pingTimer.unref();
    // A 1.0 session gets no SERVICE_IDS: the source listens right away. (`-y V1` on 3.0 still waits.)
    if (this.o.subprotocol === 1) await this.onServiceIds([]);
  }

  /** V2/V3 guides: nothing happens until SERVICE_IDS; then the source binds its listeners. */
  private async onServiceIds(ids: string[]): Promise<void> {
    if (this.mode === 'source' && this.servers.length === 0) {
      try {
        await this.bindListeners(ids);
      } catch (err) {
        const e = err as FieldlabError;
        this.finish({ reason: 'config', message: e.message, code: e.code ?? 'E_LOCALPROXY' }, e);
        return;
      }
    } else if (this.mode === 'destination' && this.o.subprotocol >= 2) {
      for (const id of this.dests.keys()) {
        if (id !== '' && !ids.includes(id)) {
          this.events.emitEvent('warning', {
            message: `-d service "${id}" is not in the tunnel (${ids.join(', ')})`,
          });
        }
      }
      for (const id of ids) {
        if (mappingKey(this.dests, id) === undefined) {
          this.events.emitEvent('warning', {
            message: `service "${id}" has no -d target: its streams will be reset`,
          });
        }
      }
    }
    if (this.finished) return;
    const session = this.session;
    if (session && this.mode === 'source') {
      for (const w of this.waiting.splice(0)) {
        if (!w.socket.destroyed) session.sourceAccept(w.serviceId, w.socket);
      }
    }
    if (!this.isReady) {
      this.isReady = true;
      this.resolveReady();
    }
  }

  private async bindListeners(ids: string[]): Promise<void> {
    const v1 = this.o.destinationClientType === 1;
    const plan: Array<{ serviceId: string; port: number }> = [];
    // As localproxy: a source without -s listens on a free port for each of the tunnel's services.
    const ports =
      this.ports.size > 0
        ? this.ports
        : new Map((v1 || ids.length === 0 ? [''] : ids).map((id) => [id, 0] as const));
    for (const [id, port] of ports) {
      let serviceId = id;
      if (v1) {
        if (ports.size > 1) throw mappingError('V1 carries one service: give a single -s port');
        serviceId = '';
      } else if (id === '') {
        // As localproxy: an unnamed port takes the tunnel's only service; with none or several its
        // streams start without a service id (V2 guide: allowed) and the destination picks.
        serviceId = ids.length === 1 ? (ids[0] as string) : '';
        if (ids.length > 1) {
          this.events.emitEvent('warning', {
            message: `-s ${port} has no service id and the tunnel has ${ids.length} (${ids.join(', ')}): its streams start without one`,
          });
        }
      } else if (!ids.includes(id)) {
        this.events.emitEvent('warning', {
          message: `-s service "${id}" is not in the tunnel (${ids.join(', ')}); not listening for it`,
        });
        continue;
      }
      plan.push({ serviceId, port });
    }
    if (plan.length === 0) throw mappingError(`no -s port matches the tunnel's services (${ids.join(', ')})`);
    const host = this.o.bindAddress ?? '127.0.0.1';
    for (const p of plan) {
      const tracker = new ConnectionTracker();
      const server = createServer({ noDelay: true }, (socket) => {
        tracker.track(socket);
        socket.on('error', () => {});
        this.accept(p.serviceId, socket);
      });
      this.servers.push({ server, tracker });
      const port = await listen(server, host, p.port);
      this.listeners.push({ serviceId: p.serviceId, host, port });
      this.events.emitEvent('listening', { serviceId: p.serviceId, host, port });
    }
  }

  private accept(serviceId: string, socket: Socket): void {
    if (this.finished) {
      socket.destroy();
      return;
    }
    const s = this.session;
    if (s && this.ws?.ws.readyState === this.ws?.ws.OPEN && s.serviceIds !== undefined) {
      s.sourceAccept(serviceId, socket);
      return;
    }
    if (s && this.o.subprotocol === 1) {
      s.sourceAccept(serviceId, socket);
      return;
    }
    // Reconnecting: hold the connection (paused) until the next session is up.
    socket.pause();
    this.waiting.push({ serviceId, socket });
  }

  private onClose(session: Session, code: number, reason: string): void {
    clearInterval(this.pingTimer);
    session.end();
    if (this.session === session) this.session = undefined;
    this.ws = undefined;
    if (this.finished) return;
    // RFC 6455 §7.1.5: 1006 = closed without a close frame (a drop): reconnect. A close frame ends it.
    if (code !== 1006) {
      this.finish({
        reason: 'close-frame',
        message: `the tunnel service closed the WebSocket: ${code}${reason ? ` ${reason}` : ''}`,
        code: 'E_TUNNEL_CLOSED',
        closeCode: code,
        ...(/closed|lifetime/i.test(reason) ? { failureClass: 'tunnel.closed' as const } : {}),
      });
      return;
    }
    this.st.failures++;
    this.st.state = 'reconnecting';
    this.events.emitEvent('reconnecting', {
      attempt: this.attempts + 1,
      delayMs: 0,
      reason: 'the WebSocket dropped without a close frame',
      failureClass: 'tcp.reset',
    });
    void this.connect();
  }

  private failed(err: unknown): void {
    if (this.finished) return;
    this.st.failures++;
    const e =
      err instanceof AttemptError
        ? err
        : new AttemptError(String((err as Error)?.message ?? err), 'E_TUNNEL_CONNECT', true, 'client.error');
    if (!e.retry) {
      this.finish(
        {
          reason: 'handshake-rejected',
          message: e.message,
          code: e.code,
          ...(e.status !== undefined ? { status: e.status } : {}),
          failureClass: e.failureClass,
        },
        new FieldlabError(e.code, e.message, e.hint ? { hint: e.hint } : {}),
      );
      return;
    }
    this.failuresInRow++;
    if (this.failuresInRow > this.o.maxRetries) {
      const message = `gave up after ${this.failuresInRow} failed attempts; last: ${e.message}`;
      this.finish(
        {
          reason: 'retries-exhausted',
          message,
          code: e.code,
          ...(e.status !== undefined ? { status: e.status } : {}),
          failureClass: e.failureClass,
        },
        new FieldlabError(e.code, message, e.hint ? { hint: e.hint } : {}),
      );
      return;
    }
    this.st.state = 'reconnecting';
    this.events.emitEvent('reconnecting', {
      attempt: this.attempts + 1,
      delayMs: this.o.retryDelayMs,
      reason: e.message,
      failureClass: e.failureClass,
    });
    this.retryTimer = setTimeout(() => void this.connect(), this.o.retryDelayMs);
  }

  private finish(exit: LocalProxyExit, err?: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.st.state = 'closed';
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    this.abort.abort();
    this.rejectReady(err ?? new FieldlabError(exit.code ?? 'E_LOCALPROXY', exit.message));
    this.stopping = this.teardown();
    void this.stopping.then(() => {
      this.events.emitEvent('closed', exit);
      this.resolveDone(exit);
    });
  }

  private async teardown(): Promise<void> {
    this.session?.end();
    const ws = this.ws?.ws;
    if (ws && (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING)) {
      const closed = new Promise<void>((r) => ws.once('close', () => r()));
      ws.close(1000, 'localproxy stopping');
      const timer = setTimeout(() => ws.terminate(), 1000);
      await closed;
      clearTimeout(timer);
    }
    for (const w of this.waiting.splice(0)) w.socket.destroy();
    await Promise.all(this.servers.map(({ server, tracker }) => closeServer(server, tracker)));
  }

  stop(): Promise<void> {
    this.finish({ reason: 'stopped', message: 'stopped' });
    return this.done.then(() => undefined);
  }
}

/**
 * Starts a localproxy. By default resolves once connected and, in source mode, listening (see
 * `handle.listeners`); rejects with a `FieldlabError` when the first connection fails for good
 * (E_TUNNEL_TOKEN_USED, E_TUNNEL_HANDSHAKE_REJECTED, retries exhausted...).
 */
export async function startLocalProxy(
  options: LocalProxyOptions,
  start: StartLocalProxyOptions = {},
): Promise<LocalProxyHandle> {
  const opts = parseOptions(localProxyOptionsSchema, options, 'localproxy');
  const proxy = new LocalProxy(opts);
  await proxy.start();
  if (start.waitReady !== false) {
    try {
      await proxy.ready;
    } catch (err) {
      await proxy.done;
      throw err;
    }
  }
  return proxy;
}
