import type { IncomingMessage } from 'node:http';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { checkServerIdentity, type SecureContext, TLSSocket, connect as tlsConnect } from 'node:tls';
import type { ConnectAnswer } from '../common/connect-reply.js';
import type { DestinationPolicy } from '../common/destinations.js';
import { alertFromError, errorCode, FieldlabError, hostPort, type SimulatorEvents } from '../common/index.js';
import { mapTarget, parseTarget, type Target } from '../common/targets.js';
import { checkBasicAuth } from './auth.js';
import type { ClientHelloInfo } from './client-hello.js';
import type { TlsInspectorEvents, TlsInspectorStats } from './events.js';
import type { InspectorFault, LeafIssuer, LeafLookup } from './leaves.js';
import type { ResolvedTlsInspectorOptions } from './options.js';
import { readClientHello } from './read-hello.js';

/** What one CONNECT needs from the inspector that owns it. */
export interface InspectorContext {
  opts: ResolvedTlsInspectorOptions;
  events: SimulatorEvents<TlsInspectorEvents>;
  counts: Omit<TlsInspectorStats, 'leafCacheHits' | 'leafCacheMisses' | 'leavesIssued'>;
  issuer: LeafIssuer;
  fault(): InspectorFault;
  /** The passthrough pattern `host` matches, if any. */
  passthroughRule(host: string): string | undefined;
  /** Registers a socket the inspector opened, so `stop()` can destroy it. */
  track(socket: Duplex): void;
  /** The upstream trust, built once: a context per connection would re-parse every CA each time. */
  upstreamContext: SecureContext;
  /** Where the inspector may connect; its `lookup` is the one every upstream connection resolves with. */
  destinations: DestinationPolicy;
  /** Answers a CONNECT that gets no tunnel (407, 403), keeping the connection as Squid does. */
  answer(req: IncomingMessage, socket: Socket, head: Buffer, answer: Omit<ConnectAnswer, 'server'>): void;
}

/** How long to wait for a TLS 1.3 target's verdict on the empty client certificate (see connectUpstream). */
const TLS13_VERDICT_WAIT_MS = 500;

// RFC 8446 §6 / §5.1: a plaintext fatal alert record, sent before any ServerHello.
const ALERT_HANDSHAKE_FAILURE = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 40]);
const ALERT_INTERNAL_ERROR = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 80]);

/**
 * Handles one CONNECT, in order (early return at each failed check, each with the protocol's reply):
 *   request-target → 400 · credentials → 407 · destination → 403 · passthrough → raw tunnel (502) ·
 *   200 → ClientHello → upstream TLS (same SNI + ALPN) → forged leaf → client TLS → relay
 */
export async function handleConnect(
  ctx: InspectorContext,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
): Promise<void> {
  // The client may reset at any point; its close ends everything below.
  socket.on('error', () => socket.destroy());
  socket.setNoDelay(true);
  const remote = hostPort(socket.remoteAddress ?? '?', socket.remotePort ?? 0);

  // RFC 9110 §9.3.6: CONNECT's request-target is authority-form, host:port.
  const target = parseTarget(req.url);
  if (!target) {
    reply(socket, 400, 'Bad Request');
    ctx.events.emitEvent('connect-denied', { target: req.url ?? '', rule: 'bad-target', status: 400 });
    return;
  }
  const targetStr = hostPort(target.host, target.port);

  // RFC 9110 §11.7.1 / §15.5.8: 407 with Proxy-Authenticate when credentials are missing or wrong.
  // Squid's casing, and the connection kept for the authenticated CONNECT (common/connect-reply.ts).
  if (ctx.opts.auth) {
    const verdict = checkBasicAuth(req.headers['proxy-authorization'], ctx.opts.auth.users);
    if (verdict !== 'ok') {
      ctx.events.emitEvent('auth-required', { reason: verdict, status: 407 });
      ctx.answer(req, socket, head, {
        status: 407,
        headers: [['Proxy-Authenticate', `Basic realm="${ctx.opts.auth.realm}"`]],
        body: `fieldlab: proxy authentication required (${verdict} credentials)\n`,
      });
      return;
    }
  }
  // A tunnel or a refusal from here on: no idle limit of ours (a 407 answer before may have set one).
  socket.setTimeout(0);

  const upstream = mapTarget(ctx.opts.map, target);
  // The lab's own limit: where the inspector itself would connect.
  const verdict = await ctx.destinations.check(upstream.host);
  if (verdict.action === 'deny') {
    const destination = hostPort(upstream.host, upstream.port);
    const allowed = ctx.destinations.describe();
    const body =
      `fieldlab: ${destination} is not a destination this inspector may reach: ${verdict.reason}. ` +
      `It may reach: ${allowed}. To allow more, add the name, address or CIDR to the inspector's ` +
      `destinations option (or "any"); in a lab, map the name to a lab host with the inspector's map.`;
    ctx.counts.denied++;
    ctx.events.emitEvent('destination-denied', {
      target: targetStr,
      destination,
      status: 403,
      allowed,
      reason: body,
    });
    ctx.answer(req, socket, head, { status: 403, body: `${body}\n` });
    return;
  }
  const rule = ctx.passthroughRule(target.host);
  if (rule !== undefined) {
    tunnel(ctx, socket, head, target, upstream, rule);
    return;
  }

  socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  ctx.events.emitEvent('connect-allowed', { target: targetStr, rule: 'intercept' });
  await intercept(ctx, socket, head, target, upstream, remote);
}

