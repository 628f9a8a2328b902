/**
 * Tunnel open rate through the fieldlab tunnel service: how many tunnels per second can be opened with
 * both sides connected.
 *
 * Each VU, in a loop: OpenTunnel → connect source and destination → wait for SERVICE_IDS on both →
 * record the time since OpenTunnel → close both sockets → CloseTunnel. Settings: lib/config.js (API_URL,
 * DATA_URL, VUS, DURATION, SERVICE).
 *
 * Metrics: tunnels_opened (Counter; rate = tunnels/s), tunnel_open_ms (OpenTunnel sent → both sides got
 * SERVICE_IDS), tunnel_open_errors (rate of failed attempts). Thresholds in thresholds.json.
 */
import { sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/websockets';
import { config } from './lib/config.js';
import { closeTunnel, openTunnel, peerUrl, thresholdsFor } from './lib/tunnel-api.js';
import { FrameDecoder, MessageType, messageTypeName, SUBPROTOCOL } from './lib/tunnel-frames.js';

const cfg = config();
const THRESHOLDS = JSON.parse(open('./thresholds.json'));
const CONNECT_TIMEOUT_MS = 10000;

export const options = {
  scenarios: {
    open: { executor: 'constant-vus', vus: cfg.vus, duration: cfg.duration, gracefulStop: '15s' },
  },
  thresholds: thresholdsFor(THRESHOLDS, 'tunnel-open-rate', 'tunnel_open_ms'),
};

const tunnelsOpened = new Counter('tunnels_opened');
const openMs = new Trend('tunnel_open_ms', true);
const openErrors = new Rate('tunnel_open_errors');

export default function () {
  const t0 = Date.now();
  const tunnel = openTunnel(cfg.apiUrl, cfg.service);
  if (tunnel.error) {
    console.error(tunnel.error);
    openErrors.add(1);
    sleep(1);
    return;
  }
  // Per side: 'connecting' → 'open' (handshake done) → 'ready' (SERVICE_IDS): the timeout says which.
  const st = { done: false, side: { source: 'connecting', destination: 'connecting' } };
  const sockets = [];
  const finish = (error) => {
    if (st.done) return;
    st.done = true;
    clearTimeout(timer);
    if (error) console.warn(`tunnel ${tunnel.tunnelId}: ${error}`);
    openErrors.add(error ? 1 : 0);
    for (const ws of sockets) ws.close();
    closeTunnel(cfg.apiUrl, tunnel.tunnelId);
  };
  const timer = setTimeout(
    () =>
      finish(
        `both sides not connected within 10s (source ${st.side.source}, destination ${st.side.destination})`,
      ),
    CONNECT_TIMEOUT_MS,
  );

  for (const mode of ['source', 'destination']) {
    const token = mode === 'source' ? tunnel.sourceAccessToken : tunnel.destinationAccessToken;
    const ws = new WebSocket(peerUrl(cfg.dataUrl, mode), SUBPROTOCOL, { headers: { 'access-token': token } });
    ws.binaryType = 'arraybuffer';
    const frames = new FrameDecoder();
    ws.addEventListener('open', () => {
      st.side[mode] = 'open';
    });
    ws.addEventListener('error', (e) => finish(`${mode} WebSocket error: ${e.error}`));
    ws.addEventListener('close', () => finish(`${mode} WebSocket closed by the service`));
    ws.addEventListener('message', (e) => {
      let msgs;
      try {
        msgs = frames.push(e.data);
      } catch (err) {
        finish(`${mode}: ${err.message}`);
        return;
      }
      for (const m of msgs) {
        if (m.type !== MessageType.SERVICE_IDS) {
          finish(`${mode} got unexpected ${messageTypeName(m.type)}`);
          return;
        }
        // V2 guide: SERVICE_IDS right after the handshake: this side is connected.
        st.side[mode] = 'ready';
        if (!st.done && st.side.source === 'ready' && st.side.destination === 'ready') {
          openMs.add(Date.now() - t0);
          tunnelsOpened.add(1);
          finish();
        }
      }
    });
    sockets.push(ws);
  }
}
