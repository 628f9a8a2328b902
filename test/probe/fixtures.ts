import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { alertFromError } from '../../simulators/common/tls-alerts.js';

/**
 * Real servers and certificates for the probe tests: a refused port, a server that never answers, one
 * that resets, TLS servers with good and bad certificates, and a tiny CONNECT proxy (tests only).
 * Everything binds 127.0.0.1 on port 0; `closeAll()` stops what was started.
 *
 * Certificates come from the `openssl` CLI (ECDSA P-256, fast); `openssl ca -startdate/-enddate` gives
 * expired and not-yet-valid leaves without faking the clock (OpenSSL 3.0 `x509 -req` has only -days).
 */

export interface Issued {
  certPem: string;
  keyPem: string;
}

const CA_CNF = `[ca]
default_ca = lab
[lab]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = pol
copy_extensions = copy
unique_subject = no
[pol]
commonName = supplied
[v3_ca]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_leaf]
basicConstraints = CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

function asn1Time(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

export interface TestPki {
  rootPem: string;
  intermediatePem: string;
  /** Leaf for localhost / 127.0.0.1, issued by the intermediate (serve it with the intermediate). */
  good: Issued;
  /** Same chain, but the certificate names only other.example. */
  wrongName: Issued;
  expired: Issued;
  notYetValid: Issued;
  /** A leaf from another root nobody trusts. */
  untrusted: Issued;
  otherRootPem: string;
}

let cached: TestPki | undefined;

/** One PKI per test file, made in a temp dir that is removed before this returns. */
export function testPki(): TestPki {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'fieldlab-probe-pki-'));
  try {
    const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    const read = (f: string) => readFileSync(join(dir, f), 'utf8');
    writeFileSync(join(dir, 'ca.cnf'), CA_CNF);
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'serial'), '1000\n');
    const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    const selfSigned = (name: string) => {
      ossl(
        'req',
        '-x509',
        ...EC,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.pem`,
        '-subj',
        `/CN=${name}`,
        '-days',
        '30',
        '-addext',
        'basicConstraints=critical,CA:true',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      );
    };
    const sign = (name: string, issuer: string, ext: string, from: Date, to: Date, san?: string) => {
      ossl(
        'req',
        '-new',
        ...EC,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-subj',
        `/CN=${name}`,
        ...(san ? ['-addext', `subjectAltName=${san}`] : []),
      );
      ossl(
        'ca',
        '-batch',
        '-config',
        'ca.cnf',
        '-cert',
        `${issuer}.pem`,
        '-keyfile',
        `${issuer}.key`,
        '-in',
        `${name}.csr`,
        '-out',
        `${name}.pem`,
        '-startdate',
        asn1Time(from),
        '-enddate',
        asn1Time(to),
        '-extensions',
        ext,
        '-notext',
      );
    };
    const DAY = 86_400_000;
    const at = (days: number) => new Date(Date.now() + days * DAY);
    selfSigned('root');
    selfSigned('other');
    sign('inter', 'root', 'v3_ca', at(-1), at(30));
    const san = 'DNS:localhost,IP:127.0.0.1';
    sign('good', 'inter', 'v3_leaf', at(-1), at(10), san);
    sign('wrongname', 'inter', 'v3_leaf', at(-1), at(10), 'DNS:other.example');
    sign('expired', 'inter', 'v3_leaf', at(-20), at(-10), san);
    sign('nyv', 'inter', 'v3_leaf', at(10), at(20), san);
    sign('untrusted', 'other', 'v3_leaf', at(-1), at(10), san);
    const issued = (n: string): Issued => ({ certPem: read(`${n}.pem`), keyPem: read(`${n}.key`) });
    cached = {
      rootPem: read('root.pem'),
      intermediatePem: read('inter.pem'),
      good: issued('good'),
      wrongName: issued('wrongname'),
      expired: issued('expired'),
      notYetValid: issued('nyv'),
      untrusted: issued('untrusted'),
      otherRootPem: read('other.pem'),
    };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type Closable = { close(): Promise<void> };
const open: Closable[] = [];

function listenOn(server: Server | HttpServer, sockets: Set<Socket>): Promise<number> {
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      if (a && typeof a === 'object') resolve(a.port);
      else reject(new Error('no address'));
    });
  });
}

