/**
 * Tunnel benchmark: one stream source localproxy → tunnel service → destination localproxy → sink,
 * against the same transfer over direct loopback TCP, in the same run; and tunnels opened and connected
 * (both sides got SERVICE_IDS) per second. The service runs in a worker thread (its own event loop, as a
 * remote service would); the localproxies, the client and the sink share the main thread.
 *   targets: stream ≥ 0.5× direct TCP; ≥ 1000 tunnel opens+connects per second.
 */
import { createConnection, createServer, type Server } from 'node:net';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import WebSocket from 'ws';
import { startLocalProxy } from '../harness/localproxy/index.js';
import { listen } from '../simulators/common/net.js';
import { start as startTunnelService } from '../simulators/tunnel-service/index.js';
import { type BenchReport, buildReport, formatReport, interleave, quick } from './lib.js';

interface Endpoints {
  api: string;
  data: string;
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === 'tunnel-service') {
  const svc = await startTunnelService({ host: '127.0.0.1' });
  const api = svc.endpoints.find((e) => e.name === 'api')!;
  const data = svc.endpoints.find((e) => e.name === 'data')!;
  parentPort!.postMessage({
    api: `http://127.0.0.1:${api.port}/`,
    data: `127.0.0.1:${data.port}`,
  } satisfies Endpoints);
  parentPort!.once('message', () => void svc.stop().then(() => process.exit(0)));
}

async function openTunnel(api: string): Promise<{ tunnelId: string; src: string; dst: string }> {
  const r = await fetch(api, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': 'IoTSecuredTunneling.OpenTunnel',
    },
    body: JSON.stringify({ destinationConfig: { thingName: 'bench', services: ['BENCH'] } }),
  });
  const j = (await r.json()) as {
    tunnelId: string;
    sourceAccessToken: string;
    destinationAccessToken: string;
  };
  return { tunnelId: j.tunnelId, src: j.sourceAccessToken, dst: j.destinationAccessToken };
}

/** A sink that resolves with the elapsed ms once `bytes` arrived on one connection. */
async function sink(): Promise<{ server: Server; port: number; next(bytes: number): Promise<number> }> {
  let waiter: { bytes: number; resolve: (ms: number) => void; t0: number } | undefined;
  const server = createServer((s) => {
    s.setNoDelay(true);
    let got = 0;
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (waiter && got >= waiter.bytes) {
        waiter.resolve(performance.now() - waiter.t0);
        waiter = undefined;
        s.end();
      }
    });
    s.on('error', () => undefined);
  });
  const port = await listen(server, '127.0.0.1', 0);
  return {
    server,
    port,
    next: (bytes) => new Promise((resolve) => (waiter = { bytes, resolve, t0: performance.now() })),
  };
}

/** Writes `bytes` to host:port with backpressure; resolves with MiB/s as measured by the sink. */
async function push(port: number, bytes: number, s: Awaited<ReturnType<typeof sink>>): Promise<number> {
  const done = s.next(bytes);
  const chunk = Buffer.alloc(64 * 1024, 7);
  const c = createConnection({ host: '127.0.0.1', port, noDelay: true });
  await new Promise<void>((r) => c.once('connect', () => r()));
  let sent = 0;
  while (sent < bytes) {
    sent += chunk.length;
    if (!c.write(chunk)) await new Promise<void>((r) => c.once('drain', () => r()));
  }
  const ms = await done;
  c.destroy();
  return bytes / (1024 * 1024) / (ms / 1000);
}

/** Opens `count` tunnels, `concurrency` at a time; each connects source and destination and waits for SERVICE_IDS. */
async function openRate(ep: Endpoints, count: number, concurrency: number): Promise<number> {
  const connect = (mode: string, token: string) =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(
        `ws://${ep.data}/tunnel?local-proxy-mode=${mode}`,
        ['aws.iot.securetunneling-2.0'],
        {
          headers: { 'access-token': token },
          perMessageDeflate: false,
        },
      );
      ws.once('message', () => {
        ws.close();
        resolve();
      });
      ws.once('error', reject);
    });
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        const t = await openTunnel(ep.api);
        await Promise.all([connect('source', t.src), connect('destination', t.dst)]);
      }
    }),
  );
  return count / ((performance.now() - t0) / 1000);
}

export async function run(): Promise<BenchReport> {
  const q = quick();
  const bytes = (q ? 64 : 512) * 1024 * 1024;
  const worker = new Worker(new URL(import.meta.url), { workerData: { role: 'tunnel-service' } });
  const ep = await new Promise<Endpoints>((resolve) => worker.once('message', resolve));
  const s = await sink();
  try {
    const t = await openTunnel(ep.api);
    const common = { endpoint: `ws://${ep.data}`, destinationClientType: 'V2' as const };
    const dst = await startLocalProxy({
      ...common,
      mode: 'destination',
      accessToken: t.dst,
      destinationApp: `BENCH=127.0.0.1:${s.port}`,
    });
    const src = await startLocalProxy({
      ...common,
      mode: 'source',
      accessToken: t.src,
      sourceListenPort: 'BENCH=0',
    });
    const srcPort = src.listeners[0]!.port;
    const rounds = q ? 3 : 5;
    const stream = await interleave(
      { fieldlab: () => push(srcPort, bytes, s), direct: () => push(s.port, bytes, s) },
      rounds,
    );
    await Promise.all([src.stop(), dst.stop()]);
    const opens = await interleave({ fieldlab: () => openRate(ep, q ? 100 : 1000, 16) }, rounds);
    return buildReport(
      'tunnel',
      [
        { metric: 'one tunnel stream', unit: 'MiB/s', better: 'higher', samples: stream },
        // A constant "target" subject turns the absolute goal into a ratio the report can judge.
        {
          metric: 'tunnel opens+connects',
          unit: 'per s',
          better: 'higher',
          samples: { ...opens, target: opens.fieldlab!.map(() => 1000) },
        },
      ],
      [
        { metric: 'one tunnel stream', subject: 'fieldlab', reference: 'direct', target: 0.5 },
        { metric: 'tunnel opens+connects', subject: 'fieldlab', reference: 'target', target: 1 },
      ],
      [
        'the service runs in a worker thread; both localproxies, the client and the sink share the main thread',
        `stream: ${bytes / 1024 / 1024} MiB per round, protocol V2, ws (no TLS)`,
      ],
    );
  } finally {
    await new Promise<void>((r) => s.server.close(() => r()));
    worker.postMessage('stop');
    await new Promise<void>((r) => worker.once('exit', () => r()));
  }
}

if (isMainThread && import.meta.url === `file://${process.argv[1]}`)
  run().then((r) => console.log(formatReport(r)));
