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
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { bulkOnce, connectDirect, MiB, startBulkSink } from './bulk.js';
import { type BenchReport, bounded, buildReport, interleave, quick } from './lib.js';

const HOST = '127.0.0.1';

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
  const sink = await startBulkSink(HOST);
  let relays: Relays | undefined;
  try {
    relays = await startRelays(sink.port, notes);
    const ports: Record<string, number> = {
      direct: sink.port,
      relay: relays.plain,
      'relay+noop': relays.noop,
    };
    // Warm-up: JIT and connection paths.
    for (const p of Object.values(ports))
      await bulkOnce(() => connectDirect(HOST, p), Math.min(bytes, 16 * MiB));
    const samples = await interleave(
      Object.fromEntries(
        Object.entries(ports).map(([n, p]) => [n, () => bulkOnce(() => connectDirect(HOST, p), bytes)]),
      ),
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
