import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { FieldlabError } from './errors.js';
import type { SimulatorEvents } from './events.js';
import { hostPort } from './net.js';
import type { ConnectionEvents, TlsClientErrorEvent, TlsEstablishedEvent } from './server-events.js';
import { TLS_ALERTS } from './tls-alerts.js';

/**
 * fieldlab-tls-front (tools/tls-front, Go's crypto/tls) terminating TLS in front of a simulator's plain
 * listener: the way to serve what Node's TLS server (OpenSSL) cannot, a server that ignores the client's
 * max_fragment_length (RFC 6066 §4) and sends full 16 KB records, as AWS IoT Core does.
 *
 *   client ──TLS──▶ fieldlab-tls-front ──PROXY v2 (address, ALPN, SNI, client certificates)──▶ 127.0.0.1:<plain>
 *
 * The front's JSON lines (stderr) become the simulator's events: `connection`, `tls-established` or
 * `tls-client-error`, then `tls-front` and `closed`. It lives as long as the simulator: ended by PID on
 * stop, and by its closed stdin should the simulator's process die first.
 */

export const TLS_FRONT_BINARY = 'fieldlab-tls-front';

/** One connection through the front, when it closed. */
export interface TlsFrontConnectionEvent {
  id: string;
  remote: string;
  /** The max_fragment_length the client asked for, in bytes (512, 1024, 2048, 4096); absent: not asked. */
  mfl?: number;
  /** The record_size_limit the client sent (RFC 8449), if any. */
  recordSizeLimit?: number;
  /** The largest application data record sent to the client: its plaintext bytes (16384 at most). */
  recordBytes?: number;
  /** The same record's length on the wire (plaintext plus the cipher's overhead). */
  wireRecordBytes?: number;
  records?: number;
  /** The alert the client ended the connection with after the handshake (e.g. `record_overflow`). */
  alert?: string;
  /** Why the connection to the simulator failed, if it did. */
  error?: string;
}

export interface TlsFrontEvents extends ConnectionEvents {
  'tls-established': TlsEstablishedEvent;
  'tls-client-error': TlsClientErrorEvent;
  'tls-front': TlsFrontConnectionEvent;
  /** The front ended while the simulator runs (its endpoint no longer answers). */
  'tls-front-exit': { code: number | null; signal: string | null };
}

export interface TlsFrontOptions {
  /** Where the front listens. */
  host: string;
  port: number;
  /** The simulator's plain listener with `proxyProtocol`. */
  upstream: { host: string; port: number };
  certPem: string;
  keyPem: string;
  /** More certificates by server name (SNI). */
  sni?: ReadonlyArray<{ servername: string; certPem: string; keyPem: string }>;
  /** ALPN protocols accepted (the client's choice among them is forwarded). */
  alpn?: readonly string[];
  /** Prefix of connection ids in the events (`mqtts` → `mqtts-front-1`). */
  transport: string;
}

export interface TlsFront {
  /** The port the front listens on. */
  port: number;
  pid: number;
  stop(): Promise<void>;
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The front's binary: `FIELDLAB_TLS_FRONT`, else tools/tls-front/bin/ of this checkout (or image), else
 * PATH. Undefined when it is not built.
 */
export function locateTlsFront(): string | undefined {
  const env = process.env.FIELDLAB_TLS_FRONT;
  if (env) return executable(env) ? env : undefined;
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const p = join(dir, 'tools', 'tls-front', 'bin', TLS_FRONT_BINARY);
    if (executable(p)) return p;
    if (dirname(dir) === dir) break;
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const p = join(dir, TLS_FRONT_BINARY);
    if (executable(p)) return p;
  }
  return undefined;
}

export const TLS_FRONT_MISSING_HINT =
  'build it with `bash scripts/build-tls-front.sh` (needs Go >= 1.21; `bash scripts/setup.sh` runs it), or point FIELDLAB_TLS_FRONT at the binary';