function reply(socket: Socket, status: number, text: string, headers: string[] = []): void {
  const lines = [`HTTP/1.1 ${status} ${text}`, ...headers, 'Connection: close', 'Content-Length: 0', '', ''];
  socket.end(lines.join('\r\n'));
}

/** A raw byte tunnel to a passthrough host: the client sees the target's own certificate. */
function tunnel(
  ctx: InspectorContext,
  socket: Socket,
  head: Buffer,
  target: Target,
  to: Target,
  rule: string,
): void {
  const targetStr = hostPort(target.host, target.port);
  const up = netConnect({
    host: to.host,
    port: to.port,
    noDelay: true,
    lookup: ctx.destinations.lookup,
  });
  ctx.track(up);
  up.setTimeout(ctx.opts.upstreamTimeout, () =>
    up.destroy(new FieldlabError('E_UPSTREAM_TIMEOUT', `no TCP connection to ${hostPort(to.host, to.port)}`)),
  );
  let connected = false;
  up.on('error', (err) => {
    ctx.counts.upstreamErrors++;
    ctx.events.emitEvent('upstream-error', {
      target: targetStr,
      code: errorCode(err) ?? 'E_UPSTREAM',
      message: err.message,
    });
    if (connected) return; // linkTeardown() closes both sides
    // Not connected yet: the CONNECT gets the gateway's own status (RFC 9110 §15.6.3).
    ctx.events.emitEvent('connect-denied', { target: targetStr, rule: `passthrough:${rule}`, status: 502 });
    if (!socket.destroyed) reply(socket, 502, 'Bad Gateway');
  });
  up.once('connect', () => {
    connected = true;
    up.setTimeout(0);
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    ctx.counts.passthrough++;
    ctx.events.emitEvent('connect-allowed', { target: targetStr, rule: `passthrough:${rule}` });
    ctx.events.emitEvent('passthrough', { host: target.host });
    if (head.length > 0) up.write(head);
    relay(socket, up);
  });
  socket.once('close', () => up.destroy());
}

/** Pipes both ways; an error or reset on either side tears down both. */
function relay(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  linkTeardown(a, b);
}

/** An error on either side destroys both; a side that closes ends the other's writable half. */
function linkTeardown(a: Duplex, b: Duplex): void {
  const down = () => {
    a.destroy();
    b.destroy();
  };
  a.once('error', down);
  b.once('error', down);
  a.once('close', () => b.end());
  b.once('close', () => a.end());
}

