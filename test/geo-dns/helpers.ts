import { execFile } from 'node:child_process';
import type { GeoDnsHandle, GeoDnsOptions } from '../../simulators/geo-dns/index.js';
import { start } from '../../simulators/geo-dns/index.js';
import type { RecordInput } from '../../simulators/geo-dns/options.js';

/** The regional endpoints' addresses in the seed zone. */
export const US_EAST_1 = '127.53.0.2';
export const EU_WEST_1 = '127.53.0.3';

/**
 * The seed's Route 53 geolocation records in zone iot.example.com: `global` is a CNAME by location (NA →
 * us-east-1, Default → eu-west-1), and the two regional names have A records on loopback.
 */
export function seedGlobalRecords(): RecordInput[] {
  return [
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
    { name: 'us-east-1', type: 'A', value: US_EAST_1 },
    { name: 'eu-west-1', type: 'A', value: EU_WEST_1 },
  ];
}

/** The seed lab: global.iot.example.com by location (NA → us-east-1, Default → eu-west-1). */
export function seedOptions(extra: Partial<GeoDnsOptions> = {}): GeoDnsOptions {
  return {
    zones: [
      {
        origin: 'iot.example.com',
        soa: { mname: 'ns1.iot.example.com', rname: 'hostmaster.iot.example.com', minimum: 30 },
        ttl: 60,
        records: [
          ...seedGlobalRecords(),
          { name: 'eu-west-1', type: 'AAAA', value: '2001:db8::3' },
          { name: 'info', type: 'TXT', value: 'fieldlab geo dns', ttl: 120 },
          { name: '_mqtt._tcp', type: 'SRV', value: '10 5 8883 us-east-1.iot.example.com.' },
          { name: '@', type: 'NS', value: 'ns1.iot.example.com.' },
          { name: 'ns1', type: 'A', value: '127.53.0.1' },
          { name: 'big', type: 'TXT', value: Array.from({ length: 8 }, (_, i) => `${i}`.repeat(200)) },
          { name: 'deep.sub', type: 'A', value: '127.53.0.5' },
        ],
      },
    ],
    locations: [
      { cidr: '127.53.1.0/24', continent: 'NA', country: 'US', subdivision: 'WA' },
      { cidr: '127.53.2.0/24', continent: 'EU', country: 'DE' },
      { cidr: '2001:db8::/32', continent: 'NA', country: 'US' },
    ],
    ...extra,
  };
}

export async function startSeed(extra: Partial<GeoDnsOptions> = {}): Promise<GeoDnsHandle> {
  return start(seedOptions(extra));
}

export interface DigResult {
  code: number;
  stdout: string;
  status?: string;
  flags: string[];
  answers: string[][];
  authority: string[][];
  ecs?: string;
}

/**
 * Runs dig against the server (127.0.0.1, or `{host, port}`); parses status, flags, answer/authority
 * sections and CLIENT-SUBNET.
 */
export function dig(
  server: number | { host: string; port: number },
  args: string[],
  timeoutMs = 8000,
): Promise<DigResult> {
  const { host, port } = typeof server === 'number' ? { host: '127.0.0.1', port: server } : server;
  return new Promise((resolve) => {
    execFile(
      'dig',
      [`@${host}`, '-p', String(port), '+time=2', '+tries=1', ...args],
      { timeout: timeoutMs },
      (err, stdout) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        const status = /status: ([A-Z]+)/.exec(stdout)?.[1];
        const flags = /;; flags: ([a-z ]+);/.exec(stdout)?.[1]?.trim().split(/\s+/) ?? [];
        const section = (title: string): string[][] => {
          const m = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(stdout);
          return m?.[1]
            ? m[1]
                .split('\n')
                .filter((l) => l && !l.startsWith(';'))
                .map((l) => l.split(/\s+/))
            : [];
        };
        const ecs = /CLIENT-SUBNET: (\S+)/.exec(stdout)?.[1];
        resolve({
          code,
          stdout,
          ...(status ? { status } : {}),
          flags,
          answers: section('ANSWER'),
          authority: section('AUTHORITY'),
          ...(ecs ? { ecs } : {}),
        });
      },
    );
  });
}

/** A query packet built by hand: one question, optional OPT with an ECS option (address bytes as given). */
export function buildQuery(
  name: string,
  qtype: number,
  opts: { id?: number; ecs?: { family: number; source: number; address: number[] }; udpSize?: number } = {},
): Buffer {
  const parts: Buffer[] = [];
  const h = Buffer.alloc(12);
  h.writeUInt16BE(opts.id ?? 0x1234, 0);
  h.writeUInt16BE(0x0100, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(opts.ecs || opts.udpSize ? 1 : 0, 10);
  parts.push(h);
  for (const l of name.split('.').filter(Boolean)) parts.push(Buffer.from([l.length]), Buffer.from(l));
  const q = Buffer.alloc(5);
  q.writeUInt16BE(qtype, 1);
  q.writeUInt16BE(1, 3);
  parts.push(q);
  if (opts.ecs || opts.udpSize) {
    const e = opts.ecs;
    const optLen = e ? 8 + e.address.length : 0;
    const opt = Buffer.alloc(11 + optLen);
    opt.writeUInt16BE(41, 1);
    opt.writeUInt16BE(opts.udpSize ?? 1232, 3);
    opt.writeUInt16BE(optLen, 9);
    if (e) {
      opt.writeUInt16BE(8, 11);
      opt.writeUInt16BE(4 + e.address.length, 13);
      opt.writeUInt16BE(e.family, 15);
      opt[17] = e.source;
      Buffer.from(e.address).copy(opt, 19);
    }
    parts.push(opt);
  }
  return Buffer.concat(parts);
}

/** Sends one UDP packet and resolves to the reply (or undefined after `timeoutMs`). */
export async function udpAsk(port: number, packet: Buffer, timeoutMs = 1000): Promise<Buffer | undefined> {
  const { createSocket } = await import('node:dgram');
  const s = createSocket('udp4');
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(undefined), timeoutMs);
    function done(b: Buffer | undefined): void {
      clearTimeout(timer);
      s.close();
      resolve(b);
    }
    s.on('message', (m) => done(m));
    s.on('error', () => done(undefined));
    s.send(packet, port, '127.0.0.1');
  });
}
