import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { type AddressInfo, connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ConnectionOptions,
  createServer as createTlsServer,
  type TLSSocket,
  type Server as TlsServer,
  connect as tlsConnect,
} from 'node:tls';
import { WebSocketServer } from 'ws';
import type { EventMap, SimulatorEvents } from '../../simulators/common/index.js';
import { CertificateAuthority } from '../../simulators/pki/index.js';

/** Names every lab target certificate covers (the targets' real, lab-trusted certificate). */
export const HOSTS = Array.from({ length: 20 }, (_, i) => `h${i + 1}.lab.example`);
export const TARGET_NAMES = ['api.lab.example', 'pass.lab.example', 'broker.lab.example', ...HOSTS];

/** The lab's own PKI: what real targets' certificates chain to (the inspector's upstream trust). */
export interface LabPki {
  root: CertificateAuthority;
  intermediate: CertificateAuthority;
}

let labPki: Promise<LabPki> | undefined;

/** One lab PKI per test file (generating keys is the slow part; certificates are cheap). */
export function labCa(): Promise<LabPki> {
  labPki ??= (async () => {
    const root = await CertificateAuthority.createRoot({ commonName: 'fieldlab test Lab Root' });
    const intermediate = await root.createIntermediate({ commonName: 'fieldlab test Lab Issuing CA' });
    return { root, intermediate };
  })();
  return labPki;
}

/** An inspector CA: a root `Inspector Root` with an intermediate, as Zscaler deploys it. */
export async function inspectorCa(): Promise<CertificateAuthority> {
  const root = await CertificateAuthority.createRoot({ commonName: 'fieldlab test Inspector Root' });
  return root.createIntermediate({ commonName: 'fieldlab test Inspector Issuing CA' });
}

export interface HttpsTarget {
  server: HttpsServer;
  port: number;
  stop(): Promise<void>;
}

/**
 * The real target: HTTPS (`GET /x` → `target says /x`, `POST` echoes the body) and a WebSocket echo on
 * the same port, with a certificate for TARGET_NAMES and 127.0.0.1 issued by the lab CA.
 */
export async function startHttpsTarget(): Promise<HttpsTarget> {
  const { intermediate } = await labCa();
  const leaf = await intermediate.issueLeaf({ names: TARGET_NAMES, ips: ['127.0.0.1'] });
  const server = createHttpsServer({ cert: leaf.chainPem, key: leaf.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = req.method === 'POST' ? Buffer.concat(chunks) : Buffer.from(`target says ${req.url}`);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      res.end(body);
    });
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })));
  const port = await listenOn(server);
  return {
    server,
    port,
    stop: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A bare TLS server offering `alpn`, which writes `alpn=<negotiated>` and closes. */
export async function startAlpnTarget(
  alpn: string[],
  ca?: CertificateAuthority,
): Promise<{ server: TlsServer; port: number; stop(): Promise<void> }> {
  const issuer = ca ?? (await labCa()).intermediate;
  const leaf = await issuer.issueLeaf({ names: TARGET_NAMES, ips: ['127.0.0.1'] });
  const sockets = new Set<Socket>();
  const server = createTlsServer({ cert: leaf.chainPem, key: leaf.keyPem, ALPNProtocols: alpn }, (s) => {
    s.on('error', () => undefined);
    s.end(`alpn=${s.alpnProtocol}`);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  const port = await listenOn(server);
  return {
    server,
    port,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function listenOn(server: HttpsServer | TlsServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

/** Opens a CONNECT tunnel by hand; resolves with the status and the socket (left open on 200). */
export function openTunnel(
  proxyPort: number,
  target: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: '127.0.0.1', port: proxyPort });
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
    socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${extra.join('')}\r\n`);
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      socket.pause();
      if (buf.length > end + 4) socket.unshift(buf.subarray(end + 4));
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(buf.toString('latin1'))?.[1] ?? 0);
      resolve({ status, socket });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('proxy closed before answering CONNECT')));
  });
}

/** TLS through the proxy to `target` (host:port); resolves once the handshake and checks pass. */
export async function tlsThrough(
  proxyPort: number,
  target: string,
  opts: ConnectionOptions,
): Promise<TLSSocket> {
  const { status, socket } = await openTunnel(proxyPort, target);
  if (status !== 200) {
    socket.destroy();
    throw new Error(`CONNECT ${target} got ${status}`);
  }
  socket.removeAllListeners('close');
  socket.removeAllListeners('error');
  return new Promise((resolve, reject) => {
    const host = target.slice(0, target.lastIndexOf(':'));
    const t = tlsConnect({ socket, servername: /^[\d.]+$/.test(host) ? '' : host, host, ...opts });
    t.once('secureConnect', () => resolve(t));
    t.once('error', (err) => {
      // Node leaves the tunnel's TCP socket open after a failed verification: close it as a client app would.
      t.destroy();
      socket.destroy();
      reject(err);
    });
  });
}

/** Reads a TLS socket to its end. */
export function readAll(s: TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      out += d;
    });
    s.once('end', () => resolve(out));
    s.once('error', reject);
  });
}

/** Runs a command (no shell), bounded; never rejects on a non-zero exit. */
export function run(
  cmd: string,
  args: string[],
  timeoutMs = 15_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(); // openssl s_client reads stdin until EOF
  });
}

/** A temp dir for PEM files; remove with the returned function. */
export function tempFiles(files: Record<string, string>): {
  dir: string;
  path(name: string): string;
  remove(): void;
} {
  const dir = mkdtempSync(join(tmpdir(), 'fieldlab-tlsi-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return {
    dir,
    path: (name) => join(dir, name),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The next event of `type` matching `pred`, or a rejection after `timeoutMs`. */
export function nextEvent<M extends EventMap, K extends keyof M & string>(
  events: SimulatorEvents<M>,
  type: K,
  pred: (d: M[K]) => boolean = () => true,
  timeoutMs = 5000,
): Promise<M[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      events.off(type, on);
      reject(new Error(`no ${type} event within ${timeoutMs}ms`));
    }, timeoutMs);
    const on = (d: M[K]) => {
      if (!pred(d)) return;
      clearTimeout(timer);
      events.off(type, on);
      resolve(d);
    };
    events.on(type, on);
  });
}
