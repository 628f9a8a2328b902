import { createHash, randomBytes } from 'node:crypto';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import rhea, { type Connection, type ConnectionOptions, type EventContext } from 'rhea';
import { within } from '../helpers/within.js';

/**
 * Wire-level helpers for the hub and DPS fronts: a raw WebSocket upgrade as proton-j (the Java SDKs' AMQP
 * engine) writes it, and AMQP clients that record the bytes the server sends, so tests can assert encodings
 * (AMQP type codes) that a lenient client decodes away.
 */

export interface UpgradeAnswer {
  statusLine: string;
  headers: Record<string, string>;
  /** The first WebSocket frame's payload after sending `firstFrame` (when given and upgraded). */
  reply?: Buffer;
}

/**
 * Sends a WebSocket upgrade with `target` as the request target (origin or absolute form) over TLS and, when
 * the answer is 101, `firstFrame` as one masked binary frame; resolves with the answer and the server's first
 * frame payload.
 */
export function rawUpgrade(opts: {
  port: number;
  ca: string;
  target: string;
  host: string;
  protocol: string;
  firstFrame?: Buffer;
}): Promise<UpgradeAnswer & { key: string }> {
  const key = randomBytes(16).toString('base64');
  const request = [
    `GET ${opts.target} HTTP/1.1`,
    // Exactly what proton-j-extensions' WebSocketUpgrade writes (including the combined Connection header).
    'Connection: Upgrade,Keep-Alive',
    'Upgrade: websocket',
    'Sec-WebSocket-Version: 13',
    `Sec-WebSocket-Key: ${key}`,
    `Sec-WebSocket-Protocol: ${opts.protocol}`,
    `Host: ${opts.host}`,
    '',
    '',
  ].join('\r\n');
  const done = new Promise<UpgradeAnswer & { key: string }>((resolve, reject) => {
    const socket: TLSSocket = tlsConnect(
      { host: '127.0.0.1', port: opts.port, ca: opts.ca, servername: 'localhost' },
      () => socket.write(request),
    );
    let buf = Buffer.alloc(0);
    let answer: (UpgradeAnswer & { key: string }) | undefined;
    const finish = (a: UpgradeAnswer & { key: string }) => {
      socket.destroy();
      resolve(a);
    };
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!answer) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const [statusLine = '', ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
        const headers: Record<string, string> = {};
        for (const l of lines) {
          const i = l.indexOf(':');
          if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
        }
        answer = { statusLine, headers, key };
        buf = buf.subarray(end + 4);
        if (!/^HTTP\/1\.1 101 /.test(statusLine) || !opts.firstFrame) return finish(answer);
        socket.write(maskedBinaryFrame(opts.firstFrame));
      }
      const frame = readServerFrame(buf);
      if (frame) finish({ ...answer, reply: frame });
    });
    socket.on('error', reject);
    socket.on('close', () => (answer ? resolve(answer) : reject(new Error('closed before an answer'))));
  });
  return within(done, 8000, `upgrade answer for ${opts.target}`);
}

/** The Sec-WebSocket-Accept a server must answer for `key` (RFC 6455 §4.2.2). */
export function acceptFor(key: string): string {
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

/** RFC 6455 §5.2: FIN + binary, masked (a client must mask), payload under 126 bytes. */
function maskedBinaryFrame(payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x82, 0x80 | payload.length]), mask, masked]);
}

/** The payload of a complete unmasked server frame at the start of `buf` (7- or 16-bit length). */
function readServerFrame(buf: Buffer): Buffer | undefined {
  if (buf.length < 2) return undefined;
  let len = buf[1]! & 0x7f;
  let offset = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    offset = 4;
  }
  return buf.length >= offset + len ? buf.subarray(offset, offset + len) : undefined;
}

/** The AMQP 1.0 protocol headers (§2.2 and §5.3.1). */
export const AMQP_HEADER = Buffer.from([0x41, 0x4d, 0x51, 0x50, 0, 1, 0, 0]);
export const SASL_HEADER = Buffer.from([0x41, 0x4d, 0x51, 0x50, 3, 1, 0, 0]);

export interface WireConnection {
  connection: Connection;
  /** Every byte the server has sent so far (decrypted). */
  received(): Buffer;
  close(): Promise<void>;
}

/**
 * An AMQP connection (rhea) over TLS to `port` that records what the server sends. `options` carry the
 * SASL choice: `username` alone = ANONYMOUS (Java, C# on the hub), `username` + `password` = PLAIN (DPS),
 * `sasl_mechanisms` for another one.
 */
export function wireConnect(
  port: number,
  ca: string,
  options: Partial<ConnectionOptions> = {},
): WireConnection {
  const container = rhea.create_container({ id: `wire-${randomBytes(3).toString('hex')}` });
  // Refusals are what some tests wait for: handled here, so rhea does not log them as unhandled.
  container.on('disconnected', () => undefined);
  container.on('error', () => undefined);
  const connection = container.connect({
    transport: 'tls',
    host: '127.0.0.1',
    port,
    ca,
    servername: 'localhost',
    reconnect: false,
    ...options,
  } as ConnectionOptions);
  const chunks: Buffer[] = [];
  // rhea creates its socket synchronously: tap it before any byte can arrive.
  const socket = Reflect.get(connection, 'socket') as TLSSocket;
  socket.on('data', (d: Buffer) => chunks.push(d));
  return {
    connection,
    received: () => Buffer.concat(chunks),
    async close() {
      if (!socket.destroyed) {
        const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
        socket.destroy();
        await within(closed, 2000, 'socket close');
      }
    },
  };
}

/**
 * The AMQP constructor byte of the value stored under the string key `key` in the bytes `wire` (a map
 * entry: str8 key, then the value): e.g. 0x71 int, 0x54 smallint, 0x70 uint, 0x52 smalluint, 0xa1 str8.
 */
export function valueCodeAfterKey(wire: Buffer, key: string): number | undefined {
  const k = Buffer.from(key);
  const at = wire.indexOf(Buffer.concat([Buffer.from([0xa1, k.length]), k]));
  return at < 0 ? undefined : wire[at + 2 + k.length];
}

/** Resolves with the first event `name` on `emitter`, or rejects on one of `failOn` (with its error). */
export function nextEvent(
  emitter: { once(event: string, fn: (ctx: EventContext) => void): unknown },
  name: string,
  failOn: string[] = [],
): Promise<EventContext> {
  return new Promise((resolve, reject) => {
    emitter.once(name, resolve);
    for (const f of failOn) {
      emitter.once(f, (ctx: EventContext) => {
        const err = ctx.receiver?.error ?? ctx.sender?.error ?? ctx.connection?.error ?? ctx.error;
        reject(new Error(`${f}: ${JSON.stringify(err ?? null)}`));
      });
    }
  });
}
