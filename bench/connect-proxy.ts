/**
 * connect-proxy benchmark: bulk throughput through one CONNECT tunnel, and CONNECTs per second (open a
 * tunnel, one round trip, close), through (a) the fieldlab connect proxy, (b) Debian's Squid configured
 * the same way (no cache, CONNECT allowed to the sink ports; bench/squid.ts), (c) direct TCP to the sink.
 *
 *   load (main thread) ──► proxy (worker thread | squid process | none) ──► sinks (main thread)
 *
 * The lab proxy runs in a worker thread so that, like Squid, it has its own event loop and core.
 */
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { bulkOnce, MiB } from './bulk.js';
import { type BenchReport, bounded, buildReport, formatReport, interleave, quick } from './lib.js';
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
  stop(): Promise<void>;
}

/** The lab proxy in a worker thread (compiled build), else in this thread (with a note). */
async function startLabProxy(allowPorts: number[], notes: string[]): Promise<Subject> {
  const moduleUrl = new URL('../simulators/connect-proxy/index.js', import.meta.url);
  const options = { host: HOST, allowPorts };
  if (!existsSync(fileURLToPath(moduleUrl))) {
    notes.push('lab proxy ran in the load thread (no compiled build beside the bench): run from dist/');
    const { start } = await import('../simulators/connect-proxy/index.js');
    const h = await start(options);
    return { port: h.endpoints[0]!.port, stop: () => h.stop() };
  }
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.url).then(async (m) => {
      const h = await m.start(workerData.options);
      parentPort.on('message', async () => { await h.stop(); parentPort.postMessage({ stopped: true }); });
      parentPort.postMessage({ port: h.endpoints[0].port });
    }, (err) => parentPort.postMessage({ error: String(err && err.stack || err) }));
  `;
  const worker = new Worker(code, { eval: true, workerData: { url: moduleUrl.href, options } });
  const [msg] = (await once(worker, 'message')) as [{ port?: number; error?: string }];
  if (msg.error || !msg.port) throw new Error(`lab proxy worker failed: ${msg.error}`);
  return {
    port: msg.port,
    async stop() {
      worker.postMessage('stop');
      await Promise.race([once(worker, 'message'), new Promise((r) => setTimeout(r, 5000).unref())]);
      await worker.terminate();
    },
  };
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
    subjects.fieldlab = await startLabProxy(allowPorts, notes);
    if (existsSync(SQUID)) {
      try {
        // Debian's Squid, configured like the lab proxy: no cache, CONNECT only to the listed ports.
        subjects.squid = await startSquid({ host: HOST, allowPorts });
      } catch (err) {
        notes.push(`squid skipped: ${err instanceof Error ? err.message : String(err)}`);
      }
    } else {
      notes.push(`squid skipped: ${SQUID} is not installed (apt-get install squid)`);
    }
    const via = (name: string) => (name === 'direct' ? undefined : subjects[name]?.port);
    const names = ['fieldlab', ...(subjects.squid ? ['squid'] : []), 'direct'];
    // Warm-up: JIT, connection paths, Squid's first-request work.
    for (const n of names) {
      await bulkOnce(() => openPath(via(n), sinks.bulkPort), Math.min(bulkBytes, 16 * MiB), 120_000);
      await connectRate(via(n), sinks.echoPort, 50, concurrency);
    }
    const bulk = await interleave(
      Object.fromEntries(
        names.map((n) => [n, () => bulkOnce(() => openPath(via(n), sinks.bulkPort), bulkBytes, 120_000)]),
      ),
      rounds,
    );
    const rate = await interleave(
      Object.fromEntries(
        names.map((n) => [n, () => connectRate(via(n), sinks.echoPort, connects, concurrency)]),
      ),
      rounds,
    );
    return buildReport(
      'connect-proxy',
      [
        { metric: 'bulk throughput', unit: 'MiB/s', better: 'higher', samples: bulk },
        { metric: 'CONNECT rate', unit: 'tunnels/s', better: 'higher', samples: rate },
      ],
      [
        { metric: 'bulk throughput', subject: 'fieldlab', reference: 'squid', target: 1.0 },
        { metric: 'bulk throughput', subject: 'fieldlab', reference: 'direct' },
        { metric: 'CONNECT rate', subject: 'fieldlab', reference: 'squid', target: 1.0 },
        { metric: 'CONNECT rate', subject: 'fieldlab', reference: 'direct' },
      ],
      notes,
    );
  } finally {
    await subjects.fieldlab?.stop();
    await subjects.squid?.stop();
    await sinks.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) run().then((r) => console.log(formatReport(r)));
