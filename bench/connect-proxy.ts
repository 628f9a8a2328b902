/**
 * connect-proxy benchmark: bulk throughput through one CONNECT tunnel, and CONNECTs per second (open a
 * tunnel, one round trip, close), through (a) the fieldlab connect proxy, (b) Debian's Squid configured
 * the same way (no cache, CONNECT allowed to the sink ports; bench/squid.ts), (c) direct TCP to the sink.
 *
 *   load (main thread) ──► proxy (worker thread | squid process | none) ──► sinks (main thread)
 *
 * The lab proxy runs in a worker thread so that, like Squid, it has its own event loop and core; so does
 * (d) a bare Node CONNECT proxy of a few lines, the floor any Node proxy pays.
 */
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { bulkOnce, MiB } from './bulk.js';
import {
  type BenchReport,
  bounded,
  buildReport,
  formatReport,
  interleave,
  processCpuMs,
  quick,
} from './lib.js';
import { SQUID, startSquid } from './squid.js';

const HOST = '127.0.0.1';

interface Sinks {
  bulkPort: number;
  echoPort: number;
  stop(): Promise<void>;
}

/**
 * Bulk sink: the first 8 bytes give the length to expect; it counts bytes and answers `k` once they all
 * arrived. Echo sink: echoes.
 */
async function startSinks(): Promise<Sinks> {
  const sockets = new Set<Socket>();
  const trackAll = (s: Server) =>
    s.on('connection', (c: Socket) => {
      sockets.add(c);
      c.once('close', () => sockets.delete(c));
      c.on('error', () => {});
    });
  const bulk = createServer((c) => {
    c.setNoDelay(true);
    let got = 0;
    let expect = -1;
    c.on('data', (chunk: Buffer) => {
      got += chunk.length;
      if (expect < 0 && got >= 8) expect = Number(chunk.readBigUInt64BE(0)) + 8;
      if (got === expect) c.end('k');
    });
  });
  const echo = createServer({ allowHalfOpen: false }, (c) => {
    c.setNoDelay(true);
    c.pipe(c);
  });
  trackAll(bulk);
  trackAll(echo);
  await Promise.all([listenLocal(bulk), listenLocal(echo)]);
  return {
    bulkPort: (bulk.address() as AddressInfo).port,
    echoPort: (echo.address() as AddressInfo).port,
    async stop() {
      for (const s of sockets) s.destroy();
      await Promise.all([closeSrv(bulk), closeSrv(echo)]);
    },
  };
}

function listenLocal(s: Server): Promise<void> {
  return new Promise((res, rej) => {
    s.once('error', rej);
    s.listen(0, HOST, () => res());
  });
}

function closeSrv(s: Server): Promise<void> {
  return new Promise((res) => s.close(() => res()));
}

/** Opens a socket to the sink: through a proxy's CONNECT, or directly when `proxyPort` is undefined. */
function openPath(proxyPort: number | undefined, sinkPort: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: HOST, port: proxyPort ?? sinkPort, noDelay: true });
    s.once('error', reject);
    if (proxyPort === undefined) {
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      return;
    }
    const target = `${HOST}:${sinkPort}`;
    s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    let head = '';
    const onData = (c: Buffer) => {
      head += c.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.off('data', onData);
      s.off('error', reject);
      if (!/^HTTP\/1\.[01] 200/.test(head)) {
        s.destroy();
        reject(new Error(`CONNECT ${target}: ${head.split('\r\n')[0]}`));
        return;
      }
      s.pause();
      const rest = head.slice(end + 4);
      if (rest) s.unshift(Buffer.from(rest, 'latin1'));
      resolve(s);
    };
    s.on('data', onData);
  });
}

