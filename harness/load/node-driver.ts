import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import {
  encodeMessage,
  FrameDecoder,
  MessageType,
  messageTypeName,
} from '../../simulators/tunnel-service/frame.js';
import { MetricSet, type MetricType } from './metrics.js';
import { checkPayload, makePayload } from './payload.js';
import { exportSummary, formatSummary, type SummaryExport } from './summary.js';

/**
 * The built-in Node driver: the same measurement as load/tunnel-throughput.js and
 * load/tunnel-open-rate.js, for machines without k6. Each VU is an async loop running one tunnel session
 * after another until the duration ends (k6's constant-vus executor); metrics, thresholds and the summary
 * follow k6's (./metrics.ts, ./summary.ts). Uses `ws` and the service's own frame codec.
 */

export type LoadKind = 'tunnel' | 'tunnel-open-rate';

/** What a run needs; the same knobs as the k6 scripts' `__ENV` (load/lib/config.js). */
export interface NodeDriverOptions {
  kind: LoadKind;
  apiUrl: string;
  dataUrl: string;
  vus: number;
  durationMs: number;
  payloadSize: number;
  window: number;
  sessionMs: number;
  service: string;
  thresholds: Record<string, string[]>;
  /** Where the summary and notes go. */
  write: (text: string) => void;
}

export interface NodeDriverResult {
  /** 0, or 99 when a threshold failed (k6's code). */
  exitCode: number;
  summary: SummaryExport;
  text: string;
}

/** k6's exit code for failed thresholds. */
export const THRESHOLDS_FAILED = 99;
const SUBPROTOCOL = 'aws.iot.securetunneling-2.0';
const STREAM_ID = 1;
const DRAIN_MS = 5000;
const CONNECT_TIMEOUT_MS = 10_000;

const METRICS: Record<LoadKind, Record<string, { type: MetricType; time?: boolean }>> = {
  tunnel: {
    tunnel_bytes: { type: 'counter' },
    tunnel_frames: { type: 'counter' },
    tunnel_handshake_ms: { type: 'trend', time: true },
    tunnel_frame_latency_ms: { type: 'trend', time: true },
    tunnel_data_errors: { type: 'rate' },
  },
  'tunnel-open-rate': {
    tunnels_opened: { type: 'counter' },
    tunnel_open_ms: { type: 'trend', time: true },
    tunnel_open_errors: { type: 'rate' },
  },
};

/** Milliseconds since the epoch with sub-millisecond precision (payload `sentAt`). */
const now = () => performance.timeOrigin + performance.now();

interface Tunnel {
  tunnelId: string;
  sourceAccessToken: string;
  destinationAccessToken: string;
}

async function api(apiUrl: string, op: string, body: unknown): Promise<Response> {
  return fetch(`${apiUrl}/`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': `IoTSecuredTunneling.${op}`,
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS),
  });
}

async function openTunnel(o: NodeDriverOptions): Promise<Tunnel> {
  const res = await api(o.apiUrl, 'OpenTunnel', {
    description: 'fieldlab load',
    destinationConfig: { services: [o.service] },
    timeoutConfig: { maxLifetimeTimeoutMinutes: 30 },
  });
  const text = await res.text();
  if (res.status !== 200) {
    throw new Error(`OpenTunnel: HTTP ${res.status} ${res.headers.get('x-amzn-errortype') ?? ''} ${text}`);
  }
  return JSON.parse(text) as Tunnel;
}

async function closeTunnel(o: NodeDriverOptions, tunnelId: string): Promise<void> {
  try {
    const res = await api(o.apiUrl, 'CloseTunnel', { tunnelId, delete: true });
    await res.arrayBuffer();
  } catch {
    // The tunnel expires on its own; a failed close does not change the measurement.
  }
}

function connect(o: NodeDriverOptions, mode: 'source' | 'destination', token: string): WebSocket {
  const ws = new WebSocket(`${o.dataUrl}/tunnel?local-proxy-mode=${mode}`, SUBPROTOCOL, {
    headers: { 'access-token': token },
    handshakeTimeout: CONNECT_TIMEOUT_MS,
  });
  return ws;
}

