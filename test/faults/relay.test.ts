import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { describeToxic, type RelayHandle, startRelay, toxicSpecSchema } from '../../harness/faults/index.js';
import {
  dial,
  echoServer,
  HOST,
  nextEvent,
  readAll,
  roundTrip,
  sha256,
  sinkServer,
  within,
} from './helpers.js';

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup = [];
});

async function relayTo(
  port: number,
  toxics?: Parameters<typeof startRelay>[0]['toxics'],
): Promise<RelayHandle> {
  const r = await startRelay({
    name: 'r',
    listen: { host: HOST, port: 0 },
    upstream: { host: HOST, port },
    toxics,
  });
  cleanup.push(() => r.stop());
  return r;
}

describe('relay', () => {
  it('relays 64 MB intact with no toxics, and counts bytes', async () => {
    const sink = await sinkServer();
    cleanup.push(() => sink.stop());
    const relay = await relayTo(sink.port);
    const block = randomBytes(1024 * 1024);
    const s = await dial(relay.endpoint.port);
    cleanup.push(() => {
      s.destroy();
    });
    const answer = readAll(s);
    const closed = nextEvent(relay, 'closed', 20_000);
    const { createHash } = await import('node:crypto');
    const hash = createHash('sha256');
    for (let i = 0; i < 64; i++) {
      // Vary each block so a reordering or a lost block changes the digest.
      block.writeUInt32BE(i, 0);
      hash.update(block);
      if (!s.write(Buffer.from(block))) await within(new Promise((r) => s.once('drain', r)), 10_000, 'drain');
    }
    s.end();
    const { data } = await within(answer, 20_000, 'sink answer');
    expect(data.toString()).toBe(`${64 * 1024 * 1024} ${hash.digest('hex')}`);
    const c = await closed;
    expect(c).toMatchObject({ bytesUp: 64 * 1024 * 1024, reason: 'client' });
    expect(relay.stats()).toMatchObject({ connections: 1, active: 0, bytesUp: 64 * 1024 * 1024 });
  });

  it('propagates half-close both ways', async () => {
    const echo = await echoServer();
    cleanup.push(() => echo.stop());
    const relay = await relayTo(echo.port);
    const s = await dial(relay.endpoint.port);
    const got = readAll(s);
    s.end('half');
    const r = await within(got, 3000, 'echo end');
    expect(r.data.toString()).toBe('half');
  });

  it('drops the client when the upstream refuses, and reports upstream-error', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, HOST, () => r()));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const relay = await relayTo(port);
    const err = nextEvent(relay, 'upstream-error', 3000);
    const closed = nextEvent(relay, 'closed', 3000);
    const s = await dial(relay.endpoint.port);
    s.on('error', () => {});
    const r = await within(readAll(s), 3000, 'client dropped');
    expect(r.data.length).toBe(0);
    expect((await err).code).toBe('ECONNREFUSED');
    expect((await closed).reason).toBe('upstream');
  });

  it('switches upstream for new connections', async () => {
    const a = await echoServer();
    const b = await echoServer();
    cleanup.push(
      () => a.stop(),
      () => b.stop(),
    );
    const relay = await relayTo(a.port);
    relay.setUpstream({ host: HOST, port: b.port });
    const s = await dial(relay.endpoint.port);
    cleanup.push(() => {
      s.destroy();
    });
    await within(roundTrip(s, Buffer.from('x')), 3000, 'echo');
    expect([a.connections, b.connections]).toEqual([0, 1]);
  });

  it('rejects bad specs with E_BAD_TOXIC naming the field, duplicates and unknown names', async () => {
    const echo = await echoServer();
    cleanup.push(() => echo.stop());
    const relay = await relayTo(echo.port);
    expect(() => relay.addToxic({ type: 'latency', latency: 'soon' })).toThrow(
      expect.objectContaining({ code: 'E_BAD_TOXIC', message: expect.stringContaining('toxic.latency') }),
    );
    expect(() => relay.addToxic({ type: 'bandwidth', rate: 10, toxicity: 2 } as never)).toThrow(
      expect.objectContaining({ code: 'E_BAD_TOXIC', where: 'toxic.toxicity' }),
    );
    relay.addToxic({ type: 'latency', latency: 10 });
    expect(() => relay.addToxic({ type: 'latency', latency: 20 })).toThrow(
      expect.objectContaining({ code: 'E_TOXIC_EXISTS' }),
    );
    expect(() => relay.removeToxic('nope')).toThrow(expect.objectContaining({ code: 'E_NO_SUCH_TOXIC' }));
    expect(() => relay.updateToxic('latency_downstream', { type: 'bandwidth' } as never)).toThrow(
      expect.objectContaining({ code: 'E_BAD_TOXIC' }),
    );
    expect(relay.updateToxic('latency_downstream', { latency: '1s' })).toMatchObject({ latency: 1000 });
    await expect(relayTo(echo.port, [{ type: 'slicer', average_size: -1 }])).rejects.toMatchObject({
      code: 'E_BAD_TOXIC',
    });
  });

  it('updates a toxic on live connections', async () => {
    const echo = await echoServer();
    cleanup.push(() => echo.stop());
    const relay = await relayTo(echo.port, [{ type: 'latency', latency: 150, name: 'lag' }]);
    const s = await dial(relay.endpoint.port);
    cleanup.push(() => {
      s.destroy();
    });
    expect(await within(roundTrip(s, Buffer.from('a')), 3000, 'echo')).toBeGreaterThanOrEqual(145);
    relay.updateToxic('lag', { latency: 0 });
    expect(await within(roundTrip(s, Buffer.from('b')), 3000, 'echo')).toBeLessThan(100);
  });

  it('explains toxics in one sentence', () => {
    const parse = (x: unknown) => toxicSpecSchema.parse(x);
    expect(describeToxic(parse({ type: 'latency', latency: 200, jitter: 20 }))).toBe(
      'latency 200ms ±20ms on downstream',
    );
    expect(describeToxic(parse({ type: 'bandwidth', rate: 64, stream: 'upstream', toxicity: 0.5 }))).toBe(
      'bandwidth 64 KB/s on upstream, 50% of connections',
    );
    expect(describeToxic(parse({ type: 'refuse', start: '2s', duration: '5s' }))).toBe(
      'refuse new connections, from 2.00s for 5.00s',
    );
  });

  it('stop() closes every connection with reason stop and is idempotent', async () => {
    const echo = await echoServer();
    cleanup.push(() => echo.stop());
    const relay = await relayTo(echo.port);
    const s = await dial(relay.endpoint.port);
    s.on('error', () => {});
    await within(roundTrip(s, Buffer.from('x')), 3000, 'echo');
    const closed = nextEvent(relay, 'closed', 3000);
    await within(relay.stop(), 3000, 'stop');
    expect((await closed).reason).toBe('stop');
    await relay.stop();
    await expect(dial(relay.endpoint.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(sha256(Buffer.from(''))).toHaveLength(64);
  });
});

