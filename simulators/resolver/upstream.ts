/**
 * One query to an authoritative server, as a forwarding resolver sends it: from the resolver's egress
 * address (what the server locates when no ECS is sent), a random source port and ID (RFC 5452 §9.2), EDNS
 * with the client subnet when ECS is on (RFC 7871 §6), over UDP and again over TCP when the answer comes
 * back truncated (RFC 7766 §5).
 *
 * dns2's UDP/TCP clients do not fit here: they cannot bind the egress address, their ECS helper always
 * writes FAMILY 1 (an IPv6 subnet goes out as garbage), the TCP client has no timeout, and their parser
 * loses the whole OPT of an answer whose IPv6 ECS address ends inside an octet (a /56) — so the scope
 * would be lost. The query is encoded here, answers are checked with the project's codec
 * (geo-dns/wire.ts `validateMessage`, ECS read from the raw OPT) and their records parsed with dns2's Packet.
 */
import { createSocket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';
import dns2 from 'dns2';
import { errorCode } from '../common/index.js';
import { validateMessage } from '../geo-dns/wire.js';

export type Dns2Packet = InstanceType<typeof dns2.Packet>;

/** A client subnet to send: ADDRESS already truncated to ceil(sourcePrefix / 8) bytes, bits past it zero. */
export interface ClientSubnet {
  family: 1 | 2;
  sourcePrefix: number;
  address: Uint8Array;
}

export interface UpstreamServer {
  host: string;
  port: number;
  /** `host:port` for events. */
  text: string;
}

export type UpstreamOutcome =
  | {
      kind: 'answer';
      packet: Dns2Packet;
      rcode: number;
      /** The ECS scope the server returned; undefined when its answer had no ECS option. */
      scope?: number;
      transport: 'udp' | 'tcp';
    }
  | { kind: 'timeout'; error?: string };

/** Encodes a recursion-desired query with an OPT (RFC 6891) and, when given, ECS (RFC 7871 §6). */
export function encodeQuery(id: number, name: string, type: number, ecs: ClientSubnet | undefined): Buffer {
  const labels = name === '' ? [] : name.split('.');
  const qname = Buffer.concat([
    ...labels.map((l) => {
      const b = Buffer.from(l, 'latin1');
      return Buffer.concat([Buffer.from([b.length]), b]);
    }),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(1, 10);
  const question = Buffer.alloc(4);
  question.writeUInt16BE(type, 0);
  question.writeUInt16BE(1, 2); // IN
  const optData = ecs ? 8 + ecs.address.length : 0;
  const opt = Buffer.alloc(11 + optData);
  opt.writeUInt16BE(41, 1); // OPT, owner the root
  opt.writeUInt16BE(1232, 3); // UDP payload size (DNS flag day 2020)
  opt.writeUInt16BE(optData, 9);
  if (ecs) {
    opt.writeUInt16BE(8, 11); // OPTION-CODE ECS
    opt.writeUInt16BE(4 + ecs.address.length, 13);
    opt.writeUInt16BE(ecs.family, 15);
    opt[17] = ecs.sourcePrefix;
    opt[18] = 0; // RFC 7871 §6: SCOPE PREFIX-LENGTH 0 in queries
    opt.set(ecs.address, 19);
  }
  return Buffer.concat([header, qname, question, opt]);
}

/** The ECS option of a response's OPT RDATA, read from the raw bytes. */
function readEcs(
  msg: Buffer,
  start: number,
  end: number,
): { family: number; source: number; scope: number; address: Buffer } | undefined {
  let off = start;
  while (off + 4 <= end) {
    const code = msg.readUInt16BE(off);
    const len = msg.readUInt16BE(off + 2);
    off += 4;
    if (off + len > end) return undefined;
    if (code === 8 && len >= 4) {
      return {
        family: msg.readUInt16BE(off),
        source: msg[off + 2] ?? 0,
        scope: msg[off + 3] ?? 0,
        address: msg.subarray(off + 4, off + len),
      };
    }
    off += len;
  }
  return undefined;
}

/** The question of a message: lower-case name without the trailing dot, and type; undefined when unreadable. */
function questionOf(msg: Buffer): { name: string; type: number } | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    const len = msg[off];
    if (len === undefined || len > 63) return undefined;
    if (len === 0) break;
    labels.push(msg.toString('latin1', off + 1, off + 1 + len).toLowerCase());
    off += 1 + len;
  }
  if (off + 3 > msg.length) return undefined;
  return { name: labels.join('.'), type: msg.readUInt16BE(off + 1) };
}

/**
 * Checks an answer against the query (RFC 5452 §9.1: ID and question; RFC 7871 §7.3: ECS family, source
 * prefix and address) and parses it. Returns undefined for a message to ignore.
 */
export function acceptAnswer(
  msg: Buffer,
  id: number,
  name: string,
  type: number,
  ecs: ClientSubnet | undefined,
  transport: 'udp' | 'tcp',
): UpstreamOutcome | undefined {
  if (msg.length < 12 || msg.readUInt16BE(0) !== id || !(msg.readUInt16BE(2) & 0x8000)) return undefined;
  const q = questionOf(msg);
  if (!q || q.name !== name || q.type !== type) return undefined;
  const valid = validateMessage(msg);
  if (!valid) return undefined;
  let scope: number | undefined;
  const got = valid.opt ? readEcs(msg, valid.opt.start, valid.opt.end) : undefined;
  if (ecs && got) {
    const same =
      got.family === ecs.family &&
      got.source === ecs.sourcePrefix &&
      Buffer.compare(got.address, Buffer.from(ecs.address)) === 0;
    if (!same) return undefined;
    // RFC 7871 §7.3.1: a scope longer than the source is cached as the source.
    scope = Math.min(got.scope, ecs.sourcePrefix);
  }
  let packet: Dns2Packet;
  try {
    packet = dns2.Packet.parse(msg);
  } catch {
    return undefined;
  }
  return {
    kind: 'answer',
    packet,
    rcode: msg.readUInt16BE(2) & 0xf,
    ...(scope !== undefined ? { scope } : {}),
    transport,
  };
}

/**
 * The end of one exchange with an upstream, whichever comes first: an answer, `timeoutMs`, the resolver
 * stopping (`signal`), a socket error. The returned `finish` resolves once, clears the timer and the abort
 * listener and releases the socket; later calls do nothing.
 */
function settleOnce(
  resolve: (out: UpstreamOutcome & { truncated?: boolean }) => void,
  release: () => void,
  timeoutMs: number,
  signal: AbortSignal,
): (out: UpstreamOutcome & { truncated?: boolean }) => void {
  let done = false;
  const finish = (out: UpstreamOutcome & { truncated?: boolean }): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    release();
    resolve(out);
  };
  const onAbort = (): void => finish({ kind: 'timeout', error: 'resolver stopped' });
  signal.addEventListener('abort', onAbort);
  const timer = setTimeout(() => finish({ kind: 'timeout' }), timeoutMs);
  return finish;
}

