/**
 * relay benchmark: bulk throughput of one TCP connection, both ways (upload: client → server; download:
 * server → client), direct, through the fieldlab relay with no toxics (the fast path), through the relay
 * with a no-op toxic (latency 0: the toxic chain), and through a bare Node relay (`a.pipe(b); b.pipe(a)`:
 * the floor any Node relay pays, and so the ceiling the relay is held to). Medians of interleaved rounds;
 * targets: relay ≥ 0.8× direct, relay+noop ≥ 0.9× relay. The relays' thread CPU per GiB is measured too:
 * on a shared machine it is steadier than throughput.
 *
 *   load (main thread) ──► relays (worker thread) ──► sink / source (main thread)
 */
import { createServer, connect as netConnect, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { isMainThread, workerData } from 'node:worker_threads';
import { startRelay } from '../harness/faults/index.js';
import { ConnectionTracker, closeServer, listen } from '../simulators/common/net.js';
import { bulkOnce, connectDirect, downloadOnce, MiB, startBulkSink, startBulkSource } from './bulk.js';
import { type BenchReport, buildReport, interleave, quick, serveInWorker, startInWorker } from './lib.js';

const HOST = '127.0.0.1';
const SUBJECTS = ['relay', 'relay+noop', 'bare-node'] as const;
type Subject = (typeof SUBJECTS)[number];
type Ports = Record<Subject, number>;

/** A bare Node relay: what `pipe` does both ways, half-close passed on, nothing else. */
async function startBareRelay(upstreamPort: number): Promise<{ port: number; stop(): Promise<void> }> {
  const tracker = new ConnectionTracker();
  const server: Server = createServer({ allowHalfOpen: true }, (c) => {
    tracker.track(c);
    const u = netConnect({ host: HOST, port: upstreamPort, allowHalfOpen: true });
    tracker.track(u);
    c.pipe(u);
    u.pipe(c);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
  });
  const port = await listen(server, HOST, 0);
  return { port, stop: () => closeServer(server, tracker) };
}

/** The worker side: one set of relays to the sink (upload) and one to the source (download). */
async function workerMain(): Promise<void> {
  const { sink, source } = workerData as { sink: number; source: number };
  const stops: Array<() => Promise<void>> = [];
  const set = async (upstreamPort: number): Promise<Ports> => {
    const upstream = { host: HOST, port: upstreamPort };
    const plain = await startRelay({ name: 'bench-plain', listen: { host: HOST, port: 0 }, upstream });
    const noop = await startRelay({
      name: 'bench-noop',
      listen: { host: HOST, port: 0 },
      upstream,
      toxics: [
        { type: 'latency', latency: 0, stream: 'upstream' },
        { type: 'latency', latency: 0, stream: 'downstream' },
      ],
    });
    const bare = await startBareRelay(upstreamPort);
    stops.push(
      () => plain.stop(),
      () => noop.stop(),
      () => bare.stop(),
    );
    return { relay: plain.endpoint.port, 'relay+noop': noop.endpoint.port, 'bare-node': bare.port };
  };
  const up = await set(sink);
  const down = await set(source);
  serveInWorker({ up, down }, () => Promise.all(stops.map((s) => s())));
}

export async function run(): Promise<BenchReport> {
  const isQuick = quick();
  const bytes = (isQuick ? 32 : 512) * MiB;
  const rounds = isQuick ? 3 : 5;
  const notes: string[] = [
    `bulk: ${bytes / MiB} MiB one way per round, ${rounds} rounds interleaved; relays in a worker thread`,
  ];
  const sink = await startBulkSink(HOST);
  const source = await startBulkSource(HOST);
  const worker = await startInWorker<{ up: Ports; down: Ports }>(fileURLToPath(import.meta.url), {
    sink: sink.port,
    source: source.port,
  });
  try {
    const open = (port: number) => () => connectDirect(HOST, port);
    const upPorts: Record<string, number> = { direct: sink.port, ...worker.up };
    const downPorts: Record<string, number> = { direct: source.port, ...worker.down };
    // Warm-up: JIT and connection paths.
    for (const p of Object.values(upPorts)) await bulkOnce(open(p), 16 * MiB);
    for (const p of Object.values(downPorts)) await downloadOnce(open(p), 16 * MiB);
    const cpuPerGiB: Record<string, number[]> = {};
    /** Runs one transfer and records the relay thread's CPU per GiB for it. */
    const timed = (name: string, f: () => Promise<number>) => async () => {
      const c0 = await worker.cpuMs();
      const v = await f();
      const ms = (await worker.cpuMs()) - c0;
      if (!name.endsWith(':direct')) {
        cpuPerGiB[name] = [...(cpuPerGiB[name] ?? []), ms / (bytes / (1024 * MiB))];
      }
      return v;
    };
    const subjects: Record<string, () => Promise<number>> = {};
    for (const [n, p] of Object.entries(upPorts))
      subjects[`up:${n}`] = timed(`up:${n}`, () => bulkOnce(open(p), bytes));
    for (const [n, p] of Object.entries(downPorts))
      subjects[`down:${n}`] = timed(`down:${n}`, () => downloadOnce(open(p), bytes));
    const raw = await interleave(subjects, rounds);
    const pick = (dir: string, from: Record<string, number[]>) =>
      Object.fromEntries(
        Object.entries(from)
          .filter(([k]) => k.startsWith(`${dir}:`))
          .map(([k, v]) => [k.slice(dir.length + 1), v]),
      );
    const comparisons = (metric: string) => [
      { metric, subject: 'relay', reference: 'direct', target: 0.8 },
      { metric, subject: 'relay+noop', reference: 'relay', target: 0.9 },
      { metric, subject: 'bare-node', reference: 'direct' },
      { metric, subject: 'relay', reference: 'bare-node' },
    ];
    return buildReport(
      'relay',
      [
        { metric: 'bulk upload', unit: 'MiB/s', better: 'higher', samples: pick('up', raw) },
        { metric: 'bulk download', unit: 'MiB/s', better: 'higher', samples: pick('down', raw) },
        { metric: 'relay CPU, upload', unit: 'ms/GiB', better: 'lower', samples: pick('up', cpuPerGiB) },
        {
          metric: 'relay CPU, download',
          unit: 'ms/GiB',
          better: 'lower',
          samples: pick('down', cpuPerGiB),
        },
      ],
      [
        ...comparisons('bulk upload'),
        ...comparisons('bulk download'),
        { metric: 'relay CPU, upload', subject: 'relay', reference: 'bare-node' },
        { metric: 'relay CPU, download', subject: 'relay', reference: 'bare-node' },
      ],
      notes,
    );
  } finally {
    await worker.stop();
    await source.stop();
    await sink.stop();
  }
}

if (!isMainThread) void workerMain();
