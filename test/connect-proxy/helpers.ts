import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import {
  type Agent,
  createServer as createHttpsServer,
  type Server as HttpsServer,
  get as httpsGet,
} from 'node:https';
import {
  type AddressInfo,
  createServer as createNetServer,
  connect as netConnect,
  type Server,
  type Socket,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { execa } from 'execa';
import type { EventMap, SimulatorEvents } from '../../simulators/common/index.js';

export interface TestCert {
  dir: string;
  certPem: string;
  keyPem: string;
  certPath: string;
  cleanup(): void;
}

/** A self-signed certificate for `lab.example`, `*.lab.example`, 127.0.0.1, made with the openssl CLI. */
export function makeCert(cn = 'lab.example'): TestCert {
  const dir = mkdtempSync(join(tmpdir(), 'fieldlab-cp-'));
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      `subjectAltName=DNS:${cn},DNS:*.lab.example,IP:127.0.0.1`,
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ],
    { stdio: 'ignore', timeout: 10_000 },
  );
  return {
    dir,
    certPath,
    certPem: readFileSync(certPath, 'utf8'),
    keyPem: readFileSync(keyPath, 'utf8'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface Target {
  port: number;
  stop(): Promise<void>;
}

function track(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return sockets;
}

async function listenOn(server: HttpServer | HttpsServer, host = '127.0.0.1'): Promise<Target> {
  const sockets = track(server);
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** HTTPS target: `GET /x` → `tls target says /x (host: <Host>)`. */
export function startHttpsTarget(cert: TestCert, host = '127.0.0.1'): Promise<Target> {
  const server = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    res.end(`tls target says ${req.url} (host: ${req.headers.host})`);
  });
  return listenOn(server, host);
}

/** Plain HTTP target: `GET /x` → `http target says /x (host: <Host>)`. */
export function startHttpTarget(host = '127.0.0.1'): Promise<Target> {
  const server = createHttpServer((req, res) => {
    res.end(`http target says ${req.url} (host: ${req.headers.host})`);
  });
  return listenOn(server, host);
}

/** Runs a CLI to completion (bounded), never rejecting on a non-zero exit. */
/** An HTTPS GET through `agent` (a proxy agent, as a user's Node client uses one); resolves with the body. */
export function httpsText(
  url: string,
  opts: { agent: Agent; ca: string; servername?: string },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { ...opts, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export async function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}) {
  const r = await execa(cmd, args, {
    reject: false,
    timeout: opts.timeoutMs ?? 10_000,
    ...(opts.input === undefined ? { stdin: 'ignore' as const } : { input: opts.input }),
    env: { NO_PROXY: '', no_proxy: '', HTTPS_PROXY: '', https_proxy: '', HTTP_PROXY: '', http_proxy: '' },
  });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Resolves with the next event of `type`, or rejects after `timeoutMs`. */
export function nextEvent<M extends EventMap, K extends keyof M & string>(
  events: SimulatorEvents<M>,
  type: K,
  timeoutMs = 5000,
): Promise<M[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      events.off(type, on);
      reject(new Error(`no ${type} event within ${timeoutMs}ms`));
    }, timeoutMs);
    const on = (data: M[K]) => {
      clearTimeout(timer);
      resolve(data);
    };
    events.onceEvent(type, on);
  });
}

/** Collects every event of `type` from now on. */
export function collect<M extends EventMap, K extends keyof M & string>(
  events: SimulatorEvents<M>,
  type: K,
): Array<M[K]> {
  const out: Array<M[K]> = [];
  events.onEvent(type, (d) => out.push(d));
  return out;
}

export function writeFileIn(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

export interface RawResponse {
  status: number;
  /** The head's lines after the status line, exactly as sent (casing included). */
  lines: string[];
  body: string;
}

/**
 * One client connection to a proxy, read response by response (head, then a `Content-Length` body), so a
 * test can send the next request on the same socket, as clients that retry after a 407 do.
 */
export class RawProxyConnection {
  private buf = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawProxyConnection> {
    return new Promise((resolve, reject) => {
      const s = netConnect(port, host, () => {
        s.off('error', reject);
        resolve(new RawProxyConnection(s));
      });
      s.once('error', reject);
    });
  }

  /** The same over TLS to an https:// proxy. */
  static openTls(port: number, ca: string, servername: string): Promise<RawProxyConnection> {
    return new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, servername }, () => {
        s.off('error', reject);
        resolve(new RawProxyConnection(s));
      });
      s.once('error', reject);
    });
  }

  send(text: string): void {
    this.socket.write(text);
  }

  /** The next response; `tunnel`: a 2xx to CONNECT has no content (RFC 9110 §9.3.6). */
  async response(opts: { tunnel?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
    const end = await this.until(() => {
      const i = this.buf.indexOf('\r\n\r\n');
      return i < 0 ? undefined : i;
    }, opts.timeoutMs);
    const head = this.buf.toString('latin1', 0, end).split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
    const lines = head.slice(1);
    const lengthLine = lines.find((l) => /^content-length:/i.test(l));
    const length = opts.tunnel && status >= 200 && status < 300 ? 0 : Number(lengthLine?.split(':')[1] ?? 0);
    await this.until(() => (this.buf.length >= end + 4 + length ? true : undefined), opts.timeoutMs);
    const body = this.buf.toString('utf8', end + 4, end + 4 + length);
    this.buf = this.buf.subarray(end + 4 + length);
    return { status, lines, body };
  }

  /** The next `n` bytes (through a tunnel). */
  async read(n: number, timeoutMs?: number): Promise<string> {
    await this.until(() => (this.buf.length >= n ? true : undefined), timeoutMs);
    const out = this.buf.toString('latin1', 0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Resolves once the proxy has closed the connection. */
  async ended(timeoutMs?: number): Promise<void> {
    await this.until(() => (this.closed ? true : undefined), timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private until<T>(ready: () => T | undefined, timeoutMs = 5000): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = ready();
        if (v !== undefined) {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve(v);
        } else if (this.closed) {
          clearTimeout(timer);
          this.waiter = undefined;
          reject(
            new Error(
              `the proxy closed the connection (have: ${JSON.stringify(this.buf.toString('latin1'))})`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(
          new Error(
            `no complete answer within ${timeoutMs} ms (have: ${JSON.stringify(this.buf.toString('latin1'))})`,
          ),
        );
      }, timeoutMs);
      this.waiter = check;
      check();
    });
  }
}

/** An echo server on `host` (a loopback address); counts the connections it accepted. */
export async function startEcho(host = '127.0.0.1'): Promise<Target & { accepted: () => number }> {
  let accepted = 0;
  const server = createNetServer((s) => {
    accepted++;
    s.on('error', () => undefined);
    s.pipe(s);
  });
  const sockets = track(server);
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** `Proxy-Authorization: Basic ...` for `user:pass`. */
export function basicAuth(user: string, pass: string): string {
  return `Proxy-Authorization: Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}\r\n`;
}
