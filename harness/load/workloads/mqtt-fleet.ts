import { setTimeout as delay } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { FieldlabError } from '../../../simulators/common/errors.js';
import { needOpt, numOpt, opt, type Workload, type WorkloadContext } from '../workload.js';

/**
 * `mqtt-fleet`: a fleet of MQTT devices (MQTT.js, one connection each) connects, loses the hub at once,
 * and comes back. Each VU is a device. Once every device is connected (or `connectWithin` passed), the
 * workload resets every connection on the hub's relay and refuses new ones for `outage` ms (a
 * `reset_peer` toxic), then measures each device's reconnect time: its connection dropping → its next
 * CONNACK 0.
 *
 * Reconnect policies (`reconnect`):
 * - `fixed`: MQTT.js's own reconnect every `period` ms, no jitter: the fleet retries in lockstep (the
 *   field's mistake; MQTT.js' default is a fixed 1 s).
 * - `backoff-jitter`: exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff
 *   And Jitter"): attempt n waits random(0, min(cap, base·2^n)); `base` and `cap` in ms.
 *
 * Options: `url` (mqtt://host:port of the hub, through its relay), `hub` (the relay to cut: a simulator
 * name), `outage` (ms, default 500), `reconnect`, `period` (default 1000), `base` (default 250), `cap`
 * (default 8000), `connectWithin` (ms, default 30000). Metrics: `reconnect_ms`, `reconnected` (rate of
 * devices back), `connack_refused` (CONNACKs with a non-zero code, e.g. 3 server unavailable when
 * throttled), `connects` (CONNACK 0 received).
 */

interface Device {
  client: MqttClient;
  connected: boolean;
  /** When the outage cut it (performance.now()). */
  droppedAt?: number;
  back: boolean;
  attempts: number;
  online: boolean;
}

async function fleet(ctx: WorkloadContext): Promise<number> {
  const url = needOpt(ctx, 'url', 'mqtt-fleet');
  const hub = needOpt(ctx, 'hub', 'mqtt-fleet');
  const policy = opt(ctx, 'reconnect') ?? 'backoff-jitter';
  if (policy !== 'fixed' && policy !== 'backoff-jitter') {
    throw new FieldlabError(
      'E_BAD_LOAD',
      `mqtt-fleet: reconnect=${policy}: expected fixed or backoff-jitter`,
      {
        where: 'load.options.reconnect',
        hint: 'fixed: MQTT.js reconnects every `period` ms; backoff-jitter: exponential backoff, full jitter',
      },
    );
  }
  const period = numOpt(ctx, 'period', 1000);
  const base = numOpt(ctx, 'base', 250);
  const cap = numOpt(ctx, 'cap', 8000);
  const outageMs = numOpt(ctx, 'outage', 500);
  const connectWithin = numOpt(ctx, 'connectWithin', 30_000);
  const devices: Device[] = [];
  let outage = false;
  let connectedCount = 0;
  /** Devices connected now: the load's live VUs. */
  let online = 0;
  let backCount = 0;
  let allConnected!: () => void;
  const everyoneIn = new Promise<void>((r) => {
    allConnected = r;
  });
  let allBack!: () => void;
  const everyoneBack = new Promise<void>((r) => {
    allBack = r;
  });

  const start = (i: number) => {
    const client = mqtt.connect(url, {
      clientId: `fleet-${String(i).padStart(5, '0')}`,
      protocolVersion: 4,
      clean: true,
      keepalive: 60,
      connectTimeout: 10_000,
      // fixed: MQTT.js retries by itself every `period` ms; backoff-jitter: the device schedules it.
      reconnectPeriod: policy === 'fixed' ? period : 0,
      reconnectOnConnackError: policy === 'fixed',
    });
    const d: Device = { client, connected: false, back: false, attempts: 0, online: false };
    devices.push(d);
    client.on('error', (err) => {
      // A CONNACK with a non-zero code (MQTT.js puts it in err.code): 3 = server unavailable.
      if (typeof (err as { code?: unknown }).code === 'number') ctx.add('connack_refused', 1);
    });
    client.on('connect', () => {
      ctx.add('connects', 1);
      d.online = true;
      ctx.setActive(++online);
      d.attempts = 0;
      if (!d.connected) {
        d.connected = true;
        if (++connectedCount === ctx.vus) allConnected();
      }
      if (d.droppedAt !== undefined && !d.back) {
        d.back = true;
        ctx.add('reconnect_ms', performance.now() - d.droppedAt);
        ctx.add('reconnected', true);
        if (++backCount === ctx.vus) allBack();
      }
    });
    client.on('close', () => {
      if (d.online) ctx.setActive(--online);
      d.online = false;
      if (outage && d.droppedAt === undefined && d.connected) d.droppedAt = performance.now();
      if (policy === 'backoff-jitter' && !ctx.signal.aborted) {
        const wait = Math.random() * Math.min(cap, base * 2 ** d.attempts++);
        setTimeout(() => {
          if (!ctx.signal.aborted && !client.connected && !client.disconnecting) client.reconnect();
        }, wait).unref();
      }
    });
  };

  try {
    for (let i = 0; i < ctx.vus; i++) {
      start(i);
      if (ctx.rampUpMs > 0) await delay(ctx.rampUpMs / ctx.vus);
    }
    await Promise.race([
      everyoneIn,
      delay(connectWithin, undefined, { signal: ctx.deadline }).catch(() => {}),
    ]);
    ctx.write(`mqtt-fleet: ${connectedCount}/${ctx.vus} devices connected; the hub goes away\n`);
    outage = true;
    for (const d of devices) if (!d.connected) d.droppedAt = performance.now(); // never got in: counted
    ctx.relay(hub).addToxic({ type: 'reset_peer', name: 'fleet-outage', timeout: 0, duration: outageMs });
    await Promise.race([
      everyoneBack,
      new Promise<void>((r) =>
        ctx.deadline.aborted ? r() : ctx.deadline.addEventListener('abort', () => r(), { once: true }),
      ),
    ]);
    for (const d of devices) if (!d.back) ctx.add('reconnected', false);
    ctx.write(`mqtt-fleet: ${backCount}/${ctx.vus} devices back\n`);
    return backCount;
  } finally {
    ctx.setActive(0);
    await Promise.allSettled(devices.map((d) => d.client.endAsync(true)));
  }
}

export const mqttFleet: Workload = {
  name: 'mqtt-fleet',
  summary: 'a fleet of MQTT devices loses the hub at once and comes back',
  metrics: {
    reconnect_ms: { type: 'trend', time: true, unit: 'ms' },
    reconnected: { type: 'rate' },
    connack_refused: { type: 'counter', unit: 'CONNACKs' },
    connects: { type: 'counter', unit: 'connects' },
  },
  throughput: { metric: 'connects', unit: 'connects/s', scale: 1 },
  histogram: 'reconnect_ms',
  // Devices not back are the errors: `reconnected` counts them as fails (zero samples).
  errors: { metric: 'reconnected', count: 'fails' },
  run: fleet,
};
