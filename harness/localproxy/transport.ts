import { readdir, readFile, stat } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { rootCertificates, type TLSSocket, connect as tlsConnect } from 'node:tls';
import WebSocket from 'ws';
import { MAX_WS_FRAME_BYTES } from '../../simulators/tunnel-service/frame.js';
import type { FailureClass } from '../probe/classes.js';
import { classifyError, classifyStatus } from '../probe/node-errors.js';
import type { ServiceEndpoint } from './options.js';

/**
 * One connection attempt to the tunnel service, step by step so each failure is told apart:
 *
 * ```
 * TCP (direct, or to the HTTPS_PROXY + CONNECT) ─▶ TLS (SNI, CA path, -k) ─▶ GET /tunnel upgrade ─▶ ws
 * ```
 * The socket is built here and handed to `ws` through `createConnection`, so the proxy and the TLS
 * handshake are ours (and `drain` of the raw socket drives backpressure).
 */

/** Why an attempt failed, and whether the AWS localproxy would retry. */
export class AttemptError extends Error {
  constructor(
    message: string,
    /** E_TUNNEL_TOKEN_USED, E_TUNNEL_HANDSHAKE_REJECTED, E_TUNNEL_HANDSHAKE_5XX, E_TUNNEL_CONNECT... */
    readonly code: string,
    readonly retry: boolean,
    readonly failureClass: FailureClass,
    readonly status?: number,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export interface AttemptOptions {
  endpoint: ServiceEndpoint;
  mode: 'source' | 'destination';
  subprotocol: string;
  accessToken: string;
  clientToken?: string | undefined;
  httpsProxy?: string | undefined;
  /** Trusted roots; undefined = Node's defaults. */
  ca?: string[] | undefined;
  noSslHostVerify: boolean;
  timeoutMs: number;
  zeroMask: boolean;
  /** Aborts the attempt (the localproxy is stopping). */
  signal?: AbortSignal;
}

export interface Attempt {
  ws: WebSocket;
  /** The raw socket under the WebSocket (TLS or TCP). */
  socket: Socket;
  url: string;
  protocol: string;
  channelId?: string;
}

/** Every PEM certificate in the files of `dir` (an `openssl rehash`-ed directory: links and originals). */
export async function loadCaPath(dir: string): Promise<string[]> {
  const seen = new Set<string>();
  for (const entry of await readdir(dir)) {
    const file = join(dir, entry);
    const st = await stat(file).catch(() => undefined);
    if (!st?.isFile()) continue;
    const text = await readFile(file, 'utf8').catch(() => '');
    for (const m of text.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)) {
      seen.add(`${m[0]}\n`);
    }
  }
  return [...seen];
}

/** System roots plus `extra`. */
export function withSystemRoots(extra: string[]): string[] {
  return [...rootCertificates, ...extra];
}

const ZERO_MASK = (mask: Buffer): void => {
  mask.fill(0);
};

function authority(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function timeout<T>(p: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        onTimeout();
        reject(new AttemptError(`${what} timed out after ${ms} ms`, 'E_TUNNEL_CONNECT', true, 'tcp.timeout'));
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function tcp(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host, port });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

/** RFC 9110 §9.3.6: CONNECT host:port through the proxy; credentials from the URL (RFC 7617 Basic). */
async function viaProxy(proxyUrl: string, target: ServiceEndpoint): Promise<Socket> {
  let url: URL;
  try {
    url = new URL(proxyUrl);
  } catch {
    throw new AttemptError(`HTTPS_PROXY "${proxyUrl}" is not a URL`, 'E_BAD_OPTION', false, 'client.error');
  }
  if (url.protocol !== 'http:') {
    throw new AttemptError(
      `HTTPS_PROXY scheme ${url.protocol} not supported`,
      'E_BAD_OPTION',
      false,
      'proxy.scheme-mismatch',
      undefined,
      'use http://[user:pass@]host:port',
    );
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 80);
  let s: Socket;
  try {
    s = await tcp(host, port);
  } catch (err) {
    throw new AttemptError(
      `proxy ${authority(host, port)} unreachable: ${(err as Error).message}`,
      'E_TUNNEL_PROXY',
      true,
      'proxy.unreachable',
    );
  }
  const dest = authority(target.host, target.port);
  let head = `CONNECT ${dest} HTTP/1.1\r\nHost: ${dest}\r\n`;
  if (url.username !== '' || url.password !== '') {
    const cred = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    head += `Proxy-Authorization: Basic ${Buffer.from(cred).toString('base64')}\r\n`;
  }
  s.write(`${head}\r\n`);
  const answer = await new Promise<{ status: number; rest: Buffer }>((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > 16_384) done(new Error('proxy answer headers over 16 KB'));
        return;
      }
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(buf.toString('latin1', 0, end))?.[1] ?? 0);
      done(undefined, { status, rest: buf.subarray(end + 4) });
    };
    const onEnd = () => done(new Error('proxy closed the connection before answering CONNECT'));
    const done = (err?: Error, v?: { status: number; rest: Buffer }) => {
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('error', onEnd);
      s.pause();
      if (err) reject(err);
      else resolve(v as { status: number; rest: Buffer });
    };
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('error', onEnd);
  }).catch((err: Error) => {
    s.destroy();
    throw new AttemptError(err.message, 'E_TUNNEL_PROXY', true, 'tcp.reset');
  });
  if (answer.status !== 200) {
    s.destroy();
    const v = classifyStatus(answer.status, { viaProxyConnect: true });
    const cls = v.ok ? 'http.status' : v.class;
    // A proxy refusal is configuration, not a transient failure: retrying cannot help.
    const retry = answer.status >= 500;
    throw new AttemptError(
      `proxy answered CONNECT ${dest} with HTTP ${answer.status}`,
      'E_TUNNEL_PROXY',
      retry,
      cls,
      answer.status,
    );
  }
  if (answer.rest.length > 0) s.unshift(answer.rest);
  return s;
}

