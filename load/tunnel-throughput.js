/**
 * Tunnel throughput through the fieldlab tunnel service (AWS IoT Secure Tunneling protocol V2).
 *
 * Each VU, in a loop: OpenTunnel (management API) → connect source and destination WebSockets → wait
 * for SERVICE_IDS on both → the source sends STREAM_START, then DATA messages (WINDOW in flight) for
 * SESSION or until the test ends → the destination checks every payload (sequence + checksum) →
 * CloseTunnel. Run: `k6 run -e API_URL=http://127.0.0.1:PORT -e DATA_URL=ws://127.0.0.1:PORT
 * load/tunnel-throughput.js` (or `fieldlab load tunnel`, which starts the service). Settings: lib/config.js.
 *
 * Metrics: tunnel_bytes (payload bytes delivered intact; rate = bytes/s), tunnel_frames (DATA messages;
 * rate = frames/s), tunnel_handshake_ms (both WebSockets connected and SERVICE_IDS received),
 * tunnel_frame_latency_ms (source send → destination receive), tunnel_data_errors (rate of bad or lost
 * messages and failed sessions). Thresholds in thresholds.json: a failed one makes k6 exit 99.
 */
import { sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/websockets';
import { config } from './lib/config.js';
import { checkPayload, makePayload } from './lib/payload.js';
import { closeTunnel, openTunnel, peerUrl, thresholdsFor } from './lib/tunnel-api.js';
import {
  encodeMessage,
  FrameDecoder,
  MessageType,
  messageTypeName,
  SUBPROTOCOL,
} from './lib/tunnel-frames.js';

const cfg = config();
const THRESHOLDS = JSON.parse(open('./thresholds.json'));
/** After SESSION ends, how long in-flight messages may take before they count as lost. */
const DRAIN_MS = 5000;
const STREAM_ID = 1;

export const options = {
  scenarios: {
    tunnels: { executor: 'constant-vus', vus: cfg.vus, duration: cfg.duration, gracefulStop: '10s' },
  },
  thresholds: thresholdsFor(THRESHOLDS, 'tunnel-throughput', 'tunnel_frame_latency_ms'),
};

const tunnelBytes = new Counter('tunnel_bytes');
const tunnelFrames = new Counter('tunnel_frames');
const handshakeMs = new Trend('tunnel_handshake_ms', true);
const latencyMs = new Trend('tunnel_frame_latency_ms', true);
const dataErrors = new Rate('tunnel_data_errors');

export default function () {
  const testEnd = exec.scenario.startTime + cfg.durationMs;
  const tunnel = openTunnel(cfg.apiUrl, cfg.service);
  if (tunnel.error) {
    console.error(tunnel.error);
    dataErrors.add(1);
    sleep(1); // do not hammer a failing API
    return;
  }
  const connectStart = Date.now();
  const sessionEnd = Math.min(connectStart + cfg.sessionMs, testEnd);
  const st = {
    ready: 0,
    started: false,
    nextSeq: 0,
    expectSeq: 0,
    inflight: 0,
    stopping: false,
    done: false,
  };

  const connect = (mode, token) => {
    const ws = new WebSocket(peerUrl(cfg.dataUrl, mode), SUBPROTOCOL, { headers: { 'access-token': token } });
    ws.binaryType = 'arraybuffer';
    ws.addEventListener('error', (e) => fail(`${mode} WebSocket error: ${e.error}`));
    ws.addEventListener('close', () => {
      if (!st.done) fail(`${mode} WebSocket closed by the service`);
    });
    return ws;
  };
  const src = connect('source', tunnel.sourceAccessToken);
  const dst = connect('destination', tunnel.destinationAccessToken);
  const srcFrames = new FrameDecoder();
  const dstFrames = new FrameDecoder();

  const finish = () => {
    if (st.done) return;
    st.done = true;
    clearTimeout(watchdog);
    src.close();
    dst.close();
    closeTunnel(cfg.apiUrl, tunnel.tunnelId);
  };
  function fail(why) {
    if (st.done) return;
    console.warn(`tunnel ${tunnel.tunnelId}: ${why}`);
    // The failed session and every message still in flight count as errors.
    dataErrors.add(1);
    for (let i = 0; i < st.inflight; i++) dataErrors.add(1);
    finish();
  }
  const watchdog = setTimeout(
    () => fail(st.ready < 2 ? 'handshake timed out' : `${st.inflight} messages lost`),
    Math.max(sessionEnd - Date.now(), 0) + DRAIN_MS,
  );

  // Sends DATA until WINDOW messages are in flight; after the session ends, waits for the last ones.
  const pump = () => {
    if (Date.now() >= sessionEnd) st.stopping = true;
    if (st.stopping) {
      if (st.inflight === 0) finish();
      return;
    }
    while (st.inflight < cfg.window) {
      const payload = makePayload(st.nextSeq++, Date.now(), cfg.payloadSize);
      src.send(encodeMessage({ type: MessageType.DATA, streamId: STREAM_ID, payload }).buffer);
      st.inflight++;
    }
  };

  // V2 guide: the service sends SERVICE_IDS first; the source starts its stream once both sides are in
  // (a STREAM_START before the destination connects would reach no one).
  const onServiceIds = (mode, m) => {
    if (m.availableServiceIds.indexOf(cfg.service) < 0) {
      fail(`${mode} got SERVICE_IDS ${JSON.stringify(m.availableServiceIds)} without ${cfg.service}`);
      return;
    }
    if (++st.ready < 2) return;
    handshakeMs.add(Date.now() - connectStart);
    src.send(
      encodeMessage({ type: MessageType.STREAM_START, streamId: STREAM_ID, serviceId: cfg.service }).buffer,
    );
    pump();
  };

  src.addEventListener('message', (e) => {
    let msgs;
    try {
      msgs = srcFrames.push(e.data);
    } catch (err) {
      fail(`source: ${err.message}`);
      return;
    }
    for (const m of msgs) {
      if (m.type === MessageType.SERVICE_IDS) onServiceIds('source', m);
      else fail(`source got unexpected ${messageTypeName(m.type)}`);
    }
  });

  dst.addEventListener('message', (e) => {
    let msgs;
    try {
      msgs = dstFrames.push(e.data);
    } catch (err) {
      fail(`destination: ${err.message}`);
      return;
    }
    const now = Date.now();
    for (const m of msgs) {
      if (st.done) return;
      if (m.type === MessageType.SERVICE_IDS) {
        onServiceIds('destination', m);
      } else if (m.type === MessageType.STREAM_START) {
        st.started = m.streamId === STREAM_ID;
        if (!st.started) fail(`STREAM_START for stream ${m.streamId}, expected ${STREAM_ID}`);
      } else if (m.type === MessageType.DATA) {
        const p = checkPayload(m.payload);
        const intact = st.started && m.streamId === STREAM_ID && p.ok && p.seq === st.expectSeq;
        if (intact) {
          latencyMs.add(now - p.sentAt);
          tunnelBytes.add(m.payload.length);
          tunnelFrames.add(1);
        } else {
          console.warn(
            `tunnel ${tunnel.tunnelId}: bad DATA #${st.expectSeq}: ${p.ok ? `seq ${p.seq}` : p.reason}`,
          );
        }
        dataErrors.add(intact ? 0 : 1);
        st.expectSeq++;
        st.inflight--;
      } else {
        fail(`destination got unexpected ${messageTypeName(m.type)}`);
      }
    }
    if (!st.done && st.ready === 2) pump();
  });
}
