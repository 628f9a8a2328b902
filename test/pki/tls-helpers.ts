import { execFile } from 'node:child_process';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import { errorCode } from '../../simulators/common/errors.js';

export interface HandshakeResult {
  ok: boolean;
  /** The client's error code when the handshake failed (CERT_HAS_EXPIRED, ...). */
  code: string | undefined;
  /** What the server saw of the client certificate (mTLS). */
  serverSaw: { authorized: boolean; authorizationError?: string; peerCn?: string } | undefined;
}

export interface ServerSide {
  chainPem: string;
  keyPem: string;
  /** mTLS: require a client certificate signed by these CAs. */
  clientCa?: string;
}

export interface ClientSide {
  ca: string;
  servername?: string;
  cert?: string;
  key?: string;
}

/**
 * One real TLS handshake on 127.0.0.1: a `tls.createServer` serving `server`, a `tls.connect` client
 * trusting `client.ca`. Resolves with the client's verdict; bounded by `timeoutMs`.
 */
export async function handshake(
  server: ServerSide,
  client: ClientSide,
  timeoutMs = 5000,
): Promise<HandshakeResult> {
  const srv: tls.Server = tls.createServer({
    cert: server.chainPem,
    key: server.keyPem,
    ...(server.clientCa ? { ca: server.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
  });
  let serverSaw: HandshakeResult['serverSaw'];
  const sawClient = new Promise<void>((resolve) => {
    srv.on('secureConnection', (sock) => {
      const peer = sock.getPeerCertificate();
      serverSaw = {
        authorized: sock.authorized,
        ...(sock.authorizationError ? { authorizationError: String(sock.authorizationError) } : {}),
        ...(peer?.subject?.CN ? { peerCn: String(peer.subject.CN) } : {}),
      };
      sock.end('hello');
      resolve();
    });
    srv.on('tlsClientError', () => resolve());
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = srv.address() as AddressInfo;
  const sockets = new Set<Socket>();
  srv.on('connection', (s) => sockets.add(s));
  let socket: tls.TLSSocket | undefined;
  try {
    const verdict = new Promise<{ ok: boolean; code: string | undefined }>((resolve) => {
      socket = tls.connect({
        host: '127.0.0.1',
        port,
        ca: client.ca,
        ...(client.servername ? { servername: client.servername } : {}),
        ...(client.cert ? { cert: client.cert, key: client.key } : {}),
      });
      socket.once('secureConnect', () => resolve({ ok: true, code: undefined }));
      socket.once('error', (err) => resolve({ ok: false, code: errorCode(err) }));
    });
    const result = await withTimeout(verdict, timeoutMs, 'TLS handshake');
    if (result.ok && server.clientCa) await withTimeout(sawClient, timeoutMs, 'server secureConnection');
    return { ...result, serverSaw };
  } finally {
    socket?.destroy();
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  }
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command (bounded); never rejects on a non-zero exit. */
export function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof (err as { code?: unknown }).code !== 'number') reject(err);
      else resolve({ code: err ? Number((err as { code?: unknown }).code) : 0, stdout, stderr });
    });
  });
}
