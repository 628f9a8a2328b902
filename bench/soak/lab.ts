/**
 * The soak's server side, run as its own Node process (`--expose-gc`) so its heap and RSS are measured
 * apart from the load generator: a lab started as `fieldlab up` starts it (loopback backend: relays in
 * front of every TCP endpoint, the lab timeline, the lab PKI), with the simulators one workload needs.
 *
 *   soak main ──IPC: measure / stop──► this process: lab (relays → simulators)
 *        └────────── load over loopback ──────────────┘
 *
 * `measure` answers with heapUsed and RSS after two full GCs.
 */

import type { LabSimulator } from '../../harness/lab/lab.js';
import { startLab } from '../../harness/lab/lab.js';

export type Workload = 'mqtt' | 'tunnels' | 'sessions' | 'dns' | 'connect';

/** What the load generator needs: each endpoint as `simulator.endpoint` → address, port, URL. */
export type Endpoints = Record<string, { address: string; port: number; url?: string }>;

export type FromLab =
  | { kind: 'ready'; endpoints: Endpoints; labId: string }
  | { kind: 'memory'; heapUsed: number; rss: number; timelineEvents: number }
  | { kind: 'error'; message: string };

export type ToLab = { kind: 'measure' } | { kind: 'stop' };

const ZONE = {
  origin: 'iot.example.com',
  soa: { mname: 'ns1.iot.example.com', rname: 'hostmaster.iot.example.com', minimum: 60 },
  records: [
    {
      name: 'global',
      type: 'CNAME',
      routing: 'geolocation',
      location: 'NA',
      value: 'us-east-1.iot.example.com',
      id: 'us',
    },
    {
      name: 'global',
      type: 'CNAME',
      routing: 'geolocation',
      location: '*',
      value: 'eu-west-1.iot.example.com',
      id: 'default',
    },
    { name: 'us-east-1', type: 'A', value: '198.51.100.20' },
    { name: 'eu-west-1', type: 'A', value: '203.0.113.20' },
  ],
};

export const LABS: Record<Workload, LabSimulator[]> = {
  mqtt: [
    {
      name: 'broker',
      type: 'mqtt-broker',
      host: 'broker.soak.example',
      options: { listeners: [{ protocol: 'mqtt' }] },
    },
  ],
  tunnels: [{ name: 'tunnels', type: 'tunnel-service', host: 'tunnels.soak.example' }],
  // ws, not wss: 10,000 sessions of two TLS handshakes each would measure handshakes on two shared
  // cores (≈ 20 sessions/s here), not the data plane's memory.
  sessions: [
    { name: 'tunnels', type: 'tunnel-service', host: 'tunnels.soak.example', options: { tls: false } },
  ],
  dns: [
    {
      name: 'dns',
      type: 'geo-dns',
      host: 'ns1.soak.example',
      options: {
        locations: [
          { cidr: '198.51.100.0/24', continent: 'NA', country: 'US' },
          { cidr: '203.0.113.0/24', continent: 'EU', country: 'DE' },
        ],
        zones: [ZONE],
      },
    },
  ],
  connect: [
    { name: 'web', type: 'https-server', host: 'web.soak.example', port: 443 },
    { name: 'proxy', type: 'connect-proxy', host: 'proxy.soak.example', options: { allowPorts: [443] } },
  ],
};

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (!g) throw new Error('the soak lab needs node --expose-gc');
  g();
  g();
}

async function main(): Promise<void> {
  const workload = process.argv[2] as Workload;
  const simulators = LABS[workload];
  if (!simulators) throw new Error(`unknown workload ${workload}`);
  const lab = await startLab({ name: `soak-${workload}`, simulators });
  const endpoints: Endpoints = {};
  for (const [name, s] of lab.simulators)
    for (const e of s.endpoints)
      endpoints[`${name}.${e.name}`] = { address: e.host, port: e.port, ...(e.url ? { url: e.url } : {}) };
  const send = (m: FromLab) => process.send?.(m);
  send({ kind: 'ready', endpoints, labId: lab.id });
  process.on('message', async (m: ToLab) => {
    if (m.kind === 'measure') {
      // Let close handlers of the last connections run before reading.
      await new Promise((r) => setTimeout(r, 50));
      gc();
      const mem = process.memoryUsage();
      send({ kind: 'memory', heapUsed: mem.heapUsed, rss: mem.rss, timelineEvents: lab.timeline.size });
    } else if (m.kind === 'stop') {
      await lab.stop();
      process.exit(0);
    }
  });
  process.on('disconnect', () => {
    void lab.stop().finally(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.send?.({ kind: 'error', message: err instanceof Error ? err.message : String(err) });
  process.exitCode = 1;
});