async function intercept(
  ctx: InspectorContext,
  socket: Socket,
  head: Buffer,
  target: Target,
  to: Target,
  remote: string,
): Promise<void> {
  let hello: ClientHelloInfo;
  try {
    hello = await readClientHello(socket, head, ctx.opts.handshakeTimeout);
  } catch (err) {
    if (errorCode(err) !== 'E_CLIENT_CLOSED') ctx.counts.badClientHello++;
    ctx.events.emitEvent('tls-client-error', {
      remote,
      host: target.host,
      code: errorCode(err) ?? 'E_BAD_CLIENT_HELLO',
      message: err instanceof Error ? err.message : String(err),
    });
    socket.destroy();
    return;
  }

  // The name the client wants: its SNI, else the CONNECT host (clients send no SNI for IP literals,
  // RFC 6066 §3). The forged leaf, the upstream SNI and the upstream check all use it.
  const name = hello.sni ?? target.host;
  const fault = ctx.fault();
  const leafP = ctx.issuer.get(name, fault);
  leafP.catch(() => undefined); // awaited below; a failure before then must not go unhandled

  const upstream = await connectUpstream(ctx, to, name, hello.alpn);
  if (!upstream.ok) {
    if (upstream.certRequested) certUnavailable(ctx, target, name, { err: upstream.err });
    failClient(ctx, socket, target, ALERT_HANDSHAKE_FAILURE, upstream.err);
    return;
  }
  const up = upstream.socket;
  let lookup: LeafLookup;
  try {
    lookup = await leafP;
  } catch (err) {
    up.destroy();
    failClient(ctx, socket, target, ALERT_INTERNAL_ERROR, err, 'E_LEAF_ISSUE');
    return;
  }
  if (socket.destroyed) {
    up.destroy();
    return;
  }
  // TLS 1.3: a server that insists on a client certificate judges the (empty) one after its handshake
  // has finished on our side, so its alert may already be here; the client gets no forged handshake.
  if (upstream.failed) {
    if (upstream.certRequested) certUnavailable(ctx, target, name, { err: upstream.failed });
    failClient(ctx, socket, target, ALERT_HANDSHAKE_FAILURE, upstream.failed);
    return;
  }

  // RFC 7301 §3.2: answer with the protocol the real server chose, so both legs speak the same one.
  const chosen = typeof up.alpnProtocol === 'string' ? up.alpnProtocol : undefined;
  // Raw bytes read so far (the CONNECT and the ClientHello): what the client sends after its hello is
  // counted from here, on the TCP socket itself (the TLS layer does not surface a mid-handshake close).
  const readBeforeHandshake = socket.bytesRead;
  const client = new TLSSocket(socket, {
    isServer: true,
    secureContext: lookup.leaf.context,
    ...(chosen ? { ALPNProtocols: [chosen] } : {}),
  });
  ctx.track(client);
  const handshakeTimer = setTimeout(
    () => client.destroy(new FieldlabError('E_HANDSHAKE_TIMEOUT', 'the client did not finish its handshake')),
    ctx.opts.handshakeTimeout,
  );
  let secure = false;
  let reported = false;
  const rejected = (fields: { alert?: string; code?: string; message: string; bytesAfterHello?: number }) => {
    if (reported) return;
    reported = true;
    ctx.counts.clientRejected++;
    // The leaf's fault (none: a valid certificate for the name) tells a report why a silent client left.
    ctx.events.emitEvent('tls-client-error', { remote, host: target.host, fault, ...fields });
  };
  let clientSpoke = false;
  // The client sent an alert (or timed out): a hang-up with a reason of its own.
  let clientGaveReason = false;
  // Whether the target left first: then a silent client did not hang up on its own.
  let upstreamDone = false;
  let clientEnded = false;
  client.once('end', () => {
    clientEnded = true;
  });
  // A client that left first (FIN or reset) is why the target's side ends: no verdict of the target's.
  client.once('close', () => {
    clientEnded = true;
  });
  // Whether the target sent the client anything: a target that asked for a client certificate and
  // leaves without a word has refused the session the inspector could not authenticate.
  let upstreamSpoke = false;
  const upstreamGone = (err?: Error) => {
    if (clientEnded) return;
    upstreamDone = true;
    if (upstream.certRequested && !upstreamSpoke && up.readableLength === 0) {
      certUnavailable(ctx, target, name, { err });
    }
  };
  up.once('end', () => upstreamGone());
  up.once('error', upstreamGone);
  client.once('data', () => {
    clientSpoke = true;
  });
  client.once('secure', () => {
    secure = true;
    clearTimeout(handshakeTimer);
    ctx.counts.intercepted++;
    ctx.events.emitEvent('intercepted', {
      host: target.host,
      ...(hello.sni !== undefined ? { sni: hello.sni } : {}),
      ...(chosen !== undefined ? { alpn: chosen } : {}),
      leafCached: lookup.cached,
      issueMs: lookup.waitMs,
    });
    // Target → client only now: a server that speaks first must not write into an unfinished handshake.
    up.pipe(client);
    up.once('data', () => {
      upstreamSpoke = true;
    });
  });
  // Client → target from the start: the TLS socket must be read for the inspector to see the client
  // leave mid-handshake; no application data comes out of it before the handshake completes.
  client.pipe(up);
  linkTeardown(client, up);
  client.on('error', (err) => {
    if (secure) return; // linkTeardown() tears down both sides; after the handshake it is no rejection
    const alert = alertFromError(err);
    const code = errorCode(err) ?? 'E_TLS';
    clientGaveReason = alert !== undefined || code === 'E_HANDSHAKE_TIMEOUT';
    rejected({ ...(alert ? { alert } : {}), code, message: err.message });
    client.destroy();
  });
  client.once('close', () => {
    clearTimeout(handshakeTimer);
    if (!secure && !upstreamDone) {
      // Node drops the connection without a byte after its hello; s2n closes the session (a plaintext
      // close_notify record) when a server it must authenticate to asks for no certificate.
      const bytesAfterHello = socket.bytesRead - readBeforeHandshake;
      rejected({
        code: 'E_CLIENT_HANGUP',
        message: 'the client closed the connection during the handshake without sending an alert',
        bytesAfterHello,
      });
      up.destroy();
      if (upstream.certRequested && !clientGaveReason && bytesAfterHello > 0)
        certUnavailable(ctx, target, name, { deviceLeft: true });
    } else if (!clientSpoke && !upstreamDone) {
      // Clients that check the certificate after the handshake (Node, Go) send no alert: they finish
      // the handshake, then hang up without a byte. (A client that connects and leaves looks the same.)
      rejected({
        code: 'E_CLIENT_HANGUP',
        message:
          'the client finished the handshake, then closed without sending data or an alert ' +
          '(what a client that verifies after the handshake, like Node, does when it rejects the leaf)',
      });
    }
  });
}