/** How long the front may take to listen. */
const START_TIMEOUT_MS = 10_000;
/** How long it may take to end on SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 3_000;

type Line = Record<string, unknown>;
const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);

/** Starts the front; resolves once it listens. Throws E_TLS_FRONT_MISSING or E_TLS_FRONT. */
export async function startTlsFront(
  name: string,
  events: SimulatorEvents<TlsFrontEvents>,
  o: TlsFrontOptions,
): Promise<TlsFront> {
  const bin = locateTlsFront();
  if (!bin) {
    throw new FieldlabError('E_TLS_FRONT_MISSING', `${name}: ${TLS_FRONT_BINARY} is not built`, {
      hint: TLS_FRONT_MISSING_HINT,
    });
  }
  // The PEMs as files for the front to load at start; removed as soon as it listens.
  const dir = mkdtempSync(join(tmpdir(), 'fieldlab-tls-front-'));
  const file = (f: string, text: string) => {
    const p = join(dir, f);
    writeFileSync(p, text, { mode: 0o600 });
    return p;
  };
  const args = [
    '-listen',
    hostPort(o.host, o.port),
    '-upstream',
    hostPort(o.upstream.host, o.upstream.port),
    '-cert',
    file('cert.pem', o.certPem),
    '-key',
    file('key.pem', o.keyPem),
    ...(o.alpn?.length ? ['-alpn', o.alpn.join(',')] : []),
    ...(o.sni ?? []).flatMap((s, i) => [
      '-sni',
      `${s.servername}=${file(`sni-${i}.pem`, s.certPem)},${file(`sni-${i}-key.pem`, s.keyPem)}`,
    ]),
  ];
  let child: ChildProcess;
  try {
    child = spawn(bin, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw new FieldlabError('E_TLS_FRONT', `${name}: could not start ${bin}`, {
      hint: TLS_FRONT_MISSING_HINT,
      cause: err,
    });
  }
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let stopping = false;
  const starts = new Map<number, number>();
  const id = (line: Line) => `${o.transport}-front-${String(line.id)}`;

  const listening = new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`did not listen within ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS,
    );
    child.once('error', (err) => reject(err));
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      starts.clear();
      reject(new Error(`exited (${signal ?? `code ${String(code)}`}) before listening`));
      if (!stopping) events.emitEvent('tls-front-exit', { code, signal });
    });
    const lines = createInterface({ input: child.stderr! });
    lines.on('line', (text) => {
      let line: Line;
      try {
        line = JSON.parse(text) as Line;
      } catch {
        return; // not one of its lines (a Go runtime message)
      }
      const remote = str(line.remote) ?? '?';
      switch (line.event) {
        case 'listening': {
          clearTimeout(timer);
          const port = Number(/:(\d+)$/.exec(str(line.address) ?? '')?.[1]);
          return Number.isInteger(port) ? resolve(port) : reject(new Error(`bad address ${line.address}`));
        }
        case 'fatal':
          return reject(new Error(str(line.message) ?? 'failed'));
        case 'accept':
          starts.set(Number(line.id), Date.now());
          return events.emitEvent('connection', { id: id(line), remote });
        case 'handshake':
          return events.emitEvent('tls-established', {
            remote,
            protocol: str(line.version) ?? null,
            alpn: str(line.alpn) ?? false,
          });
        case 'handshake-error': {
          const alert = num(line.alert);
          const name = alert !== undefined ? TLS_ALERTS[alert] : undefined;
          return events.emitEvent('tls-client-error', {
            remote,
            ...(name ? { alert: name } : {}),
            message: str(line.message) ?? 'handshake failed',
          });
        }
        case 'close': {
          const e: TlsFrontConnectionEvent = { id: id(line), remote };
          for (const k of ['mfl', 'recordSizeLimit', 'recordBytes', 'wireRecordBytes', 'records'] as const) {
            const v = num(line[k]);
            if (v !== undefined) e[k] = v;
          }
          const error = str(line.error);
          if (error) e.error = error;
          const alert = num(line.alert);
          if (alert !== undefined && TLS_ALERTS[alert]) e.alert = TLS_ALERTS[alert];
          events.emitEvent('tls-front', e);
          const started = starts.get(Number(line.id));
          starts.delete(Number(line.id));
          return events.emitEvent('closed', {
            id: e.id,
            bytesIn: num(line.bytesIn) ?? 0,
            bytesOut: num(line.bytesOut) ?? 0,
            durationMs: num(line.durationMs) ?? (started ? Date.now() - started : 0),
          });
        }
        default:
      }
    });
  });

  const stop = async () => {
    stopping = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin?.end();
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
  };
  try {
    const port = await listening;
    return { port, pid: child.pid ?? 0, stop };
  } catch (err) {
    await stop();
    throw new FieldlabError('E_TLS_FRONT', `${name}: ${TLS_FRONT_BINARY} ${(err as Error).message}`, {
      hint: TLS_FRONT_MISSING_HINT,
      cause: err,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
