/**
 * proxy-chain's `Server`, specialised for the lab. proxy-chain does the HTTP parsing, Basic credential
 * parsing, 400 replies, plain-HTTP forwarding (absolute-URI requests), the TLS listener and the
 * connection registry; this class adds, in `prepareRequestFunction`, the auth check, the Squid-like
 * policy, the destination list, the target map and the upstream choice, and does CONNECT tunnels
 * itself, because proxy-chain's direct tunnel can neither rewrite the target nor answer 502/504 when the
 * destination fails.
 *
 * 407 and 403 are answered here too, not by proxy-chain: its `sendSocketResponse` lower-cases header
 * names and always ends the connection (`connection: close`), while Squid answers `Proxy-Authenticate`
 * with its usual casing and keeps the connection, and clients that send the authenticated CONNECT on the
 * same socket after a 407 fail against anything else (see common/connect-reply.ts).
 */
import { Agent, type ClientRequestArgs, type IncomingMessage, type ServerResponse } from 'node:http';
import type { LookupFunction } from 'node:net';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type PrepareRequestFunctionOpts,
  type PrepareRequestFunctionResult,
  RequestError,
  Server,
} from 'proxy-chain';
import { answerConnect, wasHandedBack } from '../common/connect-reply.js';
import { type DestinationPolicy, E_DESTINATION_DENIED } from '../common/destinations.js';
import { alertFromError, errorCode, hostPort, preciseNow, type SimulatorEvents } from '../common/index.js';
import { formatTarget, hostMatcher, parseTarget, type Target, type TargetMap } from '../common/targets.js';
import { type Credentials, checkCredentials } from './auth.js';
import type { ConnectProxyEvents, ConnectProxyStats } from './events.js';
import type { Policy } from './policy.js';
import { type FarSideFailure, openFarSide, splice } from './tunnel.js';

/** What the lab decided for one request, handed from prepareRequestFunction to the tunnel. */
interface Route {
  destination: Target;
  upstream?: URL;
  /** The address the destination check resolved the far host to: the tunnel connects there. */
  address?: string;
}

/** Per client connection. */
interface ConnRecord {
  id: string;
  acceptedAt: number;
  authAt?: number;
  upstreamAt?: number;
  target?: string;
  mappedTarget?: string;
  rule?: string;
  /** Destination sockets this connection opened (their byte counters stay readable after close). */
  far: Socket[];
}

export interface LabServerConfig {
  host: string;
  port: number;
  realm: string;
  users: readonly Credentials[] | undefined;
  policy: Policy;
  map: TargetMap;
  upstream: string | undefined;
  upstreamRules: ReadonlyArray<{ hosts: string[]; upstream: string | null }>;
  tls: { certPem: string; keyPem: string } | undefined;
  connectTimeoutMs: number;
  /** Where the proxy may connect; its `lookup` is the one every onward connection resolves with. */
  destinations: DestinationPolicy;
  events: SimulatorEvents<ConnectProxyEvents>;
}

/** `Server:` on the answers the lab proxy writes itself. */
const SERVER_NAME = 'fieldlab-connect-proxy';

type Counts = Omit<ConnectProxyStats, 'active' | 'activeTargets'>;

const records = new WeakMap<Duplex, ConnRecord>();
/** Plain HTTP requests' responses, so a 407/403 can be answered through Node's keep-alive handling. */
const responses = new WeakMap<IncomingMessage, ServerResponse>();

export class LabProxyServer extends Server {
  readonly counts: Counts = {
    connections: 0,
    allowed: 0,
    denied: 0,
    authFailures: 0,
    upstreamErrors: 0,
    protocolErrors: 0,
    bytesUp: 0,
    bytesDown: 0,
  };
  /** Destination sockets of tunnels, destroyed on stop. */
  private readonly far = new Set<Socket>();
  private readonly open = new Set<Socket>();
  private readonly agent: Agent;
  private readonly upstreamFor: Array<{ match: (h: string) => string | undefined; upstream: string | null }>;
  private nextId = 1;

  private readonly cfg: LabServerConfig;

