/**
 * Tunnel benchmark, every part in its own thread as it would be in its own process:
 *
 *   stream:  load ─► source localproxy ─► tunnel service ─► destination localproxy ─► sink
 *            (main)   (worker)              (worker)          (worker)                  (main)
 *   references, same run: direct loopback TCP (load ─► sink), and a chain of three plain TCP relays
 *   (socket.pipe, one worker each): the same hop count with no protocol. Where the machine has fewer
 *   cores than the chain has hops, the chain, not the protocol, sets the ceiling; the ratio to it is
 *   what the tunnel's framing and masking cost.
 *
 *   opens:   one OpenTunnel (HTTP) + source and destination WebSocket connects, each until its first
 *            message (SERVICE_IDS), from a keep-alive client in the main thread; reference: a bare http +
 *            ws server doing the same exchange with no tunnel logic, in the same kind of worker. The
 *            server thread's CPU time per open gives its capacity on a core of its own.
 *
 *   targets (issue #6): stream ≥ 0.5× direct TCP; ≥ 1000 tunnel opens+connects per second.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Agent, createServer as createHttpServer, request } from 'node:http';
import { createConnection, createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { isMainThread, workerData } from 'node:worker_threads';
import WebSocket, { WebSocketServer } from 'ws';
import { type LocalProxyOptions, startLocalProxy } from '../harness/localproxy/index.js';
import { ConnectionTracker, closeServer, listen } from '../simulators/common/net.js';
import { encodeMessage, MessageType } from '../simulators/tunnel-service/frame.js';
import { start as startTunnelService } from '../simulators/tunnel-service/index.js';
import { bulkOnce, connectDirect, startBulkSink } from './bulk.js';
import {
  type BenchReport,
  bounded,
  buildReport,
  formatReport,
  interleave,
  quick,
  serveInWorker,
  startInWorker,
} from './lib.js';

const HOST = '127.0.0.1';
const PROTOCOL = 'aws.iot.securetunneling-2.0';

type Role =
  | { role: 'service' }
  | { role: 'bare' }
  | { role: 'relay'; upstreamPort: number }
  | { role: 'localproxy'; options: LocalProxyOptions };

/** What a worker posts once it serves. */
interface Serving {
  api?: number;
  data?: number;
  port?: number;
}

async function workerMain(job: Role): Promise<void> {
  let stop: () => Promise<unknown>;
  let serving: Serving;
  if (job.role === 'service') {
    const svc = await startTunnelService({ host: HOST });
    const port = (name: string) => svc.endpoints.find((e) => e.name === name)?.port;
    serving = { api: port('api'), data: port('data') };
    stop = () => svc.stop();
  } else if (job.role === 'bare') {
    const bare = await startBareServer();
    serving = { api: bare.api, data: bare.data };
    stop = bare.stop;
  } else if (job.role === 'relay') {
    const tracker = new ConnectionTracker();
    const server = createServer((c) => {
      tracker.track(c);
      pipeTo(c, job.upstreamPort);
    });
    serving = { port: await listen(server, HOST, 0) };
    stop = () => closeServer(server, tracker);
  } else {
    const lp = await startLocalProxy(job.options);
    serving = { port: lp.listeners[0]?.port };
    stop = () => lp.stop();
  }
  serveInWorker(serving, stop);
}

/** A plain TCP relay hop: what socat or any forwarder does, with nothing parsed. */
function pipeTo(client: Socket, port: number): void {
  client.setNoDelay(true);
  const upstream = createConnection({ host: HOST, port, noDelay: true });
  client.pipe(upstream).pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end).on('close', end);
  upstream.on('error', end).on('close', end);
}

/**
 * The opens reference: the same HTTP exchange and WebSocket handshakes as the tunnel service (a JSON
 * answer with fresh tokens; one binary message on connect), with no tunnel bookkeeping at all.
 */
