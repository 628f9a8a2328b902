/**
 * Where queries come in, all through dns2's servers so one handler sees every transport:
 *
 *   UDP  dns2 UDPServer (TC and the EDNS payload size, RFC 6891 §6.2.3), each datagram first checked
 *        with the project's codec (geo-dns/wire.ts validateMessage): a malformed one gets FORMERR
 *   TCP  dns2 TCPServer on the same port (pipelining and idle timeout, RFC 7766 §6.2)
 *   DoT  a TLS server (RFC 7858, ALPN `dot`) whose sockets are handed to a second dns2 TCPServer:
 *        same framing as TCP
 *   DoH  dns2's DoH request handler (RFC 8484 GET/POST on /dns-query, Accept/Content-Type checks,
 *        Cache-Control from the TTLs) behind node:http2 with HTTP/1.1 allowed: dns2's own server is
 *        HTTP/1.1 only and dig, like browsers' DoH, speaks HTTP/2
 */
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import type { Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from 'node:tls';
import dns2 from 'dns2';
import {
  ConnectionTracker,
  closeServer,
  describeTlsClientError,
  errorCode,
  FieldlabError,
  listen,
  type SimulatorEvents,
} from '../common/index.js';
import { validateMessage } from '../geo-dns/wire.js';
import type { ResolverEvents, ResolverTransport } from './events.js';
import type { Dns2Packet } from './upstream.js';

export type Answerer = (
  request: Dns2Packet,
  client: string,
  transport: ResolverTransport,
) => Promise<Dns2Packet | undefined>;

type Send = (response: Dns2Packet) => Promise<unknown> | unknown;

/** The client's address, whatever dns2 hands over: a UDP RemoteInfo, a socket, an HTTP request. */
function clientAddress(c: unknown): string {
  let addr: unknown;
  if (typeof c === 'object' && c !== null) {
    const address: unknown = Reflect.get(c, 'address');
    const socket: unknown = Reflect.get(c, 'socket');
    if (typeof address === 'string') addr = address;
    else if ('remoteAddress' in c) addr = c.remoteAddress;
    else if (typeof socket === 'object' && socket !== null && 'remoteAddress' in socket)
      addr = socket.remoteAddress;
  }
  return (typeof addr === 'string' ? addr : '?').replace(/^::ffff:(?=\d+\.)/, '');
}

/** A FORMERR for an undecodable query, when its header is readable (RFC 1035 §4.1.1); else nothing. */
function formerr(msg: Buffer): Buffer | undefined {
  if (msg.length < 12 || msg.readUInt16BE(2) & 0x8000) return undefined;
  const out = Buffer.alloc(12);
  msg.copy(out, 0, 0, 2);
  out.writeUInt16BE(0x8000 | (msg.readUInt16BE(2) & 0x7900) | 0x0080 | 1, 2); // QR, opcode+RD, RA, FORMERR
  return out;
}

const HANDSHAKE_TIMEOUT_MS = 10_000;
const DOH_IDLE_TIMEOUT_MS = 30_000;

export class Transports {
  port = 0;
  dotPort: number | undefined;
  dohPort: number | undefined;
  private udp: InstanceType<typeof dns2.UDPServer> | undefined;
  private tcp: InstanceType<typeof dns2.TCPServer> | undefined;
  private dot: TlsServer | undefined;
  private doh: Http2SecureServer | undefined;
  private readonly tracker = new ConnectionTracker();
  /** DNS over TCP connections (port 53), reset when a `tcp-refused` fault starts. */
  private readonly tcpSockets = new Set<Socket>();
  /** The DNS over TCP listener is closed by a `tcp-refused` fault; UDP keeps serving. */
  private tcpClosed = false;
  /** Listener changes run one after the other (a fault toggled quickly). */
  private tcpChange: Promise<void> = Promise.resolve();
  private host = '';
  private closing = false;

  constructor(
    private readonly answer: Answerer,
    private readonly events: SimulatorEvents<ResolverEvents>,
  ) {}

  private serve(transport: ResolverTransport, client: string, request: Dns2Packet, send: Send): void {
    this.answer(request, client, transport)
      .then(
        (response) => {
          if (response) return send(response);
        },
        () => undefined,
      )
      .catch(() => undefined); // a client gone before its answer: nothing to do
  }

  /** UDP and TCP on the same host:port (a free pair when port is 0). */
  async listenDns(host: string, port: number): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const udp = dns2.createUDPServer({ type: host.includes(':') ? 'udp6' : 'udp4' });
      // Check each datagram with the project's codec before dns2 parses it: dns2 drops what it cannot
      // parse without a word, and a resolver answers FORMERR (RFC 1035 §4.1.1).
      udp.removeAllListeners('message');
      udp.on('message', (msg: Buffer, rinfo) => {
        if (validateMessage(msg)) return udp.handle(msg, rinfo);
        const reply = formerr(msg);
        this.events.emitEvent('malformed', {
          client: rinfo.address,
          transport: 'udp',
          bytes: msg.length,
          action: reply ? 'FORMERR' : 'dropped',
        });
        if (reply) udp.send(reply, rinfo.port, rinfo.address);
      });
      udp.on('request', (request, send, rinfo) => this.serve('udp', clientAddress(rinfo), request, send));
      udp.on('error', () => {}); // ICMP errors from clients that went away; keep serving
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, host, () => {
          udp.off('error', reject);
          resolve();
        });
      }).catch((err: unknown) => {
        throw this.bindError(err, host, port, 'UDP');
      });
      const bound = udp.address().port;
      const tcp = dns2.createTCPServer();
      tcp.on('request', (request, send, socket) => this.serve('tcp', clientAddress(socket), request, send));
      tcp.on('requestError', () => {});
      tcp.on('connection', (s: Socket) => {
        this.tracker.track(s);
        this.tcpSockets.add(s);
        s.once('close', () => this.tcpSockets.delete(s));
      });
      try {
        await listen(tcp, host, bound);
      } catch (err) {
        udp.close();
        if (errorCode(err) === 'EADDRINUSE' && port === 0 && attempt < 5) continue;
        throw this.bindError(err, host, bound, 'TCP');
      }
      this.udp = udp;
      this.tcp = tcp;
      this.port = bound;
      this.host = host;
      return;
    }
  }

  /**
   * A `tcp-refused` fault (a firewall on TCP 53): closes the DNS over TCP listener, so the kernel answers
   * a client's SYN with RST (connection refused), and resets the connections open now; `false` listens
   * again on the same port. UDP, DoT and DoH are not touched.
   */
  refuseTcp(on: boolean): Promise<void> {
    this.tcpChange = this.tcpChange.then(async () => {
      const tcp = this.tcp;
      if (!tcp || this.closing || on === this.tcpClosed) return;
      this.tcpClosed = on;
      if (on) {
        const closed = new Promise<void>((resolve) => tcp.close(() => resolve()));
        for (const s of this.tcpSockets) s.resetAndDestroy();
        await closed;
      } else {
        await listen(tcp, this.host, this.port).catch((err: unknown) => {
          this.tcpClosed = true;
          throw this.bindError(err, this.host, this.port, 'TCP');
        });
      }
    });
    return this.tcpChange;
  }

  /** DNS over TLS (RFC 7858): TLS, then the TCP framing of RFC 1035 §4.2.2. */
  async listenDot(host: string, port: number, tls: { certPem: string; keyPem: string }): Promise<void> {
    const framing = dns2.createTCPServer();
    framing.on('request', (request, send, socket) => this.serve('dot', clientAddress(socket), request, send));
    framing.on('requestError', () => {});
    // RFC 7858 §3.1 / RFC 9526: ALPN `dot`; a client that never finishes its handshake is dropped
    const dot = createTlsServer({
      cert: tls.certPem,
      key: tls.keyPem,
      ALPNProtocols: ['dot'],
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    dot.on('connection', (s: Socket) => this.tracker.track(s));
    dot.on('secureConnection', (s: TLSSocket) => framing.emit('connection', s));
    dot.on('tlsClientError', (err: Error, s: TLSSocket) =>
      this.events.emitEvent('tls-client-error', describeTlsClientError(err, s)),
    );
    try {
      this.dotPort = await listen(dot, host, port);
    } catch (err) {
      throw this.bindError(err, host, port, 'DoT');
    }
    this.dot = dot;
  }

  /** DNS over HTTPS (RFC 8484) on /dns-query, HTTP/2 and HTTP/1.1. */
  async listenDoh(host: string, port: number, tls: { certPem: string; keyPem: string }): Promise<void> {
    // dns2's DoH handler, fed by our server; its own (HTTP/1.1) server never listens.
    const handler = new dns2.DOHServer({ cors: false });
    const responses = new WeakMap<object, Http2ServerResponse>();
    handler.on('request', (request, send, req) =>
      this.serve('doh', clientAddress(req), request, (response) => {
        // BIND's DoH client (dig +https) reads the body by Content-Length, which dns2 does not send
        responses.get(req)?.setHeader('content-length', response.toBuffer().length);
        return send(response);
      }),
    );
    handler.on('requestError', () => {});
    const handleRequest: unknown = Reflect.get(handler, 'handleRequest');
    if (typeof handleRequest !== 'function') {
      throw new FieldlabError('E_DEPENDENCY', 'resolver: this dns2 has no DoH request handler', {
        hint: 'install the dns2 version in package.json (npm ci)',
      });
    }
    const doh = createSecureServer({
      cert: tls.certPem,
      key: tls.keyPem,
      allowHTTP1: true,
      ALPNProtocols: ['h2', 'http/1.1'],
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    });
    // Idle HTTP/2 sessions and HTTP/1.1 connections are closed: per-client state stays bounded
    doh.setTimeout(DOH_IDLE_TIMEOUT_MS);
    doh.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
      responses.set(req, res);
      Reflect.apply(handleRequest, handler, [req, res]);
    });
    doh.on('connection', (s: Socket) => this.tracker.track(s));
    doh.on('tlsClientError', (err: Error, s: TLSSocket) =>
      this.events.emitEvent('tls-client-error', describeTlsClientError(err, s)),
    );
    try {
      this.dohPort = await new Promise<number>((resolve, reject) => {
        doh.once('error', reject);
        doh.listen({ host, port, exclusive: true }, () => {
          doh.off('error', reject);
          const a = doh.address();
          if (a === null || typeof a === 'string') reject(new Error('DoH server has no TCP address'));
          else resolve(a.port);
        });
      });
    } catch (err) {
      throw this.bindError(err, host, port, 'DoH');
    }
    this.doh = doh;
  }

  private bindError(err: unknown, host: string, port: number, what: string): FieldlabError {
    const code = errorCode(err);
    return new FieldlabError(
      'E_LISTEN',
      `resolver: cannot listen for ${what} on ${host}:${port}: ${code ?? String(err)}`,
      {
        hint:
          code === 'EACCES'
            ? 'ports below 1024 need root or CAP_NET_BIND_SERVICE; use port 0 (a free port) or run with the capability'
            : code === 'EADDRNOTAVAIL'
              ? 'use an address this host has (on loopback, any 127.x.y.z)'
              : 'pick another port, or 0 for a free one',
        cause: err,
      },
    );
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.tcpChange.catch(() => undefined);
    const closing: Promise<void>[] = [];
    if (this.udp) {
      const udp = this.udp;
      closing.push(new Promise((resolve) => udp.close(() => resolve())));
    }
    for (const s of [this.tcp, this.dot, this.doh]) if (s) closing.push(closeServer(s, this.tracker));
    this.tracker.destroyAll();
    await Promise.all(closing);
  }
}
