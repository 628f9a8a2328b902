/**
 * Opening the far side of a CONNECT tunnel and splicing it to the client:
 *
 *   client ──CONNECT a:443──► proxy ──TCP──► map(a:443)                        (direct)
 *                                   ──TCP, CONNECT map(a:443)──► upstream proxy (chained)
 *
 * Only when the far side is ready does the client get `200 Connection Established`; a refused or
 * unreachable destination gets 502, a slow one 504 (RFC 9110 §15.6.3, §15.6.5). Data then flows through
 * `pipe()` with no per-chunk JS of ours; bytes are read from the sockets' counters at close.
 */
import type { LookupFunction } from 'node:net';
import { connect, type Socket } from 'node:net';
import { errorCode } from '../common/index.js';
import { formatTarget, type Target } from '../common/targets.js';

export interface FarSideFailure {
  /** 502/504; `code` E_DESTINATION_DENIED when the guarded lookup refused the name's address. */
  status: 502 | 504;
  code: string;
  message: string;
}

export interface OpenFarSideOptions {
  destination: Target;
  /** Chain through this proxy instead of connecting directly. */
  upstream?: URL;
  /**
   * The address the destination check already resolved the far host (destination or upstream proxy)
   * to: connect there rather than resolve the name a second time per CONNECT.
   */
  address?: string;
  timeoutMs: number;
  /** Name resolution (a lab resolves its own names; default: the system's). */
  lookup?: LookupFunction;
}

const MAX_HEAD = 16 * 1024;

/**
 * Connects to the destination (or through the upstream proxy to it). Resolves with the connected socket
 * and any bytes the upstream sent after its 200 head; rejects with a `FarSideFailure`.
 */
export function openFarSide(
  opts: OpenFarSideOptions,
  onSocket: (s: Socket) => void,
): Promise<{ socket: Socket; extra?: Buffer }> {
  const { destination, upstream } = opts;
  const host = upstream ? upstream.hostname.replace(/^\[|\]$/g, '') : destination.host;
  const port = upstream ? Number(upstream.port || 80) : destination.port;
  const where = upstream ? `upstream proxy ${host}:${port}` : formatTarget(destination);
  return new Promise((resolve, reject) => {
    // allowHalfOpen: a tunnel carries each direction's FIN on its own (RFC 9110 §9.3.6).
    const socket = connect({
      host: opts.address ?? host,
      port,
      noDelay: true,
      allowHalfOpen: true,
      ...(opts.lookup ? { lookup: opts.lookup } : {}),
    });
    onSocket(socket);
    let settled = false;
    const fail = (f: FarSideFailure) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(f);
    };
    const timer = setTimeout(
      () =>
        fail({ status: 504, code: 'ETIMEDOUT', message: `${where}: no answer within ${opts.timeoutMs}ms` }),
      opts.timeoutMs,
    );
    const onError = (err: Error) => {
      const code = errorCode(err) ?? 'E_UPSTREAM';
      fail({ status: code === 'ETIMEDOUT' ? 504 : 502, code, message: `${where}: ${err.message}` });
    };
    const onEarlyClose = () => fail({ status: 502, code: 'ECONNRESET', message: `${where}: closed early` });
    socket.once('error', onError);
    socket.once('close', onEarlyClose);
    // Only this function's own listeners go: the caller's (e.g. the server's registry of far sockets,
    // which forgets a socket on 'close') must stay, or every tunnel's two sockets are kept for ever.
    const succeed = (r: { socket: Socket; extra?: Buffer }) => {
      settled = true;
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off('close', onEarlyClose);
      resolve(r);
    };
    socket.once('connect', () => {
      if (!upstream) {
        succeed({ socket });
        return;
      }
      const target = formatTarget(destination);
      let req = `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n`;
      if (upstream.username || upstream.password) {
        const user = decodeURIComponent(upstream.username);
        const pass = decodeURIComponent(upstream.password);
        req += `Proxy-Authorization: Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}\r\n`;
      }
      socket.write(`${req}\r\n`);
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > MAX_HEAD)
            fail({ status: 502, code: 'E_UPSTREAM_HEAD', message: `${where}: head too long` });
          return;
        }
        socket.off('data', onData);
        socket.pause();
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head.toString('latin1', 0, end))?.[1] ?? 0);
        if (status !== 200) {
          const line = head.toString('latin1', 0, head.indexOf('\r\n'));
          fail({
            status: 502,
            code: `E_UPSTREAM_${status || 'BAD_REPLY'}`,
            message: `${where} answered: ${line}`,
          });
          return;
        }
        const extra = head.subarray(end + 4);
        succeed(extra.length > 0 ? { socket, extra } : { socket });
      };
      socket.on('data', onData);
    });
  });
}

/**
 * Splices client and far side. Each direction ends on its own (half-close); an error on either side
 * destroys both. Calls `onClose` once both are closed.
 */
export function splice(client: Socket, far: Socket, onClose: () => void): void {
  client.pipe(far);
  far.pipe(client);
  far.resume();
  client.on('error', () => far.destroy());
  far.on('error', () => client.destroy());
  // A side that closes (even cleanly) leaves the other paused: let it drain and end (as proxy-chain's
  // direct tunnel does).
  far.once('close', () => {
    client.resume();
    if (client.writable) client.end();
  });
  client.once('close', () => {
    far.resume();
    if (far.writable) far.end();
  });
  let open = 2;
  const done = () => {
    open--;
    if (open === 0) onClose();
  };
  far.once('close', done);
  client.once('close', done);
}