function tlsWrap(raw: Socket, o: AttemptOptions): Promise<TLSSocket> {
  const host = o.endpoint.host;
  return new Promise((resolve, reject) => {
    const t = tlsConnect({
      socket: raw,
      ...(isIP(host) ? {} : { servername: host }),
      host,
      minVersion: 'TLSv1.2',
      ...(o.ca ? { ca: o.ca } : {}),
      // -k: the AWS localproxy sets verify_none, so no chain or name check at all.
      rejectUnauthorized: !o.noSslHostVerify,
    });
    t.once('secureConnect', () => {
      t.off('error', onError);
      resolve(t);
    });
    const onError = (err: Error) => {
      raw.destroy();
      reject(err);
    };
    t.once('error', onError);
  });
}

async function readBody(res: IncomingMessage, limit = 4096, ms = 1000): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    const finish = () => {
      clearTimeout(timer);
      resolve(body.trim());
    };
    const timer = setTimeout(finish, ms);
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      if (body.length < limit) body += c;
    });
    res.once('end', finish);
    res.once('error', finish);
  });
}

/** Maps a refused handshake to the error a person can act on. */
function refusal(status: number, statusText: string, body: string): AttemptError {
  const said = body ? ` (${body.slice(0, 200)})` : '';
  const base = `tunnel service refused the WebSocket handshake: HTTP ${status} ${statusText}${said}`;
  if (status >= 500) return new AttemptError(base, 'E_TUNNEL_HANDSHAKE_5XX', true, 'http.status', status);
  if (status === 403 && /\bused\b/i.test(body)) {
    return new AttemptError(
      `${base}; likely cause: tunnel.token-used: the access token was already used by another connection`,
      'E_TUNNEL_TOKEN_USED',
      false,
      'tunnel.token-used',
      status,
      'rotate the access token (RotateTunnelAccessToken), or reconnect with the client token (-i) given first',
    );
  }
  if (status === 403 && /closed/i.test(body)) {
    return new AttemptError(
      `${base}; likely cause: tunnel.closed`,
      'E_TUNNEL_CLOSED',
      false,
      'tunnel.closed',
      status,
    );
  }
  const cause =
    status === 401
      ? 'no access token (-t or AWSIOT_TUNNEL_ACCESS_TOKEN)'
      : status === 403
        ? 'the access token is unknown, rotated (revoked) or for the other mode (-m)'
        : 'the request was malformed (client token format, path, subprotocol)';
  return new AttemptError(
    `${base}; likely cause: ${cause}`,
    'E_TUNNEL_HANDSHAKE_REJECTED',
    false,
    'auth.rejected',
    status,
    'a 4xx is not retried: fix the token or options and start again',
  );
}