  constructor(cfg: LabServerConfig) {
    // `this` does not exist before super(): the hook reaches the instance through a holder.
    const holder: { self?: LabProxyServer } = {};
    const prepareRequestFunction = (o: PrepareRequestFunctionOpts) => holder.self!.prepare(o);
    if (cfg.tls) {
      super({
        host: cfg.host,
        port: cfg.port,
        authRealm: cfg.realm,
        serverType: 'https',
        httpsOptions: { cert: cfg.tls.certPem, key: cfg.tls.keyPem },
        prepareRequestFunction,
      });
    } else {
      super({ host: cfg.host, port: cfg.port, authRealm: cfg.realm, prepareRequestFunction });
    }
    holder.self = this;
    this.cfg = cfg;
    this.agent = labAgent(cfg.connectTimeoutMs, cfg.destinations.lookup, (...a) => this.upstreamFailed(...a));
    this.upstreamFor = cfg.upstreamRules.map((r) => ({ match: hostMatcher(r.hosts), upstream: r.upstream }));
  }

  get active(): number {
    return this.open.size;
  }

  get activeTargets(): number {
    return this.far.size;
  }

  /** Client bytes of connections still open, for live totals. */
  liveBytes(): { up: number; down: number } {
    let up = 0;
    let down = 0;
    for (const s of this.open) {
      up += s.bytesRead;
      down += s.bytesWritten;
    }
    return { up, down };
  }

  override onConnection(socket: Socket): void {
    // The same client connection after a 407/403 answer: already registered and counted.
    if (wasHandedBack(socket)) return;
    const rec: ConnRecord = {
      id: `c${this.nextId++}`,
      acceptedAt: preciseNow(),
      far: [],
    };
    records.set(socket, rec);
    this.counts.connections++;
    this.open.add(socket);
    socket.setNoDelay(true);
    // Registered before proxy-chain's own close listener, so its registry still has the socket.
    socket.once('close', () => this.closed(socket, rec));
    super.onConnection(socket);
    this.cfg.events.emitEvent('connection', { id: rec.id, remote: remoteOf(socket) });
  }

  private closed(socket: Socket, rec: ConnRecord): void {
    this.open.delete(socket);
    const id = (socket as { proxyChainId?: number }).proxyChainId;
    const fwd = id === undefined ? undefined : this.getConnectionStats(id);
    let targetBytesOut = fwd?.trgTxBytes ?? 0;
    let targetBytesIn = fwd?.trgRxBytes ?? 0;
    for (const f of rec.far) {
      targetBytesOut += f.bytesWritten;
      targetBytesIn += f.bytesRead;
    }
    this.counts.bytesUp += socket.bytesRead;
    this.counts.bytesDown += socket.bytesWritten;
    const now = preciseNow();
    const rel = (t: number | undefined) => (t === undefined ? undefined : t - rec.acceptedAt);
    const authMs = rel(rec.authAt);
    const upstreamMs = rel(rec.upstreamAt);
    this.cfg.events.emitEvent('closed', {
      id: rec.id,
      bytesIn: socket.bytesRead,
      bytesOut: socket.bytesWritten,
      targetBytesOut,
      targetBytesIn,
      durationMs: now - rec.acceptedAt,
      ...(rec.target ? { target: rec.target } : {}),
      ...(rec.mappedTarget ? { mappedTarget: rec.mappedTarget } : {}),
      ...(rec.rule ? { rule: rec.rule } : {}),
      timings: {
        acceptedAt: rec.acceptedAt,
        ...(authMs === undefined ? {} : { authMs }),
        ...(upstreamMs === undefined ? {} : { upstreamMs }),
        closedMs: now - rec.acceptedAt,
      },
    });
  }

