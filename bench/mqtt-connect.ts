/**
 * MQTT connections benchmark, for the fieldlab broker (aedes + the lab's hooks and guards, in a child
 * process of its own) and Debian's mosquitto (the reference), same certificate (ECDSA P-256, made with
 * the openssl CLI) and same client:
 *   (a) connects per second over TLS: TLS handshake (no session resumption), CONNECT, CONNACK,
 *       DISCONNECT, 8 at a time for a fixed time; and the broker's CPU per connect (its process CPU:
 *       the load generator shares the machine's cores, so this is what a broker would cost on its own),
 *   (b) memory per idle connection: RSS of the broker process with N idle MQTT connections (CONNECT
 *       with keep-alive 0, then nothing) minus its RSS before, over N (10,000; 1,000 with --quick).
 *
 *   this process (clients) ──TLS/TCP──► broker (child process: node | mosquitto)
 */
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { which } from '../harness/capabilities.js';
import { type BenchReport, bounded, buildReport, interleave, processCpuMs, quick } from './lib.js';
import { freePort, MOSQUITTO, spawnMosquitto } from './mosquitto.js';

const HOST = '127.0.0.1';
const CONCURRENCY = 8;

interface Broker {
  name: string;
  tlsPort: number;
  tcpPort: number;
  pid: number;
  stop(): Promise<void>;
}

/** MQTT 3.1.1 CONNECT (clean session, keep-alive `keepAlive` s) for `clientId` (MQTT 3.1.1 §3.1). */
function connectPacket(clientId: string, keepAlive = 0): Buffer {
  const id = Buffer.from(clientId);
  const variable = Buffer.from([0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, keepAlive >> 8, keepAlive & 0xff]);
  const rest = 10 + 2 + id.length;
  const len = rest < 128 ? [rest] : [(rest & 0x7f) | 0x80, rest >> 7];
  return Buffer.concat([Buffer.from([0x10, ...len]), variable, Buffer.from([id.length >> 8, id.length]), id]);
}

const DISCONNECT = Buffer.from([0xe0, 0]);

/** Sends CONNECT and resolves on CONNACK accepted (0x20 0x02 _ 0x00); rejects on anything else. */
function mqttConnect(s: Socket, clientId: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.length < 4) return;
      s.off('data', onData);
      if (got[0] === 0x20 && got[3] === 0) resolve();
      else reject(new Error(`CONNACK refused: ${got.subarray(0, 4).toString('hex')}`));
    };
    s.on('data', onData);
    s.once('error', reject);
    s.once('close', () => reject(new Error('closed before CONNACK')));
    s.write(connectPacket(clientId));
  });
}

let seq = 0;

/** One TLS connect + CONNECT/CONNACK + DISCONNECT. */
async function tlsConnectOnce(port: number, ca: string): Promise<void> {
  const s = tlsConnect({ host: HOST, port, ca, checkServerIdentity: () => undefined });
  try {
    await bounded(once(s, 'secureConnect'), 10_000, 'TLS handshake');
    await bounded(mqttConnect(s, `bench-${process.pid}-${++seq}`), 10_000, 'CONNACK');
    s.end(DISCONNECT);
  } finally {
    s.destroy();
  }
}

/** Connects per second over `seconds`, CONCURRENCY at a time; also the broker CPU ms per connect. */
async function connectRate(
  b: Broker,
  ca: string,
  seconds: number,
  cpu: Record<string, number[]>,
): Promise<number> {
  const c0 = processCpuMs(b.pid);
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        await tlsConnectOnce(b.tlsPort, ca);
        done++;
      }
    }),
  );
  const secs = (performance.now() - t0) / 1000;
  cpu[b.name] = [...(cpu[b.name] ?? []), (processCpuMs(b.pid) - c0) / done];
  return done / secs;
}

/** Resident set of a process in KiB (Linux /proc/PID/status). */
function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? Number.NaN);
}

/** Opens `n` idle MQTT connections (100 at a time); resolves the broker's extra RSS per connection. */
async function idleRss(b: Broker, n: number): Promise<number> {
  const before = rssKiB(b.pid);
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < n; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, n - i) }, async () => {
          const s = netConnect({ host: HOST, port: b.tcpPort });
          s.on('error', () => {});
          sockets.push(s);
          await bounded(once(s, 'connect'), 10_000, 'idle connect');
          await bounded(mqttConnect(s, `idle-${++seq}`), 10_000, 'idle CONNACK');
        }),
      );
    }
    // Let the broker settle (a GC may run) before reading its RSS: a bounded, fixed pause is fine here,
    // this is a measurement, not a synchronisation.
    await new Promise((r) => setTimeout(r, 500));
    return ((rssKiB(b.pid) - before) * 1024) / n;
  } finally {
    for (const s of sockets) s.destroy();
  }
}

function stopper(proc: ChildProcess): () => Promise<void> {
  return async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    await bounded(exited, 10_000, 'broker exit').catch(() => proc.kill('SIGKILL'));
  };
}

