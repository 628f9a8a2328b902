/**
 * geo-dns benchmark: queries per second with dnsperf (one client, up to 100 outstanding) for
 *   (a) a static A answer from the fieldlab geo DNS,
 *   (b) a geolocation answer (CNAME + A, chosen by the client's source address) from the same server,
 *   (c) Debian's dnsmasq serving the same static record (`--address=/name/ip`), the reference,
 *   (d) a bare Node responder (dgram in, fixed answer out): the floor any Node server pays.
 *
 *   dnsperf (child process) ──UDP──► geo-dns (worker thread) | dnsmasq (child process)
 *
 * The lab server runs in a worker thread so that, like dnsmasq, it has its own event loop.
 * Target: static qps ≥ 0.9× dnsmasq. dnsperf shares the machine's cores with the servers, so the
 * servers' own CPU per query (thread CPU for the lab, process CPU for dnsmasq) is measured as well: it
 * is what the server would cost with a core of its own.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMainThread, workerData } from 'node:worker_threads';
import { which } from '../harness/capabilities.js';
import {
  type BenchReport,
  buildReport,
  formatReport,
  interleave,
  processCpuMs,
  quick,
  serveInWorker,
  startInWorker,
} from './lib.js';

const HOST = '127.0.0.1';
const STATIC = 'static.bench.example';
const GEO = 'global.bench.example';

/** The lab server's options: the static record, and a geolocation set where 127.0.0.0/8 is NA. */
const LAB_OPTIONS = {
  zones: [
    {
      origin: 'bench.example',
      soa: { mname: 'ns1.bench.example', rname: 'hostmaster.bench.example', minimum: 60 },
      ttl: 60,
      records: [
        { name: 'static', type: 'A', value: '127.53.0.9' },
        {
          name: 'global',
          type: 'CNAME',
          routing: 'geolocation',
          location: 'NA',
          value: 'us-east-1',
          id: 'us',
        },
        {
          name: 'global',
          type: 'CNAME',
          routing: 'geolocation',
          location: '*',
          value: 'eu-west-1',
          id: 'eu',
        },
        { name: 'us-east-1', type: 'A', value: '127.53.0.2' },
        { name: 'eu-west-1', type: 'A', value: '127.53.0.3' },
      ],
    },
  ],
  locations: [{ cidr: '127.0.0.0/8', continent: 'NA', country: 'US' }],
};

/**
 * A bare Node responder: one dgram socket answering every query with the same answer bytes, the ID
 * and question copied in. The floor any Node DNS server pays per query (dgram receive and send).
 */
async function serveBare(): Promise<void> {
  const udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, HOST, () => r()));
  // Answer section after the question: name pointer to 12, A IN, TTL 60, 127.53.0.9.
  const answer = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 53, 0, 9]);
  udp.on('message', (q, rinfo) => {
    if (q.length < 12) return;
    const out = Buffer.allocUnsafe(q.length + answer.length);
    q.copy(out, 0, 0, q.length);
    out[2] = 0x84 | (q[2]! & 0x01); // QR, AA, RD copied
    out[3] = 0;
    out.writeUInt16BE(1, 6);
    out.writeUInt32BE(0, 8);
    answer.copy(out, q.length);
    udp.send(out, rinfo.port, rinfo.address);
  });
  serveInWorker({ port: udp.address().port }, () => new Promise<void>((r) => udp.close(() => r())));
}

/** Worker side: start the lab server (or the bare responder), post its port, stop on message. */
async function workerMain(): Promise<void> {
  if ((workerData as { bare?: boolean }).bare) return serveBare();
  const { start } = await import('../simulators/geo-dns/index.js');
  const dns = await start(workerData as Parameters<typeof start>[0]);
  serveInWorker({ port: dns.endpoints[0]?.port }, () => dns.stop());
}

type Running = { port: number; stop(): Promise<void>; cpuMs(): Promise<number> };

const startLab = (): Promise<Running> =>
  startInWorker<{ port: number }>(fileURLToPath(import.meta.url), LAB_OPTIONS);
const startBare = (): Promise<Running> =>
  startInWorker<{ port: number }>(fileURLToPath(import.meta.url), { bare: true });

/** A free UDP port on 127.0.0.1 (closed again: dnsmasq binds it next). */
async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, HOST, () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Resolves once a server answers an A query on port (bounded). */
async function waitForDns(port: number, name: string, ms = 5000): Promise<void> {
  const q = Buffer.concat([
    Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]),
    ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0, 0, 1, 0, 1]),
  ]);
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const s = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 200);
      s.once('message', () => {
        clearTimeout(t);
        resolve(true);
      });
      s.send(q, port, HOST);
    });
    s.close();
    if (ok) return;
  }
  throw new Error(`no DNS answer on ${HOST}:${port} within ${ms}ms`);
}

