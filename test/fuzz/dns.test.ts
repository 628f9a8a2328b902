import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import dns2 from 'dns2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import type { GeoDnsHandle } from '../../simulators/geo-dns/index.js';
import { buildQuery, startSeed } from '../geo-dns/helpers.js';
import { within } from '../helpers/within.js';
import { dnsQuery, dnsTcpStream } from './dns-queries.js';
import { fuzz } from './harness.js';
import { sendTcp } from './mutate.js';

let dns: GeoDnsHandle;
let udpPort: number;
let tcpPort: number;
beforeAll(async () => {
  dns = await startSeed();
  udpPort = endpointOf(dns, 'dns-udp').port;
  tcpPort = endpointOf(dns, 'dns-tcp').port;
});
afterAll(() => dns?.stop());

/** Node's resolver (c-ares) over UDP, then a query over TCP decoded by dns2: both get the A record. */
async function resolves(): Promise<void> {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([`127.0.0.1:${udpPort}`]);
  expect(await within(resolver.resolve4('us-east-1.iot.example.com'), 5000, 'a UDP answer')).toEqual([
    '127.53.0.2',
  ]);
  const q = buildQuery('us-east-1.iot.example.com', 1, { id: 0x4242 });
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(q.length);
  const reply = await sendTcp(tcpPort, [Buffer.concat([prefix, q])], 2000, 50);
  expect(reply.length, 'a TCP answer').toBeGreaterThan(2);
  const answer = dns2.Packet.parse(reply.subarray(2));
  expect(answer.header.id).toBe(0x4242);
  expect(answer.answers.map((a) => (a as { address?: string }).address)).toEqual(['127.53.0.2']);
}

/** Sends one datagram; resolves on the reply or after `ms` (a dropped query is a valid answer). */
function sendUdp(packet: Buffer, ms = 30): Promise<void> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const done = () => {
      clearTimeout(timer);
      s.close();
      resolve();
    };
    const timer = setTimeout(done, ms);
    s.on('message', done);
    s.on('error', done);
    s.send(packet, udpPort, '127.0.0.1');
  });
}

describe('fuzz: DNS over UDP and TCP → geo-dns', () => {
  it('keeps answering and returns to its heap baseline after mutated UDP queries', async () => {
    const r = await fuzz({
      name: 'DNS/UDP → geo-dns',
      input: dnsQuery,
      send: (q) => sendUdp(q),
      probe: resolves,
      batchSize: 300,
      batches: 8,
      concurrency: 32,
    });
    expect(r.heaps).toHaveLength(r.batches);
  }, 60_000);

  it('keeps answering and returns to its heap baseline after mutated TCP streams', async () => {
    const r = await fuzz({
      name: 'DNS/TCP → geo-dns',
      input: dnsTcpStream,
      send: async (stream) => {
        await sendTcp(tcpPort, [stream], 60);
      },
      probe: resolves,
      batchSize: 200,
      batches: 8,
      concurrency: 32,
    });
    expect(r.heaps).toHaveLength(r.batches);
  }, 60_000);
});