describe('backpressure', () => {
  /** Writes into a server that never reads until writes stall; returns the bytes the path absorbed. */
  async function absorbed(toxic: boolean): Promise<number> {
    const { startServer } = await import('./helpers.js');
    const stuck = await startServer((s) => s.pause());
    cleanup.push(() => stuck.stop());
    const relay = await relayTo(stuck.port, toxic ? [{ type: 'latency', latency: 0 }] : []);
    const s = await dial(relay.endpoint.port);
    s.on('error', () => {});
    cleanup.push(() => {
      s.destroy();
    });
    const chunk = Buffer.alloc(256 * 1024, 1);
    let written = 0;
    while (written < 512 * 1024 * 1024) {
      written += chunk.length;
      if (s.write(chunk)) continue;
      const drained = await within(new Promise((r) => s.once('drain', r)), 500, 'drain').then(
        () => true,
        () => false,
      );
      if (!drained) break;
    }
    return written;
  }

  it('stops reading the client when the upstream stops reading (fast path and toxic chain)', async () => {
    // Kernel socket buffers on loopback can hold a few MB each; the relay itself must add little.
    expect(await absorbed(false)).toBeLessThan(64 * 1024 * 1024);
    expect(await absorbed(true)).toBeLessThan(64 * 1024 * 1024);
  });
});