/** One tunnel: open, 4-byte echo round trip, close (both ways). */
async function connectOnce(proxyPort: number | undefined, echoPort: number): Promise<void> {
  const s = await bounded(openPath(proxyPort, echoPort), 10_000, 'CONNECT');
  const done = new Promise<void>((res, rej) => {
    let got = 0;
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (got >= 4) s.end();
    });
    s.once('error', rej);
    s.once('close', () => (got >= 4 ? res() : rej(new Error('closed before the echo'))));
    s.resume();
    s.write('ping');
  });
  await bounded(done, 10_000, 'echo round trip').catch((err: unknown) => {
    s.destroy();
    throw err;
  });
}

/** CONNECTs per second for `total` tunnels at `concurrency`. */
async function connectRate(
  proxyPort: number | undefined,
  echoPort: number,
  total: number,
  concurrency: number,
) {
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (next < total) {
      next++;
      await connectOnce(proxyPort, echoPort);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return total / ((performance.now() - t0) / 1000);
}

interface Subject {
  port: number;
  /** CPU the proxy has used so far (its thread's, or Squid's process's), in ms. */
  cpuMs(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * A bare Node CONNECT proxy, the floor of any Node proxy: reads the head, connects, answers 200 and
 * pipes both ways (no policy, no events, no counters). Source for a worker: `start(host)` resolves its port.
 */
const BARE_PROXY = `
  const net = require('node:net');
  function startBare(host) {
    const server = net.createServer((c) => {
      c.setNoDelay(true);
      c.on('error', () => c.destroy());
      let head = Buffer.alloc(0);
      const onData = (d) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\\r\\n\\r\\n');
        if (end < 0) return;
        c.off('data', onData);
        c.pause();
        const [hostPort] = head.toString('latin1', 8, head.indexOf(' ', 8)).split(' ');
        const i = hostPort.lastIndexOf(':');
        const far = net.connect({ host: hostPort.slice(0, i), port: Number(hostPort.slice(i + 1)), noDelay: true });
        far.on('error', () => { far.destroy(); c.destroy(); });
        c.on('error', () => far.destroy());
        far.once('connect', () => {
          c.write('HTTP/1.1 200 Connection Established\\r\\n\\r\\n');
          const rest = head.subarray(end + 4);
          if (rest.length > 0) far.write(rest);
          c.pipe(far);
          far.pipe(c);
          c.resume();
        });
      };
      c.on('data', onData);
    });
    return new Promise((resolve) => server.listen(0, host, () => resolve({
      port: server.address().port,
      stop: () => new Promise((r) => server.close(r)),
    })));
  }
  // The same on Node's HTTP server (its parser and per-connection state), which proxy-chain is built on.
  function startBareHttp(host) {
    const server = require('node:http').createServer();
    server.on('connect', (req, c, head) => {
      c.setNoDelay(true);
      const i = req.url.lastIndexOf(':');
      const far = net.connect({ host: req.url.slice(0, i), port: Number(req.url.slice(i + 1)), noDelay: true });
      far.on('error', () => { far.destroy(); c.destroy(); });
      c.on('error', () => far.destroy());
      far.once('connect', () => {
        c.write('HTTP/1.1 200 Connection Established\\r\\n\\r\\n');
        if (head.length > 0) far.write(head);
        c.pipe(far);
        far.pipe(c);
      });
    });
    return new Promise((resolve) => server.listen(0, host, () => resolve({
      port: server.address().port,
      stop: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
    })));
  }
`;

/** The worker's side: starts the subject, answers `cpu` with its thread's CPU time and `stop` by stopping. */
const WORKER = `
  const { parentPort, workerData } = require('node:worker_threads');
  const { readFileSync } = require('node:fs');
  ${BARE_PROXY}
  const threadCpuMs = () => {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  };
  const started = workerData.bare === 'raw'
    ? startBare(workerData.options.host)
    : workerData.bare === 'http'
    ? startBareHttp(workerData.options.host)
    : import(workerData.url).then(async (m) => {
        const h = await m.start(workerData.options);
        return { port: h.endpoints[0].port, stop: () => h.stop() };
      });
  started.then((h) => {
    parentPort.on('message', async (m) => {
      if (m === 'cpu') return parentPort.postMessage({ cpuMs: threadCpuMs() });
      await h.stop();
      parentPort.postMessage({ stopped: true });
    });
    parentPort.postMessage({ port: h.port });
  }, (err) => parentPort.postMessage({ error: String((err && err.stack) || err) }));
`;

/** The lab proxy (or a bare Node proxy: raw TCP, or on Node's HTTP server) in a worker thread. */
async function startInThread(allowPorts: number[], bare?: 'raw' | 'http'): Promise<Subject> {
  const moduleUrl = new URL('../simulators/connect-proxy/index.js', import.meta.url);
  if (!existsSync(fileURLToPath(moduleUrl))) throw new Error('run the bench from dist/ (npm run bench)');
  const options = { host: HOST, allowPorts };
  const worker = new Worker(WORKER, { eval: true, workerData: { url: moduleUrl.href, options, bare } });
  const [msg] = (await once(worker, 'message')) as [{ port?: number; error?: string }];
  if (msg.error || !msg.port) throw new Error(`proxy worker failed: ${msg.error}`);
  return {
    port: msg.port,
    async cpuMs() {
      worker.postMessage('cpu');
      const [reply] = (await bounded(once(worker, 'message'), 10_000, 'the proxy thread CPU')) as [
        { cpuMs: number },
      ];
      return reply.cpuMs;
    },
    async stop() {
      worker.postMessage('stop');
      await Promise.race([once(worker, 'message'), new Promise((r) => setTimeout(r, 5000).unref())]);
      await worker.terminate();
    },
  };
}

/** Runs `fn` and returns its result with the CPU the subject used meanwhile. */
async function withCpu<T>(
  subject: Subject | undefined,
  fn: () => Promise<T>,
): Promise<{ value: T; cpuMs: number }> {
  const c0 = subject ? await subject.cpuMs() : 0;
  const value = await fn();
  const c1 = subject ? await subject.cpuMs() : 0;
  return { value, cpuMs: c1 - c0 };
}

/** Runs the benchmark (`--quick`: 64 MiB and 200 CONNECTs per round). */
export async function run(): Promise<BenchReport> {
  const isQuick = quick();
  const bulkBytes = (isQuick ? 64 : 1024) * MiB;
  const connects = isQuick ? 200 : 2000;
  const concurrency = 8;
  const rounds = isQuick ? 3 : 5;
  const notes: string[] = [
    `bulk: ${bulkBytes / MiB} MiB one way per round; CONNECT rate: ${connects} tunnels at concurrency ${concurrency}`,
    'fieldlab proxy in a worker thread, squid as its own process; load and sinks share the main thread',
  ];
  const sinks = await startSinks();
  const allowPorts = [443, sinks.bulkPort, sinks.echoPort];
  const subjects: Record<string, Subject | undefined> = {};
  try {
    subjects.fieldlab = await startInThread(allowPorts);
    subjects['bare-node'] = await startInThread(allowPorts, 'raw');
    subjects['bare-node-http'] = await startInThread(allowPorts, 'http');
    if (existsSync(SQUID)) {
      try {
        // Debian's Squid, configured like the lab proxy: no cache, CONNECT only to the listed ports.
        const squid = await startSquid({ host: HOST, allowPorts });
        subjects.squid = { ...squid, cpuMs: async () => processCpuMs(squid.pid) };
      } catch (err) {
        notes.push(`squid skipped: ${err instanceof Error ? err.message : String(err)}`);
      }
    } else {
      notes.push(`squid skipped: ${SQUID} is not installed (apt-get install squid)`);
    }
    const via = (name: string) => (name === 'direct' ? undefined : subjects[name]?.port);
    const names = ['fieldlab', ...(subjects.squid ? ['squid'] : []), 'bare-node', 'bare-node-http', 'direct'];
    // Warm-up: JIT, connection paths, Squid's first-request work.
    for (const n of names) {
      await bulkOnce(() => openPath(via(n), sinks.bulkPort), Math.min(bulkBytes, 16 * MiB), 120_000);
      await connectRate(via(n), sinks.echoPort, 50, concurrency);
    }
    const bulkCpu: Record<string, number[]> = {};
    const rateCpu: Record<string, number[]> = {};
    const record = (into: Record<string, number[]>, name: string, value: number) => {
      into[name] = [...(into[name] ?? []), value];
    };
    const bulk = await interleave(
      Object.fromEntries(
        names.map((n) => [
          n,
          async () => {
            const r = await withCpu(subjects[n], () =>
              bulkOnce(() => openPath(via(n), sinks.bulkPort), bulkBytes, 120_000),
            );
            if (subjects[n]) record(bulkCpu, n, r.cpuMs / (bulkBytes / 1024 / MiB));
            return r.value;
          },
        ]),
      ),
      rounds,
    );
    const rate = await interleave(
      Object.fromEntries(
        names.map((n) => [
          n,
          async () => {
            const r = await withCpu(subjects[n], () =>
              connectRate(via(n), sinks.echoPort, connects, concurrency),
            );
            if (subjects[n]) record(rateCpu, n, (r.cpuMs * 1000) / connects);
            return r.value;
          },
        ]),
      ),
      rounds,
    );
    notes.push(
      'bare-node: a Node CONNECT proxy of a few lines (read the head, connect, 200, pipe both ways) in its own thread: the floor of a Node proxy',
      'bare-node-http: the same on Node’s HTTP server (its CONNECT event), as proxy-chain is: the floor of a proxy built on it',
      'CPU: the proxy thread’s CPU time (Squid: its process’s) over the work, 10 ms clock ticks',
    );
    const BULK = 'bulk throughput';
    const RATE = 'CONNECT rate';
    const BULK_CPU = 'proxy CPU per GiB, bulk';
    const RATE_CPU = 'proxy CPU per tunnel';
    return buildReport(
      'connect-proxy',
      [
        { metric: BULK, unit: 'MiB/s', better: 'higher', samples: bulk },
        { metric: RATE, unit: 'tunnels/s', better: 'higher', samples: rate },
        { metric: BULK_CPU, unit: 'ms/GiB', better: 'lower', samples: bulkCpu },
        { metric: RATE_CPU, unit: 'µs', better: 'lower', samples: rateCpu },
      ],
      [
        { metric: BULK, subject: 'fieldlab', reference: 'squid', target: 1.0 },
        { metric: BULK, subject: 'fieldlab', reference: 'bare-node' },
        { metric: BULK, subject: 'bare-node', reference: 'squid' },
        { metric: BULK, subject: 'fieldlab', reference: 'direct' },
        { metric: RATE, subject: 'fieldlab', reference: 'squid', target: 1.0 },
        { metric: RATE, subject: 'fieldlab', reference: 'bare-node' },
        { metric: RATE, subject: 'bare-node', reference: 'squid' },
        { metric: RATE, subject: 'fieldlab', reference: 'direct' },
        { metric: BULK_CPU, subject: 'fieldlab', reference: 'squid' },
        { metric: BULK_CPU, subject: 'fieldlab', reference: 'bare-node' },
        { metric: RATE_CPU, subject: 'fieldlab', reference: 'squid' },
        { metric: RATE_CPU, subject: 'fieldlab', reference: 'bare-node' },
        { metric: RATE_CPU, subject: 'fieldlab', reference: 'bare-node-http' },
        { metric: RATE, subject: 'fieldlab', reference: 'bare-node-http' },
      ],
      notes,
    );
  } finally {
    await subjects.fieldlab?.stop();
    await subjects['bare-node']?.stop();
    await subjects['bare-node-http']?.stop();
    await subjects.squid?.stop();
    await sinks.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) run().then((r) => console.log(formatReport(r)));