  /** Auth, then policy (on the target the client asked for), then map and upstream choice. */
  private async prepare(o: PrepareRequestFunctionOpts): Promise<PrepareRequestFunctionResult> {
    const { events } = this.cfg;
    const rec = records.get(o.request.socket);
    const host = o.hostname.replace(/^\[|\]$/g, '').toLowerCase();
    const asked: Target = { host, port: o.port };
    const target = formatTarget(asked);
    const kind = o.isHttp ? 'HTTP' : 'CONNECT';
    const method = o.request.method ?? kind;
    if (rec) rec.target = target;

    // RFC 9110 §11.7.1: no or bad Proxy-Authorization → 407 with a Proxy-Authenticate challenge.
    if (this.cfg.users) {
      const given = o.request.headers['proxy-authorization'] !== undefined;
      if (!given || !checkCredentials(this.cfg.users, o.username, o.password)) {
        const reason = given ? 'wrong' : 'missing';
        this.counts.authFailures++;
        events.emitEvent('auth-required', {
          reason,
          status: 407,
          target,
          ...(given && o.username ? { username: o.username } : {}),
        });
        return {
          requestAuthentication: true,
          failMsg: `fieldlab: proxy authentication required (${reason} credentials)\n`,
        };
      }
    }
    if (rec) rec.authAt = preciseNow();

    const decision = this.cfg.policy.evaluate(kind, host, o.port);
    if (rec) rec.rule = decision.label;
    if (decision.action === 'deny') {
      this.counts.denied++;
      const body = `denied by rule ${decision.label}: ${decision.reason}`;
      events.emitEvent('connect-denied', { target, rule: decision.label, status: 403, method, reason: body });
      throw new RequestError(`${body}\n`, 403);
    }

    const destination = this.cfg.map.get(target) ?? asked;
    const mappedTarget = formatTarget(destination);
    if (rec) rec.mappedTarget = mappedTarget;
    const upstream = this.pickUpstream(host);

    // The lab's own limit, after the scenario's policy: where this proxy itself would connect.
    const far = upstream ? upstreamTarget(upstream) : destination;
    const verdict = await this.cfg.destinations.check(far.host);
    if (verdict.action === 'deny') {
      if (rec) rec.rule = 'destinations';
      throw this.destinationDenied(target, formatTarget(far), method, verdict.reason);
    }
    this.counts.allowed++;
    events.emitEvent('connect-allowed', {
      target,
      rule: decision.label,
      method,
      ...(mappedTarget !== target ? { mappedTarget } : {}),
      ...(upstream ? { upstream: redact(upstream) } : {}),
    });
    if (o.isHttp && mappedTarget !== target && o.request.url) {
      // proxy-chain forwards to request.url (or sends it to the upstream); Host keeps the original name.
      const u = new URL(o.request.url);
      u.host = mappedTarget;
      o.request.url = u.href;
    }
    const route: Route = {
      destination,
      ...(upstream ? { upstream: new URL(upstream) } : {}),
      ...(verdict.action === 'allow' && verdict.address ? { address: verdict.address } : {}),
    };
    return { upstreamProxyUrl: upstream ?? null, customTag: route, httpAgent: this.agent };
  }

  /** Counts and reports a destination outside the list; the error is the 403 the client gets. */
  private destinationDenied(target: string, destination: string, method: string, why: string): RequestError {
    this.counts.denied++;
    const allowed = this.cfg.destinations.describe();
    const body =
      `fieldlab: ${destination} is not a destination this proxy may reach: ${why}. ` +
      `It may reach: ${allowed}. To allow more, add the name, address or CIDR to the proxy's ` +
      `destinations option (or "any"); in a lab, map the name to a lab host with the proxy's map.`;
    this.cfg.events.emitEvent('destination-denied', {
      target,
      destination,
      method,
      status: 403,
      allowed,
      reason: body,
    });
    return new RequestError(`${body}\n`, 403);
  }

  private pickUpstream(host: string): string | undefined {
    for (const r of this.upstreamFor) {
      if (r.match(host) !== undefined) return r.upstream ?? undefined;
    }
    return this.cfg.upstream;
  }

