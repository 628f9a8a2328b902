/**
 * Intercepted HTTPS requests per second through the TLS inspector, one NEW connection per request
 * (CONNECT + client TLS with a forged leaf + the proxy's own TLS upstream + GET), concurrency 8:
 *   - warm leaf cache: every request for one host;
 *   - cold leaf cache: every request for a host never seen before (one signing per request);
 * beside Debian's mitmproxy (`mitmdump`) doing the same work on the same target.
 *
 * The load client and the HTTPS target run in a worker thread, so the client's TLS work does not share
 * the inspector's event loop (mitmproxy runs in its own process). Clients CONNECT to the target's
 * address and send the host as SNI; both proxies forge a leaf for the SNI and connect to the address.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import {
  type AddressInfo,
  createServer as createNetServer,
  connect as netConnect,
  type Socket,
} from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { createSecureContext, type SecureContext, TLSSocket, connect as tlsConnect } from 'node:tls';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { which } from '../harness/capabilities.js';
import { CertificateAuthority } from '../simulators/pki/index.js';
import { start as startInspector } from '../simulators/tls-inspector/index.js';
import {
  type BenchReport,
  buildReport,
  formatReport,
  interleave,
  median,
  processCpuMs,
  quick,
} from './lib.js';

const CONCURRENCY = 8;
const DOMAIN = 'bench.lab.example';

interface LoadJob {
  proxyPort: number;
  ca: string;
  /** `warm`: one name for all; else a prefix for fresh names. */
  names: { kind: 'warm' } | { kind: 'cold'; prefix: string };
  durationMs: number;
}

interface LoadResult {
  ok: number;
  errors: number;
  elapsedMs: number;
  firstError?: string;
}

type DriverMessage =
  | { id: number; cmd: 'target'; certPem: string; keyPem: string }
  | { id: number; cmd: 'load'; job: LoadJob }
  | { id: number; cmd: 'stop' };

type Command = DriverMessage extends infer M ? (M extends unknown ? Omit<M, 'id'> : never) : never;

// ---------------------------------------------------------------- worker: target + load client

let targetPort = 0;

function driver(): void {
  const port = parentPort!;
  let closeTarget: (() => void) | undefined;
  port.on('message', async (msg: DriverMessage) => {
    if (msg.cmd === 'target') {
      const server = createHttpsServer({ cert: msg.certPem, key: msg.keyPem }, (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
        res.end('ok');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      targetPort = (server.address() as AddressInfo).port;
      closeTarget = () => {
        server.closeAllConnections();
        server.close();
      };
      port.postMessage({ id: msg.id, port: targetPort });
    } else if (msg.cmd === 'load') {
      port.postMessage({ id: msg.id, result: await load(msg.job) });
    } else {
      closeTarget?.();
      port.postMessage({ id: msg.id });
      port.close();
    }
  });
}

async function load(job: LoadJob): Promise<LoadResult> {
  const t0 = performance.now();
  const deadline = t0 + job.durationMs;
  let ok = 0;
  let errors = 0;
  let next = 0;
  let firstError: string | undefined;
  // One context per run, as a real client keeps one: building one per connection re-parses the CAs.
  const secureContext = createSecureContext({ ca: job.ca });
  const nameFor = () =>
    job.names.kind === 'warm' ? `warm.${DOMAIN}` : `${job.names.prefix}-${next++}.${DOMAIN}`;
  const worker = async () => {
    while (performance.now() < deadline) {
      try {
        await oneRequest(job.proxyPort, nameFor(), secureContext);
        ok++;
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { ok, errors, elapsedMs: performance.now() - t0, ...(firstError ? { firstError } : {}) };
}

/** One request on a new connection: CONNECT, TLS with SNI `name`, GET, read to the end. */
function oneRequest(proxyPort: number, name: string, secureContext: SecureContext): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('request timed out')), 10_000);
    const sock = netConnect({
      host: '127.0.0.1',
      port: proxyPort === 0 ? targetPort : proxyPort,
      noDelay: true,
    });
    const fail = (err: Error) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    sock.once('error', fail);
    const request = () => {
      const t = tlsConnect({ socket: sock, servername: name, secureContext });
      t.once('error', fail);
      t.once('secureConnect', () => t.write(`GET / HTTP/1.1\r\nHost: ${name}\r\nConnection: close\r\n\r\n`));
      let body = '';
      t.setEncoding('latin1');
      t.on('data', (c: string) => {
        body += c;
      });
      t.once('end', () => {
        clearTimeout(timer);
        t.destroy();
        if (body.startsWith('HTTP/1.1 200')) resolve();
        else reject(new Error(`bad response: ${body.slice(0, 60)}`));
      });
    };
    // Port 0: straight to the target, no proxy (the ceiling of this client and target).
    if (proxyPort === 0) {
      request();
      return;
    }
    sock.write(`CONNECT 127.0.0.1:${targetPort} HTTP/1.1\r\nHost: 127.0.0.1:${targetPort}\r\n\r\n`);
    let head = Buffer.alloc(0);
    const onHead = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      sock.off('data', onHead);
      if (
        !head
          .subarray(0, 12)
          .toString('latin1')
          .match(/^HTTP\/1\.[01] 200/)
      ) {
        fail(new Error(`CONNECT: ${head.subarray(0, end).toString('latin1')}`));
        return;
      }
      request();
    };
    sock.on('data', onHead);
  });
}