/**
 * The inspector's own TLS session with the real target. `certRequested`: the target sent a
 * CertificateRequest (RFC 8446 §4.3.2, RFC 5246 §7.4.4), which the inspector cannot answer: it holds no
 * device key, so it sends an empty Certificate (RFC 8446 §4.4.2, RFC 5246 §7.4.6) and the target decides.
 */
type Upstream =
  | {
      ok: true;
      socket: TLSSocket;
      certRequested: boolean;
      /** Set when the target failed the session before the relay started (e.g. TLS 1.3 certificate_required). */
      failed?: Error;
    }
  | { ok: false; err: unknown; certRequested: boolean };

/**
 * Whether the target asked this client socket for a certificate. Node emits nothing for a
 * CertificateRequest, but OpenSSL fills a client's shared signature algorithms only from one (the
 * request's `signature_algorithms`, RFC 8446 §4.3.2): without a request the list stays empty.
 */
function certificateRequested(up: TLSSocket): boolean {
  try {
    return up.getSharedSigalgs().length > 0;
  } catch {
    return false; // the handle is gone (destroyed before any handshake)
  }
}

/** TLS to the real target: same SNI and ALPN list as the client's, verified against the lab trust. */
function connectUpstream(
  ctx: InspectorContext,
  to: Target,
  name: string,
  alpn: string[] | undefined,
): Promise<Upstream> {
  return new Promise((resolve) => {
    const isIpName = isIP(name) !== 0;
    const up = tlsConnect({
      host: to.host,
      port: to.port,
      lookup: ctx.destinations.lookup,
      // RFC 6066 §3: literal IPs are not sent as SNI; an empty servername suppresses Node's default.
      servername: isIpName ? '' : name,
      secureContext: ctx.upstreamContext,
      ...(alpn ? { ALPNProtocols: alpn } : {}),
      // The upstream may be reached at a mapped address: verify the name the client asked for.
      checkServerIdentity: (_host, cert) => checkServerIdentity(name, cert),
    });
    // Handshake flights are small writes: Nagle + delayed ACK would stall each one.
    up.setNoDelay(true);
    ctx.track(up);
    up.setTimeout(ctx.opts.upstreamTimeout, () =>
      up.destroy(
        new FieldlabError('E_UPSTREAM_TIMEOUT', `no TLS session with ${hostPort(to.host, to.port)} in time`),
      ),
    );
    const onError = (err: Error) =>
      // Only the target's own alert can be its verdict on the missing certificate (not our checks of it).
      resolve({
        ok: false,
        err,
        certRequested: alertFromError(err) !== undefined && certificateRequested(up),
      });
    up.once('secureConnect', () => {
      up.setTimeout(0);
      up.off('error', onError);
      const session: Upstream = { ok: true, socket: up, certRequested: certificateRequested(up) };
      // From here on the caller owns it; a failure before the relay starts is kept for it, then closes it.
      up.on('error', (err) => {
        session.failed ??= err;
        up.destroy();
      });
      if (!session.certRequested || up.getProtocol() !== 'TLSv1.3') {
        resolve(session);
        return;
      }
      // RFC 8446 §4.4.2.4: a TLS 1.3 server judges our empty Certificate after our Finished, so its
      // verdict comes after secureConnect: an alert (certificate_required), or session tickets when it
      // carries on. Wait for it (bounded) before forging the client's handshake, so a refused session
      // fails the client's handshake as it would without the inspector.
      const settle = () => {
        clearTimeout(timer);
        up.off('session', settle);
        up.off('close', settle);
        resolve(session);
      };
      const timer = setTimeout(settle, TLS13_VERDICT_WAIT_MS);
      up.once('session', settle);
      up.once('close', settle);
    });
    up.once('error', onError);
  });
}

