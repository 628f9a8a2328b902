/**
 * relay benchmark: bulk throughput of one TCP connection direct to a sink, through the fieldlab relay
 * with no toxics (the fast path), and through the relay with a no-op toxic (latency 0: the toxic chain).
 * Medians of interleaved rounds; target: relay ≥ 0.8× direct.
 *
 *   load (main thread) ──► relay (worker thread) ──► sink (main thread)
 *
 * The relays run in a worker thread so that, like a separate proxy process, they have their own event
 * loop; without a compiled build beside the bench they run in this thread (and a note says so).
 */
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type BenchReport, buildReport, interleave, quick } from './lib.js';

const HOST = '127.0.0.1';
const MiB = 1024 * 1024;

interface Sink {
  port: number;
  stop(): Promise<void>;
}

/** Reads an 8-byte length, then that many bytes, then answers `k`. */
async function startSink(): Promise<Sink> {
  const sockets = new Set<Socket>();
  const server = createServer((c) => {
    sockets.add(c);
    c.once('close', () => sockets.delete(c));
    c.on('error', () => {});
    c.setNoDelay(true);
    let want = -1;
    let got = 0;
    let head = Buffer.alloc(0);
    c.on('data', (chunk: Buffer) => {
      if (want < 0) {
        head = Buffer.concat([head, chunk]);
        if (head.length < 8) return;
        want = Number(head.readBigUInt64BE(0));
        got = head.length - 8;
      } else got += chunk.length;
      if (got >= want) c.end('k');
    });
  });
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, HOST, () => res());
  });
  return {
    port: (server.address() as AddressInfo).port,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
}

function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new Error(`${what}: no result within ${ms}ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

/** MiB/s for `bytes` sent one way to the sink through `port`, until the sink acknowledges. */
async function bulkOnce(port: number, bytes: number): Promise<number> {
  const chunk = Buffer.alloc(256 * 1024, 0x61);
  const t0 = performance.now();
  const s = connect({ host: HOST, port, noDelay: true });
  await bounded(once(s, 'connect'), 10_000, 'connect');
  const acked = new Promise<void>((res, rej) => {
    s.on('data', (c: Buffer) => {
      if (c.includes(0x6b)) res();
    });
    s.once('error', rej);
    s.once('close', () => rej(new Error('closed before the sink acknowledged')));
  });
  const size = Buffer.alloc(8);
  size.writeBigUInt64BE(BigInt(bytes));
  s.write(size);
  let sent = 0;
  while (sent < bytes) {
    const n = Math.min(chunk.length, bytes - sent);
    sent += n;
    if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) await once(s, 'drain');
  }
  await bounded(acked, 300_000, 'bulk acknowledgement');
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  return bytes / MiB / secs;
}

interface Relays {
  plain: number;
  noop: number;
  stop(): Promise<void>;
}

/** Two relays to the sink (no toxics; latency 0), in a worker thread when a compiled build exists. */
async function startRelays(sinkPort: number, notes: string[]): Promise<Relays> {
  const moduleUrl = new URL('../harness/faults/index.js', import.meta.url);
  const configs = [
    { name: 'bench-plain', listen: { host: HOST, port: 0 }, upstream: { host: HOST, port: sinkPort } },
    {
      name: 'bench-noop',
      listen: { host: HOST, port: 0 },
      upstream: { host: HOST, port: sinkPort },
      toxics: [{ type: 'latency', latency: 0, stream: 'upstream' }],
    },
  ];
  if (!existsSync(fileURLToPath(moduleUrl))) {
    notes.push('relays ran in the load thread (no compiled build beside the bench): run from dist/');
    const { startRelay } = await import('../harness/faults/index.js');
    const handles = await Promise.all(configs.map((c) => startRelay(c as Parameters<typeof startRelay>[0])));
    return {
      plain: handles[0]!.endpoint.port,
      noop: handles[1]!.endpoint.port,
      stop: async () => {
        await Promise.all(handles.map((h) => h.stop()));
      },
    };
  }
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.url).then(async (m) => {
      const hs = await Promise.all(workerData.configs.map((c) => m.startRelay(c)));
      parentPort.on('message', async () => {
        await Promise.all(hs.map((h) => h.stop()));
        parentPort.postMessage({ stopped: true });
      });
      parentPort.postMessage({ ports: hs.map((h) => h.endpoint.port) });
    }, (err) => parentPort.postMessage({ error: String((err && err.stack) || err) }));
  `;
  const worker = new Worker(code, {
    eval: true,
    // The eval'd code is CommonJS whatever flags started this process.
    execArgv: [],
    workerData: { url: moduleUrl.href, configs },
  });
  const [msg] = (await once(worker, 'message')) as [{ ports?: number[]; error?: string }];
  if (msg.error || !msg.ports) {
    await worker.terminate();
    throw new Error(`relay worker failed: ${msg.error}`);
  }
  return {
    plain: msg.ports[0]!,
    noop: msg.ports[1]!,
    async stop() {
      worker.postMessage('stop');
      await bounded(once(worker, 'message'), 10_000, 'relay worker stop').catch(() => {});
      await worker.terminate();
    },
  };
}

export async function run(): Promise<BenchReport> {
  const isQuick = quick();
  const bytes = (isQuick ? 32 : 512) * MiB;
  const rounds = 3;
  const notes: string[] = [`bulk: ${bytes / MiB} MiB one way per round, ${rounds} rounds interleaved`];
  const sink = await startSink();
  let relays: Relays | undefined;
  try {
    relays = await startRelays(sink.port, notes);
    const ports: Record<string, number> = {
      direct: sink.port,
      relay: relays.plain,
      'relay+noop': relays.noop,
    };
    // Warm-up: JIT and connection paths.
    for (const p of Object.values(ports)) await bulkOnce(p, Math.min(bytes, 16 * MiB));
    const samples = await interleave(
      Object.fromEntries(Object.entries(ports).map(([n, p]) => [n, () => bulkOnce(p, bytes)])),
      rounds,
    );
    return buildReport(
      'relay',
      [{ metric: 'bulk throughput', unit: 'MiB/s', better: 'higher', samples }],
      [
        { metric: 'bulk throughput', subject: 'relay', reference: 'direct', target: 0.8 },
        { metric: 'bulk throughput', subject: 'relay+noop', reference: 'direct' },
        { metric: 'bulk throughput', subject: 'relay+noop', reference: 'relay' },
      ],
      notes,
    );
  } finally {
    await relays?.stop();
    await sink.stop();
  }
}
