/**
 * The soak's operations, one function per workload, each one complete exchange a real client makes, over
 * loopback to the lab's public (relayed) endpoints. Each resolves when the exchange is over and its
 * sockets are closed, and rejects when the lab answered wrongly.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { Agent, request } from 'node:http';
import { connect as netConnect } from 'node:net';
import { generate } from 'mqtt-packet';
import WebSocket from 'ws';
import { encodeMessage, FrameDecoder, MessageType } from '../../simulators/tunnel-service/frame.js';
import type { Endpoints } from './lab.js';

export interface Operation {
  /** One operation; `i` numbers them (client ids, query ids). */
  run(i: number): Promise<void>;
  close(): void;
}

function endpoint(eps: Endpoints, name: string) {
  const e = eps[name];
  if (!e) throw new Error(`the soak lab has no endpoint ${name} (has ${Object.keys(eps).join(', ')})`);
  return e;
}

/** Bounded: an exchange that hangs fails the run instead of stalling it. */
function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** TCP exchange: connect, write `first`, read until `done(received)` is true, then end and await close. */
function tcpExchange(
  address: string,
  port: number,
  first: Buffer,
  done: (got: Buffer) => boolean,
  after?: Buffer,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: address, port, noDelay: true });
    let got = Buffer.alloc(0);
    let ok = false;
    s.on('connect', () => s.write(first));
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (!ok && done(got)) {
        ok = true;
        if (after) s.end(after);
        else s.end();
      }
    });
    s.on('error', reject);
    s.on('close', () => (ok ? resolve(got) : reject(new Error(`closed early after ${got.length} bytes`))));
  });
}

/** MQTT 3.1.1: CONNECT (clean session), CONNACK 0, DISCONNECT, close. */
export function mqttCycle(eps: Endpoints): Operation {
  const e = endpoint(eps, 'broker.mqtt');
  const disconnect = generate({ cmd: 'disconnect' });
  return {
    async run(i) {
      const connect = generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: true,
        clientId: `soak-${i}`,
        keepalive: 30,
      });
      const got = await bounded(
        tcpExchange(e.address, e.port, connect, (b) => b.length >= 4, disconnect),
        10_000,
        'CONNACK',
      );
      if (got[0] !== 0x20 || got[3] !== 0)
        throw new Error(`CONNACK expected, got ${got.subarray(0, 4).toString('hex')}`);
    },
    close() {},
  };
}

/** The tunnel management API over keep-alive HTTP (AWS JSON 1.1). */
function tunnelApi(eps: Endpoints) {
  const e = endpoint(eps, 'tunnels.api');
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const call = (operation: string, body: object) =>
    bounded(
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const payload = JSON.stringify(body);
        const req = request(
          {
            host: e.address,
            port: e.port,
            method: 'POST',
            path: '/',
            agent,
            headers: {
              'x-amz-target': `IoTSecuredTunneling.${operation}`,
              'content-type': 'application/x-amz-json-1.1',
              'content-length': Buffer.byteLength(payload),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString();
              if (res.statusCode !== 200) reject(new Error(`${operation}: ${res.statusCode} ${text}`));
              else resolve(JSON.parse(text) as Record<string, unknown>);
            });
          },
        );
        req.on('error', reject);
        req.end(payload);
      }),
      10_000,
      operation,
    );
  return { call, agent };
}

/** OpenTunnel (a thing's SSH service) then CloseTunnel with delete, as an operator's script does. */
export function tunnelOpenClose(eps: Endpoints): Operation {
  const api = tunnelApi(eps);
  return {
    async run(i) {
      const t = await api.call('OpenTunnel', {
        destinationConfig: { thingName: `thing-${i % 1000}`, services: ['SSH'] },
      });
      await api.call('CloseTunnel', { tunnelId: t.tunnelId, delete: true });
    },
    close: () => api.agent.destroy(),
  };
}

/** A v2 WebSocket peer that resolves the next decoded message. */
function peer(url: string, mode: 'source' | 'destination', token: string) {
  const ws = new WebSocket(`${url}/tunnel?local-proxy-mode=${mode}`, ['aws.iot.securetunneling-2.0'], {
    headers: { 'access-token': token },
    perMessageDeflate: false,
  });
  const decoder = new FrameDecoder();
  const queue: Array<ReturnType<FrameDecoder['push']>[number]> = [];
  let wake: (() => void) | undefined;
  ws.on('message', (d: Buffer) => {
    queue.push(...decoder.push(d));
    wake?.();
  });
  const open = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_q, res) => reject(new Error(`${mode}: HTTP ${res.statusCode}`)));
  });
  const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
  const next = async () => {
    while (queue.length === 0) await new Promise<void>((r) => (wake = r));
    return queue.shift() as (typeof queue)[number];
  };
  return { ws, open, closed, next };
}

/**
 * One data-plane session: OpenTunnel, source and destination connect (v2, each gets SERVICE_IDS), the
 * source starts a stream, 1 KB goes each way, both disconnect, CloseTunnel with delete.
 */