async function startMosquitto(dir: string, certFile: string, keyFile: string): Promise<Broker> {
  const tlsPort = await freePort();
  const tcpPort = await freePort();
  const proc = await spawnMosquitto(
    dir,
    [
      'per_listener_settings false',
      'allow_anonymous true',
      'persistence false',
      'set_tcp_nodelay true',
      // As root mosquitto would switch to its own user, which cannot read the temp dir's key.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      `listener ${tcpPort} ${HOST}`,
      `listener ${tlsPort} ${HOST}`,
      `certfile ${certFile}`,
      `keyfile ${keyFile}`,
    ],
    [tlsPort, tcpPort],
  );
  return { name: 'mosquitto', tlsPort, tcpPort, pid: proc.pid!, stop: stopper(proc) };
}

/** The lab broker in a child process (its RSS is its own): this module with `--broker`. */
async function startLabBroker(certPem: string, keyPem: string): Promise<Broker> {
  const proc = fork(fileURLToPath(import.meta.url), ['--broker'], {
    execArgv: [],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  proc.send({ certPem, keyPem });
  const [msg] = (await bounded(once(proc, 'message'), 20_000, 'lab broker start')) as [
    { tlsPort: number; tcpPort: number },
  ];
  return { name: 'fieldlab', ...msg, pid: proc.pid!, stop: stopper(proc) };
}

/** Child side: the lab broker with an mqtts and an mqtt listener; stops on SIGTERM. */
async function brokerMain(): Promise<void> {
  const [tls] = (await once(process, 'message')) as [{ certPem: string; keyPem: string }];
  const { start } = await import('../simulators/mqtt-broker/index.js');
  const broker = await start({
    name: 'bench-broker',
    host: HOST,
    tls,
    listeners: [
      { protocol: 'mqtts', port: 0 },
      { protocol: 'mqtt', port: 0 },
    ],
  });
  process.on('SIGTERM', () => {
    void broker.stop().finally(() => process.exit(0));
  });
  process.send?.({ tlsPort: broker.endpoints[0]?.port, tcpPort: broker.endpoints[1]?.port });
}

export async function run(): Promise<BenchReport> {
  const q = quick();
  const seconds = q ? 1 : 4;
  const rounds = 3;
  const idle = q ? 1_000 : 10_000;
  const notes: string[] = [];
  if (!which('openssl'))
    return buildReport('mqtt-connect', [], [], ['openssl CLI missing: nothing measured']);
  const dir = mkdtempSync(join(tmpdir(), 'fieldlab-bench-mqttc-'));
  const brokers: Broker[] = [];
  try {
    const certFile = join(dir, 'cert.pem');
    const keyFile = join(dir, 'key.pem');
    const made = spawnSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
        ...['-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=127.0.0.1'],
        ...['-addext', 'subjectAltName=IP:127.0.0.1'],
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr.toString().trim()}`);
    const certPem = readFileSync(certFile, 'utf8');
    const keyPem = readFileSync(keyFile, 'utf8');
    brokers.push(await startLabBroker(certPem, keyPem));
    if (which(MOSQUITTO)) brokers.push(await startMosquitto(dir, certFile, keyFile));
    else notes.push('mosquitto is not installed (Debian: mosquitto): no reference');
    // Warm-up (not counted).
    for (const b of brokers) await connectRate(b, certPem, 0.5, {});
    const cpu: Record<string, number[]> = {};
    const rates = await interleave(
      Object.fromEntries(brokers.map((b) => [b.name, () => connectRate(b, certPem, seconds, cpu)])),
      rounds,
    );
    const rss = await interleave(Object.fromEntries(brokers.map((b) => [b.name, () => idleRss(b, idle)])), 1);
    notes.push(
      `TLS connects: ECDSA P-256 certificate, full handshakes, ${CONCURRENCY} at a time, ${seconds}s per round, ${rounds} rounds`,
      `idle: ${idle.toLocaleString('en-US')} MQTT connections over TCP held at once, broker RSS growth / connections`,
    );
    const ref = brokers.some((b) => b.name === 'mosquitto');
    return buildReport(
      'mqtt-connect',
      [
        { metric: 'TLS connects', unit: 'connects/s', better: 'higher', samples: rates },
        { metric: 'broker CPU per TLS connect', unit: 'ms', better: 'lower', samples: cpu },
        { metric: 'RSS per idle connection', unit: 'bytes', better: 'lower', samples: rss },
      ],
      ref
        ? [
            { metric: 'TLS connects', subject: 'fieldlab', reference: 'mosquitto' },
            { metric: 'broker CPU per TLS connect', subject: 'fieldlab', reference: 'mosquitto' },
            { metric: 'RSS per idle connection', subject: 'fieldlab', reference: 'mosquitto' },
          ]
        : [],
      notes,
    );
  } finally {
    for (const b of brokers) await b.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--broker')) void brokerMain();