function track(server: Server | HttpServer, sockets: Set<Socket>): void {
  open.push({
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  });
}

/** Stops every server started by this module (afterEach). */
export async function closeAll(): Promise<void> {
  const all = open.splice(0);
  await Promise.all(all.map((c) => c.close()));
}

/** A port nothing listens on (bound then closed). */
export async function refusedPort(): Promise<number> {
  const s = createNetServer();
  const port = await listenOn(s, new Set());
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface TcpServer {
  port: number;
  /** Resolves on the first accepted connection. */
  accepted: Promise<Socket>;
}

/** Accepts and then does `onConn` (default: nothing, i.e. never answers). */
export async function tcpServer(onConn: (s: Socket) => void = () => {}): Promise<TcpServer> {
  const sockets = new Set<Socket>();
  let resolveAccepted!: (s: Socket) => void;
  const accepted = new Promise<Socket>((r) => {
    resolveAccepted = r;
  });
  const server = createNetServer((s) => {
    s.on('error', () => {});
    resolveAccepted(s);
    onConn(s);
  });
  const port = await listenOn(server, sockets);
  track(server, sockets);
  return { port, accepted };
}

/** Accepts, reads the first bytes, then sends an RST. */
export function resetServer(): Promise<TcpServer> {
  return tcpServer((s) => s.once('data', () => s.resetAndDestroy()));
}

export interface TlsTestServer {
  port: number;
  /** `tls-client-error`-like records: the alert the client sent, if any. */
  clientErrors: { alert?: string; code?: string; message: string }[];
}

/** A TLS server answering `HTTP/1.1 200` to any request. */
export async function tlsServer(chainPem: string, keyPem: string): Promise<TlsTestServer> {
  const sockets = new Set<Socket>();
  const clientErrors: TlsTestServer['clientErrors'] = [];
  const server = createTlsServer({ cert: chainPem, key: keyPem }, (s: TLSSocket) => {
    s.on('error', () => {});
    s.once('data', () => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'));
  });
  server.on('tlsClientError', (err: Error & { code?: string }) => {
    const alert = alertFromError(err);
    clientErrors.push({
      ...(alert ? { alert } : {}),
      ...(err.code ? { code: err.code } : {}),
      message: err.message,
    });
  });
  const port = await listenOn(server, sockets);
  track(server, sockets);
  return { port, clientErrors };
}

/** A plain HTTP server answering 200 (or `status`) to anything. */
export async function httpServer(status = 200): Promise<number> {
  const sockets = new Set<Socket>();
  const server = createHttpServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(`status ${status}\n`);
  });
  const port = await listenOn(server, sockets);
  track(server, sockets);
  return port;
}

export type ProxyMode = 'tunnel' | 407 | 403 | 502;

export interface TestProxy {
  port: number;
  connects: string[];
}

/**
 * A minimal CONNECT proxy (tests only): tunnels to 127.0.0.1 targets, or answers a fixed status.
 * `auth` makes it demand Basic credentials (407 without them).
 */
export async function connectProxy(
  mode: ProxyMode,
  auth?: { user: string; pass: string },
): Promise<TestProxy> {
  const sockets = new Set<Socket>();
  const connects: string[] = [];
  const server = createHttpServer((_req, res) => {
    res.writeHead(405);
    res.end();
  });
  server.on('connect', (req, client: Socket, head: Buffer) => {
    client.on('error', () => {});
    connects.push(req.url ?? '');
    const want = auth ? `Basic ${Buffer.from(`${auth.user}:${auth.pass}`).toString('base64')}` : undefined;
    if (mode === 407 || (want && req.headers['proxy-authorization'] !== want)) {
      client.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="lab"\r\n\r\n',
      );
      return;
    }
    if (mode === 403) {
      client.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    if (mode === 502) {
      client.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const [host, port] = (req.url ?? '').split(':');
    if (host !== '127.0.0.1' && host !== 'localhost') {
      client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    const up = netConnect(Number(port), '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection established\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(client);
      client.pipe(up);
    });
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    up.on('error', () => client.destroy());
  });
  const port = await listenOn(server, sockets);
  track(server, sockets);
  return { port, connects };
}