export function dataPlaneSession(eps: Endpoints): Operation {
  const api = tunnelApi(eps);
  const d = endpoint(eps, 'tunnels.data');
  // The soak lab serves the data plane as ws (see lab.ts); wss would need the lab CA here.
  if (d.url?.startsWith('wss:')) throw new Error('the soak lab should serve the tunnel data plane as ws');
  const url = `ws://${d.address}:${d.port}`;
  const kb = Buffer.alloc(1024, 0x61);
  return {
    async run(i) {
      const t = await api.call('OpenTunnel', {
        destinationConfig: { thingName: `thing-${i % 1000}`, services: ['SSH'] },
      });
      const src = peer(url, 'source', t.sourceAccessToken as string);
      const dst = peer(url, 'destination', t.destinationAccessToken as string);
      try {
        await bounded(
          Promise.all([src.open, dst.open, src.next(), dst.next()]),
          10_000,
          'both peers connected',
        );
        src.ws.send(encodeMessage({ type: MessageType.STREAM_START, streamId: 1, serviceId: 'SSH' }));
        const start = await bounded(dst.next(), 10_000, 'STREAM_START at the destination');
        if (start.type !== MessageType.STREAM_START)
          throw new Error(`expected STREAM_START, got ${start.type}`);
        src.ws.send(encodeMessage({ type: MessageType.DATA, streamId: 1, serviceId: 'SSH', payload: kb }));
        const toDst = await bounded(dst.next(), 10_000, 'DATA at the destination');
        dst.ws.send(encodeMessage({ type: MessageType.DATA, streamId: 1, serviceId: 'SSH', payload: kb }));
        const toSrc = await bounded(src.next(), 10_000, 'DATA at the source');
        if (toDst.payload.length !== 1024 || toSrc.payload.length !== 1024)
          throw new Error('DATA lost on the way');
      } finally {
        src.ws.close();
        dst.ws.close();
        await bounded(Promise.all([src.closed, dst.closed]), 10_000, 'both peers closed').catch(() => {
          src.ws.terminate();
          dst.ws.terminate();
        });
        // Also after a failed session: an open tunnel is state the service rightly keeps (12 h).
        await api.call('CloseTunnel', { tunnelId: t.tunnelId, delete: true });
      }
    },
    close: () => api.agent.destroy(),
  };
}

/** A DNS query for the geolocated name, with a client subnet from a list (RFC 7871), over UDP. */
function dnsQuery(id: number): Buffer {
  const subnets = [
    [203, 0, 113],
    [198, 51, 100],
  ];
  const net = subnets[id % subnets.length] as number[];
  const name = 'global.iot.example.com'.split('.');
  const q = Buffer.alloc(12 + name.reduce((n, l) => n + l.length + 1, 1) + 4 + 11 + 11);
  let o = q.writeUInt16BE(id & 0xffff, 0);
  o = q.writeUInt16BE(0x0100, 2); // RD
  o = q.writeUInt16BE(1, 4); // QDCOUNT
  o = q.writeUInt16BE(1, 10); // ARCOUNT: the OPT record
  o = 12;
  for (const l of name) {
    o = q.writeUInt8(l.length, o);
    o += q.write(l, o, 'ascii');
  }
  o = q.writeUInt8(0, o);
  o = q.writeUInt16BE(1, o); // A
  o = q.writeUInt16BE(1, o); // IN
  // OPT (RFC 6891): root name, type 41, UDP size 1232, TTL 0, RDLEN 11 = ECS option (RFC 7871 §6).
  o = q.writeUInt8(0, o);
  o = q.writeUInt16BE(41, o);
  o = q.writeUInt16BE(1232, o);
  o = q.writeUInt32BE(0, o);
  o = q.writeUInt16BE(11, o);
  o = q.writeUInt16BE(8, o); // OPTION-CODE: edns-client-subnet
  o = q.writeUInt16BE(7, o); // OPTION-LENGTH
  o = q.writeUInt16BE(1, o); // FAMILY: IPv4
  o = q.writeUInt8(24, o); // SOURCE PREFIX-LENGTH
  o = q.writeUInt8(0, o); // SCOPE
  for (const b of net) o = q.writeUInt8(b, o);
  return q.subarray(0, o);
}

/** DNS over UDP: one query, its answer (NOERROR with a record); one socket per lane. */
export function dnsQueries(eps: Endpoints): Operation {
  const e = endpoint(eps, 'dns.dns-udp');
  const sockets = new Map<number, UdpSocket>();
  const waiting = new Map<number, (b: Buffer) => void>();
  const socketFor = (lane: number) => {
    let s = sockets.get(lane);
    if (!s) {
      s = createSocket('udp4');
      s.on('message', (m: Buffer) => waiting.get(m.readUInt16BE(0))?.(m));
      sockets.set(lane, s);
    }
    return s;
  };
  return {
    async run(i) {
      const id = i & 0xffff;
      const s = socketFor(i % 64);
      const answer = await bounded(
        new Promise<Buffer>((resolve) => {
          waiting.set(id, resolve);
          s.send(dnsQuery(i), e.port, e.address);
        }),
        5000,
        'a DNS answer',
      ).finally(() => waiting.delete(id));
      const rcode = (answer[3] as number) & 0x0f;
      if (rcode !== 0 || answer.readUInt16BE(6) === 0)
        throw new Error(`DNS answer rcode ${rcode}, ${answer.readUInt16BE(6)} answers`);
    },
    close() {
      for (const s of sockets.values()) s.close();
    },
  };
}

/** CONNECT web:443 through the lab proxy, 200, a TLS-looking byte or two through, close. */
export function connectThroughProxy(eps: Endpoints): Operation {
  const p = endpoint(eps, 'proxy.proxy');
  const head = Buffer.from('CONNECT web.soak.example:443 HTTP/1.1\r\nHost: web.soak.example:443\r\n\r\n');
  return {
    async run() {
      const got = await bounded(
        tcpExchange(p.address, p.port, head, (b) => b.includes('\r\n\r\n')),
        10_000,
        'the CONNECT answer',
      );
      const status = got.toString('latin1', 0, 12);
      if (status !== 'HTTP/1.1 200') throw new Error(`CONNECT answered ${got.toString('latin1', 0, 60)}`);
    },
    close() {},
  };
}