/** One throughput session (see load/tunnel-throughput.js: the same steps, the same checks). */
async function throughputSession(o: NodeDriverOptions, m: MetricSet, testEnd: number): Promise<void> {
  const tunnel = await openTunnel(o);
  const connectStart = now();
  const sessionEnd = Math.min(connectStart + o.sessionMs, testEnd);
  const st = {
    ready: 0,
    started: false,
    nextSeq: 0,
    expectSeq: 0,
    inflight: 0,
    stopping: false,
    done: false,
  };
  const src = connect(o, 'source', tunnel.sourceAccessToken);
  const dst = connect(o, 'destination', tunnel.destinationAccessToken);
  const srcFrames = new FrameDecoder();
  const dstFrames = new FrameDecoder();
  let resolve!: () => void;
  const finished = new Promise<void>((r) => {
    resolve = r;
  });

  const finish = () => {
    if (st.done) return;
    st.done = true;
    clearTimeout(watchdog);
    src.close();
    dst.close();
    void closeTunnel(o, tunnel.tunnelId).then(resolve);
  };
  const fail = (why: string) => {
    if (st.done) return;
    o.write(`tunnel ${tunnel.tunnelId}: ${why}\n`);
    m.add('tunnel_data_errors', 1);
    for (let i = 0; i < st.inflight; i++) m.add('tunnel_data_errors', 1);
    finish();
  };
  const watchdog = setTimeout(
    () => fail(st.ready < 2 ? 'handshake timed out' : `${st.inflight} messages lost`),
    Math.max(sessionEnd - now(), 0) + DRAIN_MS,
  );

  const pump = () => {
    if (now() >= sessionEnd) st.stopping = true;
    if (st.stopping) {
      if (st.inflight === 0) finish();
      return;
    }
    while (st.inflight < o.window) {
      const payload = makePayload(st.nextSeq++, now(), o.payloadSize);
      src.send(encodeMessage({ type: MessageType.DATA, streamId: STREAM_ID, payload }));
      st.inflight++;
    }
  };
  // V2 guide: SERVICE_IDS first; the stream starts once both sides are in.
  const onServiceIds = (mode: string, ids: string[]) => {
    if (!ids.includes(o.service)) {
      fail(`${mode} got SERVICE_IDS ${JSON.stringify(ids)} without ${o.service}`);
      return;
    }
    if (++st.ready < 2) return;
    m.add('tunnel_handshake_ms', now() - connectStart);
    src.send(encodeMessage({ type: MessageType.STREAM_START, streamId: STREAM_ID, serviceId: o.service }));
    pump();
  };

  for (const [mode, ws] of [
    ['source', src],
    ['destination', dst],
  ] as const) {
    ws.on('error', (err) => fail(`${mode} WebSocket error: ${err.message}`));
    ws.on('close', () => {
      if (!st.done) fail(`${mode} WebSocket closed by the service`);
    });
  }
  src.on('message', (data: Buffer) => {
    try {
      for (const msg of srcFrames.push(data)) {
        if (msg.type === MessageType.SERVICE_IDS) onServiceIds('source', msg.availableServiceIds);
        else fail(`source got unexpected ${messageTypeName(msg.type)}`);
      }
    } catch (err) {
      fail(`source: ${(err as Error).message}`);
    }
  });
  dst.on('message', (data: Buffer) => {
    let msgs: ReturnType<FrameDecoder['push']>;
    try {
      msgs = dstFrames.push(data);
    } catch (err) {
      fail(`destination: ${(err as Error).message}`);
      return;
    }
    const t = now();
    for (const msg of msgs) {
      if (st.done) return;
      if (msg.type === MessageType.SERVICE_IDS) onServiceIds('destination', msg.availableServiceIds);
      else if (msg.type === MessageType.STREAM_START) {
        st.started = msg.streamId === STREAM_ID;
        if (!st.started) fail(`STREAM_START for stream ${msg.streamId}, expected ${STREAM_ID}`);
      } else if (msg.type === MessageType.DATA) {
        const p = checkPayload(msg.payload);
        const intact = st.started && msg.streamId === STREAM_ID && p.ok && p.seq === st.expectSeq;
        if (intact) {
          m.add('tunnel_frame_latency_ms', t - p.sentAt);
          m.add('tunnel_bytes', msg.payload.length);
          m.add('tunnel_frames', 1);
        } else {
          o.write(
            `tunnel ${tunnel.tunnelId}: bad DATA #${st.expectSeq}: ${p.ok ? `seq ${p.seq}` : p.reason}\n`,
          );
        }
        m.add('tunnel_data_errors', !intact);
        st.expectSeq++;
        st.inflight--;
      } else fail(`destination got unexpected ${messageTypeName(msg.type)}`);
    }
    if (!st.done && st.ready === 2) pump();
  });
  return finished;
}