async function startBareServer(): Promise<{ api: number; data: number; stop(): Promise<void> }> {
  const http = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      JSON.parse(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(
        JSON.stringify({
          tunnelId: randomBytes(16).toString('hex'),
          sourceAccessToken: randomBytes(32).toString('base64'),
          destinationAccessToken: randomBytes(32).toString('base64'),
        }),
      );
    });
  });
  const api = await listen(http, HOST, 0);
  const wss = new WebSocketServer({
    host: HOST,
    port: 0,
    perMessageDeflate: false,
    handleProtocols: (offered) => (offered.has(PROTOCOL) ? PROTOCOL : false),
  });
  await once(wss, 'listening');
  const serviceIds = encodeMessage({ type: MessageType.SERVICE_IDS, availableServiceIds: ['BENCH'] });
  wss.on('connection', (ws) => {
    ws.on('error', () => undefined);
    ws.send(serviceIds);
  });
  return {
    api,
    data: (wss.address() as { port: number }).port,
    async stop() {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      http.closeAllConnections();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}

/** OpenTunnel over a keep-alive connection (fetch costs the load generator several times more CPU). */
function openTunnel(apiPort: number, keepAlive: Agent): Promise<{ src: string; dst: string }> {
  const body = JSON.stringify({ destinationConfig: { thingName: 'bench', services: ['BENCH'] } });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: HOST,
        port: apiPort,
        path: '/',
        method: 'POST',
        agent: keepAlive,
        headers: {
          'content-type': 'application/x-amz-json-1.1',
          'x-amz-target': 'IoTSecuredTunneling.OpenTunnel',
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const j = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
            sourceAccessToken: string;
            destinationAccessToken: string;
          };
          if (res.statusCode !== 200) reject(new Error(`OpenTunnel: HTTP ${res.statusCode}`));
          else resolve({ src: j.sourceAccessToken, dst: j.destinationAccessToken });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Connects one side and resolves on its first message (SERVICE_IDS), then closes. */
function connectSide(dataPort: number, mode: string, token: string): Promise<void> {
  const connected = new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(`ws://${HOST}:${dataPort}/tunnel?local-proxy-mode=${mode}`, [PROTOCOL], {
      headers: { 'access-token': token },
      perMessageDeflate: false,
    });
    ws.once('message', () => {
      ws.close();
      resolve();
    });
    ws.once('error', reject);
  });
  return bounded(connected, 10_000, `the ${mode} side's SERVICE_IDS`);
}

interface OpenRound {
  perSecond: number;
  /** Tunnels per second of the server thread's CPU time: its rate with a core to itself. */
  perCpuSecond: number;
}

/** Opens `count` tunnels, `concurrency` at a time, against a server in a worker. */
async function openRate(
  server: Serving & { cpuMs(): Promise<number> },
  keepAlive: Agent,
  count: number,
  concurrency: number,
): Promise<OpenRound> {
  let next = 0;
  const cpu0 = await server.cpuMs();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        next++;
        const t = await bounded(openTunnel(server.api!, keepAlive), 10_000, 'OpenTunnel');
        await Promise.all([
          connectSide(server.data!, 'source', t.src),
          connectSide(server.data!, 'destination', t.dst),
        ]);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { perSecond: count / seconds, perCpuSecond: count / (((await server.cpuMs()) - cpu0) / 1000) };
}

const GiB = 1024 * 1024 * 1024;
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Runs `fn` and returns the thread CPU each worker used meanwhile (ms). */
async function withCpu<T>(
  workers: Record<string, { cpuMs(): Promise<number> }>,
  fn: () => Promise<T>,
): Promise<{ result: T; cpuMs: Record<string, number> }> {
  const entries = Object.entries(workers);
  const before = await Promise.all(entries.map(([, w]) => w.cpuMs()));
  const result = await fn();
  const after = await Promise.all(entries.map(([, w]) => w.cpuMs()));
  return {
    result,
    cpuMs: Object.fromEntries(entries.map(([name], i) => [name, (after[i] ?? 0) - (before[i] ?? 0)])),
  };
}

const inWorker = (job: Role) => startInWorker<Serving>(fileURLToPath(import.meta.url), job);

