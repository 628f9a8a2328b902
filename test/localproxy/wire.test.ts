/**
 * The source localproxy's WebSocket frames on the wire, read from a TCP tap between it and the service.
 * With the zero masking key the outbox writes its frames itself (header, message fields and TCP payload
 * views in one `writev`); they must be byte for byte the frames `ws` builds for the same payload.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FrameDecoder, MessageType } from '../../simulators/tunnel-service/index.js';
import {
  Cleanup,
  dial,
  echoServer,
  openTunnel,
  proxy,
  readN,
  sha256,
  startService,
  tcpServer,
  within,
} from './helpers.js';

interface SenderStatic {
  frame(
    data: Buffer,
    o: {
      fin: boolean;
      rsv1: boolean;
      opcode: number;
      mask: boolean;
      readOnly: boolean;
      generateMask(m: Buffer): void;
    },
  ): Buffer[];
}
// ws's own frame builder (not in its type declarations).
const { Sender }: { Sender: SenderStatic } = createRequire(import.meta.url)('ws');

const c = new Cleanup();
afterEach(() => c.run());

/** A TCP relay to `target` that keeps every byte its clients send. */
async function tap(target: string): Promise<{ endpoint: string; sent(): Buffer }> {
  const [host, port] = [
    target.slice(0, target.lastIndexOf(':')),
    Number(target.slice(target.lastIndexOf(':') + 1)),
  ];
  const chunks: Buffer[] = [];
  const { port: tapPort } = await tcpServer(c, (a, track) => {
    const b = connect({ host, port });
    track(b);
    a.on('data', (d: Buffer) => chunks.push(d));
    a.pipe(b);
    b.pipe(a);
  });
  return {
    endpoint: `127.0.0.1:${tapPort}`,
    sent: () => Buffer.concat(chunks),
  };
}

interface WireFrame {
  /** The whole frame as sent. */
  bytes: Buffer;
  opcode: number;
  /** 7, 16 or 64: the payload length's encoding (RFC 6455 §5.2). */
  lengthBits: number;
  /** Unmasked payload. */
  payload: Buffer;
}

/** RFC 6455 §5.2: the client's frames after its HTTP upgrade request. */
function clientFrames(wire: Buffer): WireFrame[] {
  let pos = wire.indexOf('\r\n\r\n') + 4;
  const out: WireFrame[] = [];
  while (wire.length - pos >= 2) {
    const start = pos;
    const b1 = wire[pos + 1] as number;
    let len = b1 & 0x7f;
    let lengthBits = 7;
    pos += 2;
    if (len === 126) {
      len = wire.readUInt16BE(pos);
      lengthBits = 16;
      pos += 2;
    } else if (len === 127) {
      len = Number(wire.readBigUInt64BE(pos));
      lengthBits = 64;
      pos += 8;
    }
    expect(b1 & 0x80).toBe(0x80); // §5.3: every client frame is masked
    const key = wire.subarray(pos, pos + 4);
    pos += 4;
    if (wire.length - pos < len) break;
    const payload = Buffer.from(wire.subarray(pos, pos + len));
    for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (key[i % 4] as number);
    pos += len;
    out.push({
      bytes: wire.subarray(start, pos),
      opcode: (wire[start] as number) & 0x0f,
      lengthBits,
      payload,
    });
  }
  return out;
}

describe('source localproxy frames on the wire', () => {
  it('are the frames ws builds (zero key), in every length form, and carry the stream intact', async () => {
    const s = await startService(c);
    const t = await openTunnel(s);
    const echo = await echoServer(c);
    await proxy(c, {
      mode: 'destination',
      accessToken: t.destination,
      endpoint: `ws://${s.data}`,
      destinationApp: `127.0.0.1:${echo.port}`,
    });
    const wire = await tap(s.data);
    const src = await proxy(c, {
      mode: 'source',
      accessToken: t.source,
      endpoint: `ws://${wire.endpoint}`,
      sourceListenPort: '0',
    });
    const app = await dial(src.listeners[0]?.port as number);
    // A small write (a 16-bit length frame), then one that fills frames of two 63 KiB messages (64-bit).
    for (const size of [1000, 300_000]) {
      const data = randomBytes(size);
      const back = readN(app, size);
      app.write(data);
      expect(sha256(await back)).toBe(sha256(data));
    }
    const reset = new Promise<void>((r) => s.svc.events.onceEvent('connection-reset', () => r()));
    app.destroy();
    await within(reset, 5000, 'the connection reset');

    const frames = clientFrames(wire.sent()).filter((f) => f.opcode === 2);
    for (const f of frames) {
      const built = Sender.frame(f.payload, {
        fin: true,
        rsv1: false,
        opcode: 2,
        mask: true,
        readOnly: true,
        generateMask: (m) => m.fill(0),
      });
      expect(f.bytes).toEqual(Buffer.concat(built));
    }
    expect(new Set(frames.map((f) => f.lengthBits))).toEqual(new Set([7, 16, 64]));
    const decoder = new FrameDecoder();
    const messages = frames.flatMap((f) => decoder.push(f.payload));
    const data = messages.filter((m) => m.type === MessageType.DATA);
    expect(data.reduce((n, m) => n + m.payload.length, 0)).toBe(301_000);
    expect(messages[0]?.type).toBe(MessageType.STREAM_START);
    expect(messages.at(-1)?.type).toBe(MessageType.CONNECTION_RESET);
  });
});
