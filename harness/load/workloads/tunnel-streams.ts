import { once } from 'node:events';
import { createConnection, createServer, type Server } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { type LocalProxyHandle, startLocalProxy } from '../../localproxy/index.js';
import { needOpt, numOpt, opt, runVus, type Workload, type WorkloadContext } from '../workload.js';

/**
 * `tunnel-streams`: each VU is an operator streaming through AWS IoT Secure Tunneling, the whole path
 * of the field: OpenTunnel on the management API, a destination localproxy next to the device's app (a
 * TCP sink here), a source localproxy on the operator's side (through `httpsProxy` when given), and a
 * TCP stream pushed through the source port for `session`. One iteration = one tunnel with one stream.
 *
 *   VU ─TCP─▶ source localproxy ─(CONNECT proxy)─▶ service ─▶ destination localproxy ─TCP─▶ sink
 *
 * Options: `api` (management API URL), `endpoint` (source data endpoint host:port, lab name through the
 * proxy), `destinationEndpoint` (the device side's, default `endpoint`), `httpsProxy`, `session`
 * (ms a stream lasts, default 2000), `chunk` (bytes per write, default 16384), `service` (default SSH).
 * Metrics: `tunnel_open_ms` (OpenTunnel → both localproxies ready), `stream_mbps` (MB/s a stream
 * delivered, 1 MB = 10^6 bytes; for sessions of 2 s or more, over its second half: the steady rate), `tunnel_bytes` (bytes delivered), `tunnel_errors` (failed streams).
 */

const MB = 1_000_000;

async function openTunnel(api: string, service: string) {
  const res = await fetch(`${api.replace(/\/+$/, '')}/`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': 'IoTSecuredTunneling.OpenTunnel',
    },
    body: JSON.stringify({
      destinationConfig: { services: [service] },
      timeoutConfig: { maxLifetimeTimeoutMinutes: 5 },
    }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`OpenTunnel: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as { tunnelId: string; sourceAccessToken: string; destinationAccessToken: string };
}

async function closeTunnel(api: string, tunnelId: string): Promise<void> {
  await fetch(`${api.replace(/\/+$/, '')}/`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': 'IoTSecuredTunneling.CloseTunnel',
    },
    body: JSON.stringify({ tunnelId, delete: true }),
    signal: AbortSignal.timeout(5_000),
  })
    .then((r) => r.arrayBuffer())
    .catch(() => undefined); // the tunnel expires on its own
}

/** A TCP sink: counts what arrives, reports each chunk. */
async function startSink(onBytes: (n: number) => void): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('data', (b: Buffer) => onBytes(b.length));
    s.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : 0 };
}

async function stream(ctx: WorkloadContext): Promise<void> {
  const api = needOpt(ctx, 'api', 'tunnel-streams');
  const endpoint = needOpt(ctx, 'endpoint', 'tunnel-streams');
  const service = opt(ctx, 'service') ?? 'SSH';
  const sessionMs = numOpt(ctx, 'session', 2000);
  const chunk = Buffer.alloc(numOpt(ctx, 'chunk', 16_384), 0x5a);
  const httpsProxy = opt(ctx, 'httpsProxy');
  const proxies: LocalProxyHandle[] = [];
  let received = 0;
  // Bytes in the stream's second half: a rate limit lets a first second's worth through at once and then
  // holds the sender back for the overdraft, so the steady rate is read after that (streams of 2 s or more).
  let steadyFrom = Number.POSITIVE_INFINITY;
  let steady = 0;
  const sink = await startSink((n) => {
    received += n;
    if (performance.now() >= steadyFrom) steady += n;
    ctx.add('tunnel_bytes', n);
  });
  const t0 = performance.now();
  let tunnel: Awaited<ReturnType<typeof openTunnel>> | undefined;
  try {
    tunnel = await openTunnel(api, service).catch((err: Error) => {
      // fetch hides why in `cause` (ECONNREFUSED, ENOTFOUND...).
      throw new Error(`OpenTunnel: ${err.message}${err.cause ? `: ${String(err.cause)}` : ''}`);
    });
    const common = { ca: ctx.ca, maxRetries: 0, retryDelayMs: 200, connectTimeoutMs: 10_000 };
    proxies.push(
      await startLocalProxy({
        ...common,
        mode: 'destination',
        endpoint: opt(ctx, 'destinationEndpoint') ?? endpoint,
        accessToken: tunnel.destinationAccessToken,
        destinationApp: { [service]: `127.0.0.1:${sink.port}` },
      }),
    );
    const source = await startLocalProxy({
      ...common,
      mode: 'source',
      endpoint,
      accessToken: tunnel.sourceAccessToken,
      sourceListenPort: { [service]: 0 },
      ...(httpsProxy ? { httpsProxy } : {}),
    });
    proxies.push(source);
    const port = source.listeners[0]?.port;
    if (!port) throw new Error('source localproxy has no listener');
    ctx.add('tunnel_open_ms', performance.now() - t0);

    const sock = createConnection({ host: '127.0.0.1', port });
    sock.on('error', () => undefined);
    await once(sock, 'connect');
    const started = performance.now();
    const until = started + sessionMs;
    const warmup = sessionMs >= 2000 ? Math.max(1000, sessionMs / 2) : 0;
    steadyFrom = started + warmup;
    // Push as fast as the path takes it (backpressure from the source localproxy).
    while (performance.now() < until && !ctx.signal.aborted && !sock.destroyed) {
      if (!sock.write(chunk)) {
        await Promise.race([once(sock, 'drain'), delay(Math.max(1, until - performance.now()))]);
      }
    }
    const elapsed = performance.now() - started;
    sock.destroy();
    if (received === 0) throw new Error('no byte reached the destination');
    const bytes = warmup > 0 ? steady : received;
    ctx.add('stream_mbps', bytes / MB / ((elapsed - warmup) / 1000));
    ctx.add('tunnel_errors', false);
  } catch (err) {
    ctx.add('tunnel_errors', true);
    throw err;
  } finally {
    await Promise.allSettled(proxies.map((p) => p.stop()));
    sink.server.close();
    if (tunnel) await closeTunnel(api, tunnel.tunnelId);
  }
}

export const tunnelStreams: Workload = {
  name: 'tunnel-streams',
  summary: 'concurrent tunnel streams: source localproxy → service → destination localproxy',
  metrics: {
    tunnel_open_ms: { type: 'trend', time: true, unit: 'ms' },
    stream_mbps: { type: 'trend', unit: 'MB/s' },
    tunnel_bytes: { type: 'counter', unit: 'bytes' },
    tunnel_errors: { type: 'rate' },
  },
  throughput: { metric: 'tunnel_bytes', unit: 'MB/s', scale: 1 / MB },
  histogram: 'tunnel_open_ms',
  errors: { metric: 'tunnel_errors', count: 'passes' },
  run: (ctx) => {
    // Options are checked once, before any VU starts (a VU would only log the same error each time).
    for (const name of ['api', 'endpoint']) needOpt(ctx, name, 'tunnel-streams');
    for (const name of ['session', 'chunk']) numOpt(ctx, name, 0);
    return runVus(ctx, () => stream(ctx));
  },
};