export async function run(): Promise<BenchReport> {
  const q = quick();
  const bytes = (q ? 64 : 512) * 1024 * 1024;
  const rounds = q ? 3 : 5;
  const opens = q ? 300 : 2000;
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 64 });
  // Everything started is stopped in `finally`, whatever fails to start after it.
  const started: Array<{ stop(): Promise<void> }> = [];
  const begin = async <T extends { stop(): Promise<void> }>(p: Promise<T>): Promise<T> => {
    const x = await p;
    started.push(x);
    return x;
  };
  try {
    const service = await begin(inWorker({ role: 'service' }));
    const bare = await begin(inWorker({ role: 'bare' }));
    const s = await begin(startBulkSink(HOST));
    const t = await openTunnel(service.api!, keepAlive);
    const common = { endpoint: `ws://${HOST}:${service.data}`, destinationClientType: 'V2' as const };
    // The destination side only has to run: the source side's streams end at its app.
    const dst = await begin(
      inWorker({
        role: 'localproxy',
        options: {
          ...common,
          mode: 'destination',
          accessToken: t.dst,
          destinationApp: `BENCH=${HOST}:${s.port}`,
        },
      }),
    );
    const src = await begin(
      inWorker({
        role: 'localproxy',
        options: { ...common, mode: 'source', accessToken: t.src, sourceListenPort: 'BENCH=0' },
      }),
    );
    let chainPort = s.port;
    const hops: Array<Serving & { cpuMs(): Promise<number> }> = [];
    for (let i = 0; i < 3; i++) {
      const hop = await begin(inWorker({ role: 'relay', upstreamPort: chainPort }));
      hops.push(hop);
      chainPort = hop.port!;
    }
    const parts = { service, 'source localproxy': src, 'destination localproxy': dst };
    const cpu: Record<string, number[]> = {};
    const record = (name: string, ms: number) => {
      cpu[name] = [...(cpu[name] ?? []), (ms / bytes) * GiB];
    };
    const stream = await interleave(
      {
        fieldlab: async () => {
          const r = await withCpu(parts, () => bulkOnce(() => connectDirect(HOST, src.port!), bytes));
          for (const [name, ms] of Object.entries(r.cpuMs)) record(name, ms);
          record('fieldlab', sum(Object.values(r.cpuMs)));
          return r.result;
        },
        direct: () => bulkOnce(() => connectDirect(HOST, s.port), bytes),
        'tcp-relay-chain': async () => {
          const hopsByName = Object.fromEntries(hops.map((h, i) => [`hop ${i}`, h]));
          const r = await withCpu(hopsByName, () => bulkOnce(() => connectDirect(HOST, chainPort), bytes));
          const each = Object.values(r.cpuMs);
          record('relay hop', sum(each) / each.length);
          record('tcp-relay-chain', sum(each));
          return r.result;
        },
      },
      rounds,
    );
    const cpuSamples = (names: string[]) => Object.fromEntries(names.map((n) => [n, cpu[n] ?? []]));

    const o = await interleave<OpenRound>(
      {
        fieldlab: () => openRate(service, keepAlive, opens, 16),
        bare: () => openRate(bare, keepAlive, opens, 16),
      },
      rounds,
    );
    // A constant "target" subject turns the absolute goal into a ratio the report can judge.
    const openSamples = (pick: (r: OpenRound) => number) => ({
      fieldlab: o.fieldlab!.map(pick),
      bare: o.bare!.map(pick),
      target: o.fieldlab!.map(() => 1000),
    });
    return buildReport(
      'tunnel',
      [
        { metric: 'one tunnel stream', unit: 'MiB/s', better: 'higher', samples: stream },
        {
          metric: 'stream CPU, whole path',
          unit: 'ms/GiB',
          better: 'lower',
          samples: cpuSamples(['fieldlab', 'tcp-relay-chain']),
        },
        {
          metric: 'stream CPU, per part',
          unit: 'ms/GiB',
          better: 'lower',
          samples: cpuSamples(['service', 'source localproxy', 'destination localproxy', 'relay hop']),
        },
        {
          metric: 'tunnel opens+connects',
          unit: 'per s',
          better: 'higher',
          samples: openSamples((r) => r.perSecond),
        },
        {
          metric: 'opens+connects per second of server CPU',
          unit: 'per CPU s',
          better: 'higher',
          samples: openSamples((r) => r.perCpuSecond),
        },
      ],
      [
        { metric: 'one tunnel stream', subject: 'fieldlab', reference: 'direct', target: 0.5 },
        { metric: 'one tunnel stream', subject: 'fieldlab', reference: 'tcp-relay-chain' },
        { metric: 'one tunnel stream', subject: 'tcp-relay-chain', reference: 'direct' },
        { metric: 'stream CPU, whole path', subject: 'fieldlab', reference: 'tcp-relay-chain' },
        { metric: 'stream CPU, per part', subject: 'service', reference: 'relay hop' },
        { metric: 'stream CPU, per part', subject: 'source localproxy', reference: 'relay hop' },
        { metric: 'stream CPU, per part', subject: 'destination localproxy', reference: 'relay hop' },
        { metric: 'tunnel opens+connects', subject: 'fieldlab', reference: 'target', target: 1 },
        { metric: 'tunnel opens+connects', subject: 'fieldlab', reference: 'bare' },
        {
          metric: 'opens+connects per second of server CPU',
          subject: 'fieldlab',
          reference: 'target',
          target: 1,
        },
        { metric: 'opens+connects per second of server CPU', subject: 'fieldlab', reference: 'bare' },
      ],
      [
        `stream: ${bytes / 1024 / 1024} MiB per round, -y V2 over subprotocol 3.0, ws (no TLS); each localproxy, the service and each relay hop in its own worker thread`,
        'tcp-relay-chain: three plain TCP relays, the tunnel path without the protocol; with fewer cores than hops it, not the protocol, sets the ceiling',
        'stream CPU: each part’s thread CPU time over the bytes streamed (the whole path: the service and both localproxies, against the three relays), 10 ms clock ticks',
        `opens: ${opens} per round, 16 at a time, client in the main thread; bare = an http + ws server with no tunnel logic`,
        'per second of server CPU: opens divided by the server thread’s CPU time (/proc/thread-self): its rate with a core of its own',
      ],
    );
  } finally {
    keepAlive.destroy();
    await Promise.all(started.reverse().map((w) => w.stop()));
  }
}

if (!isMainThread) void workerMain(workerData as Role);
else if (import.meta.url === `file://${process.argv[1]}`) run().then((r) => console.log(formatReport(r)));