// ---------------------------------------------------------------- main thread

class Driver {
  private nextId = 1;
  private readonly pending = new Map<number, (v: unknown) => void>();
  constructor(private readonly worker: Worker) {
    worker.on('message', (m: { id: number }) => {
      this.pending.get(m.id)?.(m);
      this.pending.delete(m.id);
    });
  }

  call<T>(msg: Command): Promise<T> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve as (v: unknown) => void);
      this.worker.postMessage({ ...msg, id });
    });
  }
}

/** Starts mitmdump on a free port with a temp confdir; resolves once its CA exists and it accepts. */
async function startMitmproxy(): Promise<
  { port: number; pid: number; caPem: string; stop(): Promise<void> } | string
> {
  const exe = which('mitmdump');
  if (!exe) return 'mitmdump is not installed (apt-get install mitmproxy): mitmproxy reference skipped';
  const confdir = mkdtempSync(join(tmpdir(), 'fieldlab-mitm-'));
  const port = await freePort();
  const child: ChildProcess = spawn(
    exe,
    [
      '--listen-host',
      '127.0.0.1',
      '--listen-port',
      String(port),
      '--set',
      `confdir=${confdir}`,
      '--ssl-insecure',
      '-q',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const stop = async () => {
    if (child.exitCode === null && child.pid !== undefined) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      process.kill(child.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) process.kill(child.pid, 'SIGKILL');
    }
    rmSync(confdir, { recursive: true, force: true });
  };
  const caPath = join(confdir, 'mitmproxy-ca-cert.pem');
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    if (existsSync(caPath) && (await accepts(port)))
      return { port, pid: child.pid ?? 0, caPem: readFileSync(caPath, 'utf8'), stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  const why = stderr.trim().slice(0, 200) || 'no output';
  return `mitmdump did not start (${why}): mitmproxy reference skipped`;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** This (main) thread's user + system CPU in ms: the inspector's and the bare proxy's thread. */
function mainThreadCpuMs(): number {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * The floor any Node TLS-inspecting proxy pays: CONNECT, 200, the client's TLS terminated with one fixed
 * certificate (`perConnectionContext`: a TLS context built for each connection, as a cold leaf needs),
 * the proxy's own verified TLS upstream, bytes piped both ways. No ClientHello reading, no leaf, no events.
 */
async function startBareProxy(
  cert: { chainPem: string; keyPem: string },
  upstreamCa: string,
  perConnectionContext: boolean,
): Promise<{ port: number; stop(): void }> {
  const fixed = createSecureContext({ cert: cert.chainPem, key: cert.keyPem });
  const upstreamContext = createSecureContext({ ca: upstreamCa });
  const open = new Set<Duplex>();
  const server = createHttpServer();
  server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const [host = '', port = '443'] = (req.url ?? '').split(':');
    socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length > 0) socket.unshift(head);
    const secureContext = perConnectionContext
      ? createSecureContext({ cert: cert.chainPem, key: cert.keyPem })
      : fixed;
    const client = new TLSSocket(socket, { isServer: true, secureContext });
    const up = tlsConnect({
      host,
      port: Number(port),
      secureContext: upstreamContext,
      servername: `bare.${DOMAIN}`,
    });
    for (const s of [socket, client, up]) {
      open.add(s);
      s.once('close', () => open.delete(s));
      s.on('error', () => {
        client.destroy();
        up.destroy();
      });
    }
    client.pipe(up).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    stop() {
      for (const s of open) s.destroy();
      server.close();
    },
  };
}

/** Runs the benchmark (see the file comment); `--quick` makes short windows. */
export async function run(): Promise<BenchReport> {
  const rounds = 3;
  const windowMs = quick() ? 600 : 4000;
  const notes: string[] = [
    `new connection per request, concurrency ${CONCURRENCY}, ${rounds} interleaved rounds of ${windowMs}ms`,
    'clients CONNECT to the target address with the host as SNI; both proxies forge a leaf per SNI',
    'fieldlab verifies the target against the lab CA; mitmproxy runs with --ssl-insecure',
    'CPU per request: the proxy thread’s CPU (mitmproxy: its process’s) over the requests it served',
    'bare-node: CONNECT + TLS with one fixed certificate + TLS upstream + pipe (no hello, no leaf, no events); ' +
      'bare-node+context: the same with a TLS context built per connection (what a cold leaf adds at least)',
  ];

  const labRoot = await CertificateAuthority.createRoot({ commonName: 'fieldlab bench Lab Root' });
  const targetLeaf = await labRoot.issueLeaf({ names: [`*.${DOMAIN}`], ips: ['127.0.0.1'] });
  const worker = new Worker(new URL(import.meta.url), { workerData: { role: 'driver' } });
  const drv = new Driver(worker);
  await drv.call({ cmd: 'target', certPem: targetLeaf.chainPem, keyPem: targetLeaf.keyPem });

  const inspector = await startInspector({ upstreamCa: [labRoot.certPem], leafCacheSize: 100_000 });
  const signMs: number[] = [];
  inspector.events.onEvent('leaf-issued', (e) => signMs.push(e.signMs));
  const bareLeaf = await inspector.ca.issueLeaf({ names: [`*.${DOMAIN}`], reuseKey: true });
  const bare = await startBareProxy(bareLeaf, labRoot.certPem, false);
  const bareContext = await startBareProxy(bareLeaf, labRoot.certPem, true);
  const mitm = await startMitmproxy();
  if (typeof mitm === 'string') notes.push(mitm);

  let coldSeq = 0;
  const cpuPerRequest: Record<string, number[]> = {};
  const measure = async (proxyPort: number, ca: string, kind: 'warm' | 'cold', subject: string) => {
    const names: LoadJob['names'] = kind === 'warm' ? { kind } : { kind, prefix: `${subject}${coldSeq++}` };
    const cpu =
      subject === 'mitmproxy' && typeof mitm !== 'string' ? () => processCpuMs(mitm.pid) : mainThreadCpuMs;
    const cpu0 = cpu();
    const { result } = await drv.call<{ result: LoadResult }>({
      cmd: 'load',
      job: { proxyPort, ca, names, durationMs: windowMs },
    });
    if (proxyPort !== 0 && result.ok > 0) {
      const key = subject.startsWith('bare') ? subject : `${subject} ${kind}`;
      cpuPerRequest[key] = [...(cpuPerRequest[key] ?? []), (cpu() - cpu0) / result.ok];
    }
    if (result.errors > 0)
      notes.push(`${subject} ${kind}: ${result.errors} errors (first: ${result.firstError})`);
    return (result.ok / result.elapsedMs) * 1000;
  };

  try {
    const fieldlabPort = inspector.endpoints[0]!.port;
    // Warm-up: first connections pay for JIT and (mitmproxy) its first certificate.
    await measure(fieldlabPort, inspector.rootPem, 'warm', 'fieldlab');
    await measure(fieldlabPort, inspector.rootPem, 'cold', 'fieldlab');
    await measure(bare.port, inspector.rootPem, 'warm', 'bare-node');
    if (typeof mitm !== 'string') await measure(mitm.port, mitm.caPem, 'warm', 'mitmproxy');
    delete cpuPerRequest['fieldlab warm'];
    delete cpuPerRequest['fieldlab cold'];
    delete cpuPerRequest['bare-node'];
    delete cpuPerRequest['mitmproxy warm'];

    // One interleaved series: warm and cold of each proxy, the bare proxies and direct TLS take turns.
    const subjects: Record<string, () => Promise<number>> = {
      'fieldlab warm': () => measure(fieldlabPort, inspector.rootPem, 'warm', 'fieldlab'),
      'fieldlab cold': () => measure(fieldlabPort, inspector.rootPem, 'cold', 'fieldlab'),
      'bare-node': () => measure(bare.port, inspector.rootPem, 'warm', 'bare-node'),
      'bare-node+context': () => measure(bareContext.port, inspector.rootPem, 'warm', 'bare-node+context'),
      // The ceiling: the same client straight to the target (no proxy, so no leaf either way).
      direct: () => measure(0, labRoot.certPem, 'warm', 'direct'),
    };
    if (typeof mitm !== 'string') {
      subjects['mitmproxy warm'] = () => measure(mitm.port, mitm.caPem, 'warm', 'mitmproxy');
      subjects['mitmproxy cold'] = () => measure(mitm.port, mitm.caPem, 'cold', 'mitmproxy');
    }
    const all = await interleave(subjects, rounds);
    const pick = (map: Record<string, number[]>, from: Record<string, string>) =>
      Object.fromEntries(
        Object.entries(from).flatMap(([as, key]) => (map[key] ? [[as, map[key]!]] : [])),
      ) as Record<string, number[]>;
    const stats = inspector.stats();
    notes.push(
      `fieldlab leaves issued ${stats.leavesIssued}, leaf cache hits ${stats.leafCacheHits}, ` +
        `misses ${stats.leafCacheMisses}; median wall time to issue a leaf under load ` +
        `(pki issueLeaf + TLS context) ${median(signMs).toFixed(2)}ms`,
    );
    const WARM = 'intercepted HTTPS, warm leaf cache';
    const COLD = 'intercepted HTTPS, cold leaf cache';
    const CPU = 'proxy CPU per intercepted request';
    const hasMitm = typeof mitm !== 'string';
    return buildReport(
      'tls-inspector',
      [
        {
          metric: WARM,
          unit: 'req/s',
          better: 'higher',
          samples: pick(all, {
            fieldlab: 'fieldlab warm',
            mitmproxy: 'mitmproxy warm',
            direct: 'direct',
            'bare-node': 'bare-node',
          }),
        },
        {
          metric: COLD,
          unit: 'req/s',
          better: 'higher',
          samples: pick(all, {
            fieldlab: 'fieldlab cold',
            'fieldlab warm': 'fieldlab warm',
            mitmproxy: 'mitmproxy cold',
            'bare-node': 'bare-node',
            'bare-node+context': 'bare-node+context',
          }),
        },
        {
          metric: CPU,
          unit: 'ms',
          better: 'lower',
          samples: pick(cpuPerRequest, {
            'fieldlab warm': 'fieldlab warm',
            'fieldlab cold': 'fieldlab cold',
            'mitmproxy warm': 'mitmproxy warm',
            'mitmproxy cold': 'mitmproxy cold',
            'bare-node': 'bare-node',
            'bare-node+context': 'bare-node+context',
          }),
        },
      ],
      [
        ...(hasMitm ? [{ metric: WARM, subject: 'fieldlab', reference: 'mitmproxy', target: 3 }] : []),
        { metric: WARM, subject: 'fieldlab', reference: 'direct', target: 0.8 },
        { metric: WARM, subject: 'fieldlab', reference: 'bare-node' },
        { metric: COLD, subject: 'fieldlab', reference: 'fieldlab warm', target: 0.9 },
        { metric: COLD, subject: 'bare-node+context', reference: 'bare-node' },
        ...(hasMitm ? [{ metric: COLD, subject: 'fieldlab', reference: 'mitmproxy' }] : []),
        ...(hasMitm
          ? [{ metric: CPU, subject: 'fieldlab warm', reference: 'mitmproxy warm', target: 3 }]
          : []),
        { metric: CPU, subject: 'fieldlab cold', reference: 'fieldlab warm', target: 0.9 },
        { metric: CPU, subject: 'fieldlab warm', reference: 'bare-node' },
        { metric: CPU, subject: 'bare-node+context', reference: 'bare-node' },
      ],
      notes,
    );
  } finally {
    await inspector.stop();
    bare.stop();
    bareContext.stop();
    if (typeof mitm !== 'string') await mitm.stop();
    await drv.call({ cmd: 'stop' });
    await worker.terminate();
  }
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === 'driver') driver();

if (isMainThread && import.meta.url === `file://${process.argv[1]}`) {
  run().then((r) => console.log(formatReport(r)));
}