async function startDnsmasq(dir: string): Promise<Running & { proc: ChildProcess }> {
  const port = await freePort();
  const pidFile = join(dir, 'dnsmasq.pid');
  const proc = spawn(
    'dnsmasq',
    [
      '--keep-in-foreground',
      '--conf-file=/dev/null',
      `--port=${port}`,
      `--listen-address=${HOST}`,
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      '--no-negcache',
      `--address=/${STATIC}/127.53.0.9`,
      `--pid-file=${pidFile}`,
      ...(process.getuid?.() === 0 ? ['--user=root'] : []),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  try {
    await waitForDns(port, STATIC);
  } catch (err) {
    proc.kill('SIGTERM');
    throw new Error(`dnsmasq did not start: ${stderr.trim() || String(err)}`);
  }
  return {
    port,
    proc,
    cpuMs: async () => (proc.pid === undefined ? Number.NaN : processCpuMs(proc.pid)),
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = once(proc, 'exit');
      if (proc.pid !== undefined) process.kill(proc.pid, 'SIGTERM');
      await exited;
    },
  };
}

/** One dnsperf run; resolves to queries per second. */
async function dnsperf(port: number, queryFile: string, seconds: number): Promise<number> {
  const proc = spawn(
    'dnsperf',
    ['-s', HOST, '-p', String(port), '-d', queryFile, '-l', String(seconds), '-c', '1'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  proc.stderr?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), (seconds + 15) * 1000);
  const [code] = (await once(proc, 'exit')) as [number | null];
  clearTimeout(timer);
  const qps = /Queries per second:\s+([\d.]+)/.exec(out)?.[1];
  if (code !== 0 || qps === undefined) throw new Error(`dnsperf failed (exit ${code}): ${out.slice(-400)}`);
  lastCompleted = Number(/Queries completed:\s+(\d+)/.exec(out)?.[1] ?? Number.NaN);
  const lost = /Queries lost:\s+(\d+)/.exec(out)?.[1];
  if (lost !== undefined && Number(lost) > 0) lostNotes.push(`dnsperf lost ${lost} queries on port ${port}`);
  return Number(qps);
}

const lostNotes: string[] = [];
/** Queries the last dnsperf run completed. */
let lastCompleted = Number.NaN;

export async function run(): Promise<BenchReport> {
  const q = quick();
  const seconds = q ? 1 : 4;
  const rounds = 3;
  const notes: string[] = [];
  if (!which('dnsperf')) {
    return buildReport('geo-dns', [], [], ['dnsperf is not installed (Debian: dnsperf): nothing measured']);
  }
  const dir = mkdtempSync(join(tmpdir(), 'fieldlab-bench-dns-'));
  const staticFile = join(dir, 'static.txt');
  const geoFile = join(dir, 'geo.txt');
  writeFileSync(staticFile, `${STATIC} A\n`);
  writeFileSync(geoFile, `${GEO} A\n`);
  const lab = await startLab();
  const bare = await startBare();
  let ref: Running | undefined;
  try {
    if (which('dnsmasq')) {
      try {
        ref = await startDnsmasq(dir);
      } catch (err) {
        notes.push(`dnsmasq reference skipped: ${(err as Error).message}`);
      }
    } else notes.push('dnsmasq is not installed (Debian: dnsmasq): no reference');
    const cpuPerQuery: Record<string, number[]> = {};
    /** One dnsperf run against `server`, noting the server's CPU µs per completed query. */
    const measured = (name: string, server: Running, file: string) => async () => {
      const c0 = await server.cpuMs();
      const qps = await dnsperf(server.port, file, seconds);
      const us = (((await server.cpuMs()) - c0) * 1000) / lastCompleted;
      cpuPerQuery[name] = [...(cpuPerQuery[name] ?? []), us];
      return qps;
    };
    const staticSubjects: Record<string, () => Promise<number>> = {
      fieldlab: measured('fieldlab', lab, staticFile),
    };
    if (ref) staticSubjects.dnsmasq = measured('dnsmasq', ref, staticFile);
    staticSubjects['bare-node'] = measured('bare-node', bare, staticFile);
    // Warm-up (not counted): the JIT compiles the lab server's hot path.
    await dnsperf(lab.port, staticFile, 1);
    await dnsperf(lab.port, geoFile, 1);
    lostNotes.length = 0;
    const staticSamples = await interleave(staticSubjects, rounds);
    const geoSamples = await interleave({ fieldlab: () => dnsperf(lab.port, geoFile, seconds) }, rounds);
    notes.push(
      `dnsperf -c 1 (100 outstanding), ${seconds}s per round, ${rounds} rounds; geo-dns in a worker thread`,
      ...lostNotes,
    );
    return buildReport(
      'geo-dns',
      [
        { metric: 'static A qps', unit: 'queries/s', better: 'higher', samples: staticSamples },
        { metric: 'geolocation qps', unit: 'queries/s', better: 'higher', samples: geoSamples },
        { metric: 'static A server CPU', unit: 'µs/query', better: 'lower', samples: cpuPerQuery },
      ],
      ref
        ? [
            { metric: 'static A qps', subject: 'fieldlab', reference: 'dnsmasq', target: 0.9 },
            { metric: 'static A server CPU', subject: 'fieldlab', reference: 'dnsmasq' },
            { metric: 'static A server CPU', subject: 'bare-node', reference: 'dnsmasq' },
            { metric: 'static A server CPU', subject: 'fieldlab', reference: 'bare-node' },
          ]
        : [],
      notes,
    );
  } finally {
    await ref?.stop();
    await lab.stop();
    await bare.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (!isMainThread) void workerMain();
else if (import.meta.url === `file://${process.argv[1]}`) run().then((r) => console.log(formatReport(r)));
