import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type RelayHandle, startRelay } from '../../harness/faults/index.js';
import { dial, HOST, nextEvent, readAll, sha256, startServer, within } from './helpers.js';

// The server → client direction: the relay reads the socket it opened to the upstream through a reused
// buffer, so these check that no chunk is overwritten while a write or a toxic still holds it.

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup = [];
});

async function relayTo(port: number): Promise<RelayHandle> {
  const r = await startRelay({ name: 'r', listen: { host: HOST, port: 0 }, upstream: { host: HOST, port } });
  cleanup.push(() => r.stop());
  return r;
}

/**
 * A server that sends `payload` in `size` writes (calling `progress` after each), then half-closes.
 * Small writes, each in its own turn, make the relay's reads small too.
 */
async function sender(payload: Buffer, progress: (sent: number) => void = () => {}, size = 64 * 1024) {
  const server = await startServer((s: Socket) => {
    s.resume();
    void (async () => {
      for (let sent = 0; sent < payload.length && !s.destroyed; ) {
        const ok = s.write(payload.subarray(sent, sent + size));
        sent += size;
        progress(sent);
        if (!ok) await within(new Promise((r) => s.once('drain', r)), 10_000, 'server drain');
        else if (size < 64 * 1024) await new Promise((r) => setImmediate(r));
      }
      s.end();
    })().catch(() => s.destroy());
  });
  cleanup.push(() => server.stop());
  return server;
}

describe('relay, server to client', () => {
  it('relays 8 MB intact with no toxics to a slow reader, and counts bytes', async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    const relay = await relayTo((await sender(payload, undefined, 4096)).port);
    const s = await dial(relay.endpoint.port);
    cleanup.push(() => {
      s.destroy();
    });
    const closed = nextEvent(relay, 'closed', 30_000);
    // Read a little at a time, so the relay's writes to the client back up and stay queued on it.
    const parts: Buffer[] = [];
    const ended = new Promise((r) => s.once('end', r));
    const timer = setInterval(() => {
      const c = s.read(Math.min(8 * 1024, s.readableLength)) as Buffer | null;
      if (c) parts.push(c);
    }, 1);
    cleanup.push(() => clearInterval(timer));
    s.end();
    await within(ended, 30_000, 'end of the download');
    clearInterval(timer);
    const data = Buffer.concat(parts);
    expect(data.length).toBe(payload.length);
    expect(sha256(data)).toBe(sha256(payload));
    expect(await closed).toMatchObject({ bytesDown: payload.length });
    expect(relay.stats()).toMatchObject({ bytesDown: payload.length });
  });

  it('loses no byte when toxics are added to and removed from a running download (checksum)', async () => {
    const payload = randomBytes(12 * 1024 * 1024);
    const chunk = 64 * 1024;
    let relay: RelayHandle | undefined;
    const server = await sender(payload, (sent) => {
      if (sent === 4 * chunk)
        relay?.addToxic({ type: 'latency', latency: 40, stream: 'downstream', name: 'lag' });
      if (sent === 8 * chunk)
        relay?.addToxic({ type: 'bandwidth', rate: 16 * 1024, stream: 'downstream', name: 'bw' });
      if (sent === 32 * chunk) relay?.removeToxic('lag');
      if (sent === 96 * chunk) relay?.removeToxic('bw');
    });
    relay = await relayTo(server.port);
    const s = await dial(relay.endpoint.port);
    cleanup.push(() => {
      s.destroy();
    });
    const got = readAll(s);
    s.end();
    const { data } = await within(got, 20_000, 'download');
    expect(data.length).toBe(payload.length);
    expect(sha256(data)).toBe(sha256(payload));
    expect(relay.toxics()).toEqual([]);
  });

  it('stops reading the upstream when the client stops reading', async () => {
    let sentWhenStalled = 0;
    const stalled = new Promise<void>((resolve) => {
      void startServer((s: Socket) => {
        const block = Buffer.alloc(256 * 1024, 2);
        const pump = () => {
          while (sentWhenStalled < 512 * 1024 * 1024) {
            sentWhenStalled += block.length;
            if (!s.write(block)) {
              // Stalled when no drain comes for a while: the relay stopped reading.
              const t = setTimeout(() => resolve(), 500);
              s.once('drain', () => {
                clearTimeout(t);
                pump();
              });
              return;
            }
          }
          resolve();
        };
        pump();
      }).then((server) => {
        cleanup.push(() => server.stop());
        void relayTo(server.port).then(async (relay) => {
          const c = await dial(relay.endpoint.port);
          c.pause();
          cleanup.push(() => {
            c.destroy();
          });
        });
      });
    });
    await within(stalled, 60_000, 'the server stalls');
    // Kernel socket buffers on loopback can hold a few MB each; the relay itself must add little.
    expect(sentWhenStalled).toBeLessThan(64 * 1024 * 1024);
  });
});