  /** CONNECT: proxy-chain's checks (auth, policy via prepare), then our tunnel, direct or chained. */
  override async onConnect(request: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    // RFC 9110 §9.3.6, RFC 9112 §3.2.3: a CONNECT target is authority-form, host:port, nothing else (no
    // userinfo, path, query or fragment; proxy-chain's URL parsing would take them).
    if (!parseTarget(request.url)) {
      const why = `CONNECT target "${request.url}" is not host:port (RFC 9112 §3.2.3 authority-form)`;
      this.failRequest(request, new RequestError(why, 400));
      return;
    }
    let route: Route;
    try {
      const handlerOpts = await this.prepareRequestHandling(request);
      route = handlerOpts.customTag as Route;
    } catch (err) {
      const e = this.normalizeHandlerError(err as NodeJS.ErrnoException);
      const status = e instanceof RequestError ? e.statusCode : 0;
      if (status === 407 || status === 403) {
        answerConnect(this.server, request, socket, head, {
          status,
          headers: status === 407 ? [['Proxy-Authenticate', `Basic realm="${this.cfg.realm}"`]] : [],
          body: e.message,
          server: SERVER_NAME,
          connectionEvent: this.cfg.tls ? 'secureConnection' : 'connection',
        });
        return;
      }
      this.failRequest(request, e);
      return;
    }
    // A tunnel from here on: no idle limit of ours (a 407 answer before it may have set one).
    socket.setTimeout(0);
    const rec = records.get(socket);
    let farSocket: Socket | undefined;
    const abandon = () => farSocket?.destroy();
    socket.once('close', abandon);
    try {
      const { socket: far, extra } = await openFarSide(
        {
          destination: route.destination,
          ...(route.upstream ? { upstream: route.upstream } : {}),
          ...(route.address ? { address: route.address } : {}),
          timeoutMs: this.cfg.connectTimeoutMs,
          lookup: this.cfg.destinations.lookup,
        },
        (s) => {
          farSocket = s;
          this.far.add(s);
          rec?.far.push(s);
          s.once('close', () => this.far.delete(s));
        },
      );
      socket.off('close', abandon);
      if (socket.destroyed || !socket.writable) {
        far.destroy();
        return;
      }
      if (rec) rec.upstreamAt = preciseNow();
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (extra) socket.write(extra);
      if (head.length > 0) far.write(head);
      splice(socket, far, () => {});
    } catch (err) {
      socket.off('close', abandon);
      const f = err as FarSideFailure;
      const target = rec?.target ?? request.url ?? '';
      if (f.code === E_DESTINATION_DENIED) {
        // The name resolved inside the list for the check and outside it now: still nothing else reached.
        const e = this.destinationDenied(target, rec?.mappedTarget ?? target, 'CONNECT', f.message);
        if (!socket.destroyed) this.sendSocketResponse(socket, 403, {}, e.message);
        return;
      }
      this.upstreamFailed(
        target,
        f.code ?? errorCode(err) ?? 'E_INTERNAL',
        f.message ?? String(err),
        f.status ?? 502,
      );
      if (!socket.destroyed) this.sendSocketResponse(socket, f.status ?? 502, {}, `fieldlab: ${f.message}\n`);
    }
  }

  upstreamFailed(target: string, code: string, message: string, status: number): void {
    this.counts.upstreamErrors++;
    this.cfg.events.emitEvent('upstream-error', { target, code, message, status });
  }

  /** Plain HTTP forwarding is proxy-chain's; we only turn its 59x statuses into 502/504. */
  override async onRequest(request: IncomingMessage, response: ServerResponse): Promise<void> {
    responses.set(request, response);
    const writeHead = response.writeHead;
    response.writeHead = function (this: ServerResponse, code: number, ...rest: unknown[]) {
      return (writeHead as (c: number, ...r: unknown[]) => ServerResponse).call(
        this,
        gatewayStatus(code),
        ...rest,
      );
    } as typeof response.writeHead;
    return super.onRequest(request, response);
  }