/** A socket error as an outcome: no answer, with the error's code (or message). */
const socketError = (err: Error): UpstreamOutcome => ({
  kind: 'timeout',
  error: errorCode(err) ?? err.message,
});

/** Sends the query over UDP from `egress` and waits `timeoutMs` for a matching answer. */
export function askUdp(
  server: UpstreamServer,
  egress: string,
  query: Buffer,
  check: (msg: Buffer) => UpstreamOutcome | undefined,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<UpstreamOutcome & { truncated?: boolean }> {
  return new Promise((resolve) => {
    const sock = createSocket(isIPv6(egress) ? 'udp6' : 'udp4');
    const finish = settleOnce(resolve, () => sock.close(), timeoutMs, signal);
    sock.on('error', (err) => finish(socketError(err)));
    sock.on('message', (msg, rinfo) => {
      // RFC 5452 §9.1: only from the address and port the query went to
      if (rinfo.port !== server.port || rinfo.address !== server.host) return;
      const out = check(msg);
      if (!out) return;
      const tc = (msg.readUInt16BE(2) & 0x0200) !== 0;
      finish(tc ? { ...out, truncated: true } : out);
    });
    sock.bind(0, egress, () => {
      sock.send(query, server.port, server.host, (err) => {
        if (err) finish(socketError(err));
      });
    });
  });
}

/** Sends the query over TCP (RFC 1035 §4.2.2 length prefix) from `egress`; waits `timeoutMs` in all. */
export function askTcp(
  server: UpstreamServer,
  egress: string,
  query: Buffer,
  check: (msg: Buffer) => UpstreamOutcome | undefined,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<UpstreamOutcome> {
  return new Promise((resolve) => {
    const sock = connect({ host: server.host, port: server.port, localAddress: egress });
    let buf = Buffer.alloc(0);
    const finish = settleOnce(resolve, () => sock.destroy(), timeoutMs, signal);
    sock.on('error', (err) => finish(socketError(err)));
    sock.on('close', () => finish({ kind: 'timeout', error: 'connection closed' }));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const out = check(msg);
        if (out) return finish(out);
      }
    });
  });
}