/**
 * The target asked for a client certificate and the session failed for want of one: the target refused
 * the empty certificate (`err`: its alert, or none for a close before any data), or the device hung up
 * mid-handshake (`deviceLeft`; a device set up for mutual TLS, s2n for one, refuses a server that asks
 * for no certificate, and the forged handshake asks for none: the inspector could not use it).
 */
function certUnavailable(
  ctx: InspectorContext,
  target: Target,
  name: string,
  cause: { err?: unknown; deviceLeft?: boolean },
): void {
  const alert = cause.err === undefined ? undefined : alertFromError(cause.err);
  const targetStr = hostPort(target.host, target.port);
  const how = cause.deviceLeft
    ? 'the device closed the session in the middle of the handshake, as a device set up for mutual TLS ' +
      'does when the server asks it for no certificate (the inspector asks for none)'
    : alert
      ? `${targetStr} answered the empty certificate with alert ${alert}`
      : `${targetStr} closed the session without sending any data`;
  ctx.counts.clientCertUnavailable++;
  ctx.events.emitEvent('client-cert-unavailable', {
    target: targetStr,
    host: name,
    cause: cause.deviceLeft ? 'device-hung-up' : 'target-refused',
    ...(alert ? { alert } : {}),
    message:
      `client certificate requested upstream, none available: ${how}; the inspector terminates TLS and ` +
      `holds no device key (mutual TLS needs this host in the inspector's passthrough list)`,
  });
}

/** Upstream (or leaf) failure: a fatal alert to the client, which is mid-handshake, and an event. */
function failClient(
  ctx: InspectorContext,
  socket: Socket,
  target: Target,
  alert: Buffer,
  err: unknown,
  fallbackCode = 'E_UPSTREAM',
): void {
  ctx.counts.upstreamErrors++;
  ctx.events.emitEvent('upstream-error', {
    target: hostPort(target.host, target.port),
    code: errorCode(err) ?? fallbackCode,
    message: err instanceof Error ? err.message : String(err),
  });
  if (socket.destroyed) return;
  socket.resume(); // drop whatever else the client sends
  socket.end(alert, () => socket.destroy());
}