  /** proxy-chain's own refusals: a malformed target or Proxy-Authorization is reported as denied (400). */
  override failRequest(request: IncomingMessage, error: NodeJS.ErrnoException): void {
    const status = (error as { statusCode?: number }).statusCode;
    // Plain HTTP 407/403: through the request's own response, so Node keeps the connection as Squid does.
    const response = responses.get(request);
    if (response && !response.headersSent && (status === 407 || status === 403)) {
      const body = Buffer.from(error.message);
      response.writeHead(status, {
        Server: SERVER_NAME,
        'Content-Type': 'text/plain;charset=utf-8',
        'Content-Length': body.length,
        ...(status === 407 ? { 'Proxy-Authenticate': `Basic realm="${this.cfg.realm}"` } : {}),
      });
      response.end(body);
      return;
    }
    if (error.name === 'RequestError' && status === 400) {
      this.cfg.events.emitEvent('connect-denied', {
        target: request.url ?? '',
        rule: 'malformed',
        status: 400,
        method: request.method ?? '',
        reason: error.message,
      });
    }
    super.failRequest(request, error);
  }

  override sendSocketResponse(socket: Socket, statusCode = 500, headers = {}, message = ''): void {
    super.sendSocketResponse(socket, gatewayStatus(statusCode), headers, message);
  }

  /** RFC 9112 §2.2: a TLS ClientHello (record type 0x16) where an HTTP request line belongs. */
  override onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const raw = (err as { rawPacket?: Buffer }).rawPacket;
    // (After a 407/403 on this connection, TLS bytes are a client that ignored the answer, not a scheme mix-up.)
    if (raw && raw[0] === 0x16 && !wasHandedBack(socket)) {
      this.counts.protocolErrors++;
      this.cfg.events.emitEvent('protocol-error', { remote: remoteOf(socket), reason: 'tls-to-plain-proxy' });
      socket.destroy();
      return;
    }
    super.onClientError(err, socket);
  }

  override onTLSClientError(err: NodeJS.ErrnoException, tlsSocket: Socket & { proxyChainId?: number }): void {
    const remote = remoteOf(tlsSocket);
    const alert = alertFromError(err);
    this.cfg.events.emitEvent('tls-client-error', {
      remote,
      ...(alert ? { alert } : {}),
      ...(err.code ? { code: err.code } : {}),
      message: err.message,
    });
    if (/http request|https proxy request|wrong version number|unknown protocol/i.test(err.message)) {
      this.counts.protocolErrors++;
      this.cfg.events.emitEvent('protocol-error', { remote, reason: 'plain-to-tls-proxy' });
    }
    super.onTLSClientError(err, tlsSocket as never);
  }

  /** Closes the listener and every client and destination socket. */
  async shutdown(): Promise<void> {
    for (const s of this.far) s.destroy();
    this.far.clear();
    this.agent.destroy();
    await this.close(true);
  }
}

/** The host:port of an upstream proxy URL (port 80 when the URL has none, as proxy-chain connects). */
function upstreamTarget(url: string): Target {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80) };
}

/** proxy-chain's private 59x gateway statuses as the standard ones (RFC 9110 §15.6.3, §15.6.5). */
function gatewayStatus(code: number): number {
  return code >= 590 && code <= 599 ? 502 : code;
}

function remoteOf(s: Socket): string {
  return hostPort(s.remoteAddress ?? '?', s.remotePort ?? 0);
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

/**
 * The agent for forwarded HTTP requests: one connection per request, no Nagle, and a connect timeout
 * that fails with ETIMEDOUT (which proxy-chain turns into 504).
 */
function labAgent(
  timeoutMs: number,
  lookup: LookupFunction | undefined,
  onError: (target: string, code: string, message: string, status: number) => void,
): Agent {
  const agent = new Agent({ keepAlive: false });
  agent.createConnection = (options: ClientRequestArgs) => {
    const host = options.host ?? 'localhost';
    const port = Number(options.port ?? 80);
    const s = connect({ host, port, noDelay: true, ...(lookup ? { lookup } : {}) });
    const timer = setTimeout(() => {
      const e = Object.assign(new Error(`no answer within ${timeoutMs}ms`), { code: 'ETIMEDOUT' });
      s.destroy(e);
    }, timeoutMs);
    s.once('connect', () => clearTimeout(timer));
    s.once('close', () => clearTimeout(timer));
    s.once('error', (err) => {
      const code = errorCode(err) ?? 'E_UPSTREAM';
      const status = code === 'ETIMEDOUT' ? 504 : 502;
      onError(hostPort(host, port), code, err.message, status);
    });
    return s;
  };
  return agent;
}