/** One open-rate attempt (see load/tunnel-open-rate.js). */
async function openRateSession(o: NodeDriverOptions, m: MetricSet): Promise<void> {
  const t0 = now();
  const tunnel = await openTunnel(o);
  const st = { ready: 0, done: false };
  const sockets: WebSocket[] = [];
  let resolve!: () => void;
  const finished = new Promise<void>((r) => {
    resolve = r;
  });
  const finish = (error?: string) => {
    if (st.done) return;
    st.done = true;
    clearTimeout(timer);
    if (error) o.write(`tunnel ${tunnel.tunnelId}: ${error}\n`);
    m.add('tunnel_open_errors', error !== undefined);
    for (const ws of sockets) ws.close();
    void closeTunnel(o, tunnel.tunnelId).then(resolve);
  };
  const timer = setTimeout(() => finish('both sides not connected within 10s'), CONNECT_TIMEOUT_MS);
  for (const mode of ['source', 'destination'] as const) {
    const ws = connect(o, mode, mode === 'source' ? tunnel.sourceAccessToken : tunnel.destinationAccessToken);
    const frames = new FrameDecoder();
    ws.on('error', (err) => finish(`${mode} WebSocket error: ${err.message}`));
    ws.on('close', () => finish(`${mode} WebSocket closed by the service`));
    ws.on('message', (data: Buffer) => {
      try {
        for (const msg of frames.push(data)) {
          if (msg.type !== MessageType.SERVICE_IDS) {
            finish(`${mode} got unexpected ${messageTypeName(msg.type)}`);
            return;
          }
          if (++st.ready === 2) {
            m.add('tunnel_open_ms', now() - t0);
            m.add('tunnels_opened', 1);
            finish();
          }
        }
      } catch (err) {
        finish(`${mode}: ${(err as Error).message}`);
      }
    });
    sockets.push(ws);
  }
  return finished;
}

/** Runs the measurement, prints a k6-like summary, and applies the thresholds. */
export async function runNodeDriver(o: NodeDriverOptions): Promise<NodeDriverResult> {
  const m = new MetricSet(METRICS[o.kind]);
  // Check the thresholds' syntax before spending the duration.
  m.evaluate(o.thresholds, 1);
  const errorMetric = o.kind === 'tunnel' ? 'tunnel_data_errors' : 'tunnel_open_errors';
  const started = now();
  const testEnd = started + o.durationMs;
  let iterations = 0;
  o.write(
    `node driver: ${o.kind}, ${o.vus} VUs, ${o.durationMs / 1000}s, api ${o.apiUrl}, data ${o.dataUrl}\n`,
  );
  const vu = async () => {
    while (now() < testEnd) {
      try {
        if (o.kind === 'tunnel') await throughputSession(o, m, testEnd);
        else await openRateSession(o, m);
        iterations++;
      } catch (err) {
        o.write(`${(err as Error).message}\n`);
        m.add(errorMetric, 1);
        // Do not hammer a failing API (as the k6 scripts' sleep(1)).
        await delay(Math.max(0, Math.min(1000, testEnd - now())));
      }
    }
  };
  await Promise.all(Array.from({ length: o.vus }, vu));
  const elapsed = now() - started;
  const results = m.evaluate(o.thresholds, elapsed);
  const text = `${formatSummary(m, results, elapsed)}    iterations: ${iterations}\n`;
  o.write(text);
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) {
    o.write(
      `thresholds on metrics '${[...new Set(failed.map((r) => r.metric))].join("', '")}' have been crossed\n`,
    );
  }
  return {
    exitCode: failed.length > 0 ? THRESHOLDS_FAILED : 0,
    summary: exportSummary(m, results, elapsed),
    text,
  };
}