/** One full attempt: resolves once the WebSocket is open; rejects with an `AttemptError`. */
export async function attempt(o: AttemptOptions): Promise<Attempt> {
  const { endpoint } = o;
  let raw: Socket | undefined;
  let ws: WebSocket | undefined;
  const abort = () => {
    ws?.terminate();
    raw?.destroy();
  };
  const run = async (): Promise<Attempt> => {
    try {
      raw = o.httpsProxy ? await viaProxy(o.httpsProxy, endpoint) : await tcp(endpoint.host, endpoint.port);
    } catch (err) {
      if (err instanceof AttemptError) throw err;
      const v = classifyError(err);
      throw new AttemptError(
        `TCP connection to ${authority(endpoint.host, endpoint.port)} failed: ${(err as Error).message}`,
        'E_TUNNEL_CONNECT',
        true,
        v.ok ? 'client.error' : v.class,
      );
    }
    raw.setNoDelay(true);
    let sock: Socket = raw;
    if (endpoint.tls) {
      try {
        sock = await tlsWrap(raw, o);
      } catch (err) {
        const v = classifyError(err, o.httpsProxy ? { viaProxy: true } : {});
        throw new AttemptError(
          `TLS handshake with ${endpoint.host} failed: ${(err as Error).message}`,
          'E_TUNNEL_TLS',
          true,
          v.ok ? 'tls.handshake' : v.class,
          undefined,
          'give the CA directory with -c (openssl rehash-ed), or -k to skip verification',
        );
      }
    }
    const scheme = endpoint.tls ? 'wss' : 'ws';
    const url = `${scheme}://${authority(endpoint.host, endpoint.port)}/tunnel?local-proxy-mode=${o.mode}`;
    const headers: Record<string, string> = {
      'access-token': o.accessToken,
      'user-agent': 'fieldlab-localproxy/3.1',
    };
    if (o.clientToken) headers['client-token'] = o.clientToken;
    const s = sock;
    const socket = new WebSocket(url, [o.subprotocol], {
      headers,
      perMessageDeflate: false,
      // The service never sends frames over 131076 bytes; leave room for a lenient peer.
      maxPayload: MAX_WS_FRAME_BYTES * 8,
      skipUTF8Validation: true,
      createConnection: () => s,
      ...(o.zeroMask ? { generateMask: ZERO_MASK } : {}),
    });
    ws = socket;
    return new Promise<Attempt>((resolve, reject) => {
      let channelId: string | undefined;
      socket.once('upgrade', (res: IncomingMessage) => {
        const c = res.headers['channel-id'];
        if (typeof c === 'string') channelId = c;
      });
      socket.once('open', () => {
        socket.off('error', onError);
        socket.on('error', () => {});
        // The service's first message (SERVICE_IDS) may come with the 101: hold it until the session
        // listens (resumed by the session).
        socket.pause();
        resolve({
          ws: socket,
          socket: s,
          url,
          protocol: socket.protocol,
          ...(channelId ? { channelId } : {}),
        });
      });
      socket.once('unexpected-response', (_req, res: IncomingMessage) => {
        socket.off('error', onError);
        socket.on('error', () => {});
        void readBody(res).then((body) => {
          s.destroy();
          reject(refusal(res.statusCode ?? 0, res.statusMessage ?? '', body));
        });
      });
      const onError = (err: Error) => {
        s.destroy();
        // ws: "Server sent no subprotocol" / "Server sent an invalid subprotocol": localproxy aborts.
        if (/subprotocol/i.test(err.message)) {
          reject(
            new AttemptError(
              `handshake: ${err.message} (offered ${o.subprotocol})`,
              'E_TUNNEL_SUBPROTOCOL',
              false,
              'client.error',
              101,
              'the service must echo the aws.iot.securetunneling-* subprotocol offered; for an older lab service offer 2.0 or 1.0 (--subprotocol)',
            ),
          );
          return;
        }
        const v = classifyError(err);
        reject(
          new AttemptError(
            `WebSocket handshake failed: ${err.message}`,
            'E_TUNNEL_CONNECT',
            true,
            v.ok ? 'client.error' : v.class,
          ),
        );
      };
      socket.once('error', onError);
    });
  };
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = () => {
      abort();
      reject(new AttemptError('attempt aborted (stopping)', 'E_TUNNEL_ABORTED', false, 'client.error'));
    };
    if (o.signal?.aborted) onAbort();
    else o.signal?.addEventListener('abort', onAbort, { once: true });
  });
  aborted.catch(() => {});
  const running = run();
  running.then(
    (a) => {
      // Opened after an abort: close it.
      if (o.signal?.aborted) a.ws.terminate();
    },
    () => {},
  );
  return timeout(
    Promise.race([running, aborted]),
    o.timeoutMs,
    `connecting to ${authority(endpoint.host, endpoint.port)}`,
    abort,
  );
}
