import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
