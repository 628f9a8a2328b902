/**
 * Answering a CONNECT that will not become a tunnel (407, 403) the way Squid does, so that clients which
 * retry on the same connection work:
 *
 *   client ── CONNECT a:443 ──────────────────────────► proxy
 *          ◄─ 407, Proxy-Authenticate, Connection: keep-alive
 *          ── CONNECT a:443, Proxy-Authorization ─────► (same socket, parsed again)
 *          ◄─ 200 Connection established
 *
 * Node's http server detaches its parser from a socket when it emits 'connect' (the socket is the
 * handler's from then on). To read the client's next request on that socket, it is emitted to the server
 * again as a new connection, which gives it a fresh parser; the connection's own listeners must skip a
 * socket that `wasHandedBack()`.
 */
import { type IncomingMessage, type Server, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';

/** How long a persisting connection may sit idle after such an answer (Squid: client_idle_pconn_timeout 2 min). */
export const IDLE_AFTER_ANSWER_MS = 120_000;

const handedBack = new WeakSet<Socket>();

/** Whether `socket` came back to the server after a CONNECT answer (it is not a new client connection). */
export function wasHandedBack(socket: Socket): boolean {
  return handedBack.has(socket);
}

/**
 * Whether the connection persists after the answer (RFC 9112 §9.3): HTTP/1.1 unless the client sent the
 * `close` option, HTTP/1.0 only with `keep-alive`. `Proxy-Connection`, which clients send to proxies
 * instead, counts as Squid counts it.
 */
export function persists(req: IncomingMessage): boolean {
  const options = `${req.headers.connection ?? ''},${req.headers['proxy-connection'] ?? ''}`
    .toLowerCase()
    .split(',')
    .map((t) => t.trim());
  if (options.includes('close')) return false;
  return req.httpVersion === '1.1' || options.includes('keep-alive');
}

export interface ConnectAnswer {
  status: number;
  /** Header lines after Server and Date, in this order and casing (e.g. `Proxy-Authenticate`). */
  headers?: ReadonlyArray<readonly [string, string]>;
  body: string;
  /** `Server:` value. */
  server: string;
  /** The server event that hands a connection to its HTTP parser: `secureConnection` for a TLS listener. */
  connectionEvent?: 'connection' | 'secureConnection';
  idleMs?: number;
}

/**
 * Writes a complete response to `req` (a CONNECT) on its socket. When the connection persists, the bytes
 * that followed the CONNECT head go back in front of the socket and the socket goes back to `server`;
 * else it is closed after the response.
 */
export function answerConnect(
  server: Server,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  answer: ConnectAnswer,
): void {
  if (socket.destroyed || !socket.writable) return;
  const keep = persists(req);
  const body = Buffer.from(answer.body);
  const lines = [
    `HTTP/1.1 ${answer.status} ${STATUS_CODES[answer.status] ?? 'Error'}`,
    `Server: ${answer.server}`,
    `Date: ${new Date().toUTCString()}`,
    'Content-Type: text/plain;charset=utf-8',
    `Content-Length: ${body.length}`,
    ...(answer.headers ?? []).map(([k, v]) => `${k}: ${v}`),
    `Connection: ${keep ? 'keep-alive' : 'close'}`,
    '',
    '',
  ];
  const bytes = Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), body]);
  if (!keep) {
    socket.end(bytes);
    return;
  }
  socket.write(bytes);
  if (head.length > 0) socket.unshift(head);
  // Bounded: a client that never sends its next request is closed, as Squid closes idle connections.
  const idle = () => socket.destroy();
  socket.setTimeout(answer.idleMs ?? IDLE_AFTER_ANSWER_MS);
  socket.once('timeout', idle);
  socket.once('data', () => {
    socket.setTimeout(0);
    socket.off('timeout', idle);
  });
  handedBack.add(socket);
  server.emit(answer.connectionEvent ?? 'connection', socket);
}
