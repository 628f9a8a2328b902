import {
  CloseTunnelCommand,
  DescribeTunnelCommand,
  ListTunnelsCommand,
  OpenTunnelCommand,
  ResourceNotFoundException,
  RotateTunnelAccessTokenCommand,
} from '@aws-sdk/client-iotsecuretunneling';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { TunnelServiceEvents } from '../../simulators/tunnel-service/index.js';
import { CLOSED_TUNNEL_RETENTION_MS, MessageType as T } from '../../simulators/tunnel-service/index.js';
import {
  CLIENT_TOKEN_A,
  connect,
  connectPair,
  type Lab,
  ManualClock,
  openTunnel,
  refusal,
  startLab,
  stopLab,
} from './helpers.js';

/**
 * Tunnel lifecycle as the AWS IoT developer guide ("Secure tunnel lifecycle") documents it: an open
 * tunnel past its MaxLifetimeTimeout closes; a closed tunnel stays visible to DescribeTunnel/ListTunnels
 * for three hours, then is deleted. The simulator's own state (registry, token map) stays bounded.
 */

let lab: Lab | undefined;
afterEach(async () => {
  await stopLab(lab);
  lab = undefined;
});

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

function rejections(l: Lab): Array<TunnelServiceEvents['token-rejected']['reason']> {
  const seen: Array<TunnelServiceEvents['token-rejected']['reason']> = [];
  l.svc.events.onEvent('token-rejected', (e) => seen.push(e.reason));
  return seen;
}

async function status(l: Lab, tunnelId: string): Promise<string | undefined> {
  try {
    return (await l.sdk.send(new DescribeTunnelCommand({ tunnelId }))).tunnel?.status;
  } catch (err) {
    if (err instanceof ResourceNotFoundException) return 'not found';
    throw err;
  }
}

describe('tunnel-service lifecycle', () => {
  it('closes a tunnel past its own timeoutConfig.maxLifetimeTimeoutMinutes, sockets and all', async () => {
    const clock = new ManualClock();
    lab = await startLab({ clock });
    const short = await lab.sdk.send(
      new OpenTunnelCommand({
        destinationConfig: { thingName: 't', services: ['SSH'] },
        timeoutConfig: { maxLifetimeTimeoutMinutes: 2 },
      }),
    );
    const long = await openTunnel(lab);
    const closed: Array<TunnelServiceEvents['tunnel-closed']> = [];
    lab.svc.events.onEvent('tunnel-closed', (e) => closed.push(e));
    const tokens = {
      source: short.sourceAccessToken as string,
      destination: short.destinationAccessToken as string,
    };
    const { src, dst } = await connectPair(lab, tokens);

    clock.advance(2 * MINUTE - 1);
    expect(closed).toEqual([]);
    clock.advance(1);
    expect(closed).toEqual([{ tunnelId: short.tunnelId, reason: 'lifetime' }]);
    const [a, b] = await Promise.all([src.whenClosed(), dst.whenClosed()]);
    expect([a.code, b.code]).toEqual([1000, 1000]);
    expect(a.reason).toBe('tunnel max lifetime reached');
    expect(await status(lab, short.tunnelId as string)).toBe('CLOSED');
    // The default lifetime (720 minutes) still runs for the other tunnel.
    expect(await status(lab, long.tunnelId)).toBe('OPEN');

    // A later connect gets the closed-tunnel refusal, with either side's token.
    const seen = rejections(lab);
    expect(
      await refusal(connect(lab, { mode: 'source', token: tokens.source, clientToken: CLIENT_TOKEN_A })),
    ).toBe(403);
    expect(await refusal(connect(lab, { mode: 'destination', token: tokens.destination }))).toBe(403);
    expect(seen).toEqual(['closed', 'closed']);

    clock.advance(720 * MINUTE);
    expect(closed.map((e) => e.tunnelId)).toEqual([short.tunnelId, long.tunnelId]);
  });

  it('lifetimeMinuteMs (a lab time scale) shortens each minute of maxLifetimeTimeoutMinutes', async () => {
    const clock = new ManualClock();
    lab = await startLab({ clock, lifetimeMinuteMs: 1000 });
    const open = await lab.sdk.send(
      new OpenTunnelCommand({
        destinationConfig: { thingName: 't', services: ['SSH'] },
        timeoutConfig: { maxLifetimeTimeoutMinutes: 3 },
      }),
    );
    const closed: Array<TunnelServiceEvents['tunnel-closed']> = [];
    lab.svc.events.onEvent('tunnel-closed', (e) => closed.push(e));
    clock.advance(3 * 1000 - 1);
    expect(closed).toEqual([]);
    clock.advance(1);
    expect(closed).toEqual([{ tunnelId: open.tunnelId, reason: 'lifetime' }]);
    // DescribeTunnel still shows the minutes the tunnel was opened with.
    const { tunnel } = await lab.sdk.send(new DescribeTunnelCommand({ tunnelId: open.tunnelId }));
    expect(tunnel?.timeoutConfig?.maxLifetimeTimeoutMinutes).toBe(3);
  });

  it('refuses a lab minute longer than a minute', async () => {
    await expect(startLab({ lifetimeMinuteMs: 2 * MINUTE })).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
      message: expect.stringContaining('lifetimeMinuteMs'),
    });
  });

  it('releases the tokens of a closed tunnel at once and forgets it after three hours', async () => {
    const clock = new ManualClock();
    lab = await startLab({ clock });
    expect(CLOSED_TUNNEL_RETENTION_MS).toBe(3 * HOUR);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const t = await openTunnel(lab);
      ids.push(t.tunnelId);
      await lab.sdk.send(new CloseTunnelCommand({ tunnelId: t.tunnelId }));
    }
    const last = await openTunnel(lab);
    expect(lab.svc.stats()).toMatchObject({
      tunnelsOpen: 1,
      tunnelsClosed: 20,
      registrySize: 21,
      tokenMapSize: 2,
    });

    clock.advance(3 * HOUR - 1);
    expect(await status(lab, ids[0] as string)).toBe('CLOSED');
    clock.advance(1);
    expect(await status(lab, ids[0] as string)).toBe('not found');
    const listed = await lab.sdk.send(new ListTunnelsCommand({}));
    expect(listed.tunnelSummaries?.map((s) => s.tunnelId)).toEqual([last.tunnelId]);
    expect(lab.svc.stats()).toMatchObject({ tunnelsClosed: 20, registrySize: 1, tokenMapSize: 2 });
  });

  it('forgets closed tunnels in closing order, each after its own retention', async () => {
    const clock = new ManualClock();
    lab = await startLab({ clock, closedTunnelRetentionMs: HOUR });
    const a = await openTunnel(lab);
    const b = await openTunnel(lab);
    await lab.sdk.send(new CloseTunnelCommand({ tunnelId: a.tunnelId }));
    clock.advance(30 * MINUTE);
    await lab.sdk.send(new CloseTunnelCommand({ tunnelId: b.tunnelId }));
    const seen = rejections(lab);

    clock.advance(30 * MINUTE);
    expect(await status(lab, a.tunnelId)).toBe('not found');
    expect(await status(lab, b.tunnelId)).toBe('CLOSED');
    // A forgotten tunnel's token is unknown; a retained closed one's is refused as closed.
    expect(await refusal(connect(lab, { mode: 'source', token: a.source }))).toBe(403);
    expect(await refusal(connect(lab, { mode: 'source', token: b.source }))).toBe(403);
    expect(seen).toEqual(['unknown', 'closed']);

    clock.advance(30 * MINUTE);
    expect(await status(lab, b.tunnelId)).toBe('not found');
    expect(lab.svc.stats()).toMatchObject({ registrySize: 0, tokenMapSize: 0 });
  });

  it('keeps nothing of a tunnel closed with delete: true (tokens, rotations, relay state, peers)', async () => {
    const clock = new ManualClock();
    lab = await startLab({ clock });
    for (let i = 0; i < 5; i++) {
      const t = await openTunnel(lab);
      const rotated = await lab.sdk.send(
        new RotateTunnelAccessTokenCommand({ tunnelId: t.tunnelId, clientMode: 'ALL' }),
      );
      const { src, dst } = await connectPair(lab, {
        source: rotated.sourceAccessToken as string,
        destination: rotated.destinationAccessToken as string,
      });
      src.send({ type: T.STREAM_START, streamId: 1, serviceId: 'SSH' });
      expect((await dst.next()).type).toBe(T.STREAM_START);
      await lab.sdk.send(new CloseTunnelCommand({ tunnelId: t.tunnelId, delete: true }));
      await Promise.all([src.whenClosed(), dst.whenClosed()]);
      expect(await status(lab, t.tunnelId)).toBe('not found');
      // The pre-rotation token of a deleted tunnel is as unknown as one never issued.
      const seen = rejections(lab);
      expect(await refusal(connect(lab, { mode: 'source', token: t.source }))).toBe(403);
      expect(seen).toEqual(['unknown']);
    }
    await vi.waitFor(() => expect(lab?.svc.stats().peers).toBe(0), { timeout: 3000 });
    expect(lab.svc.stats()).toMatchObject({
      tunnelsOpen: 0,
      tunnelsClosed: 5,
      registrySize: 0,
      tokenMapSize: 0,
      peers: 0,
    });
    // Nothing left to time: no lifetime timers, no retention sweep.
    expect(clock.pending).toBe(0);
  });

  it('stop() cancels every lifetime and retention timer', async () => {
    const clock = new ManualClock();
    const l = await startLab({ clock });
    const a = await openTunnel(l);
    await openTunnel(l);
    await l.sdk.send(new CloseTunnelCommand({ tunnelId: a.tunnelId }));
    // One lifetime timer for the open tunnel, one sweep for the closed one.
    expect(clock.pending).toBe(2);
    await stopLab(l);
    expect(clock.pending).toBe(0);
  });

  it('refuses a retention or lifetime past what a timer can hold', async () => {
    await expect(startLab({ closedTunnelRetentionMs: 2 ** 31 })).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
    });
    await expect(startLab({ maxLifetimeMs: 2 ** 31 })).rejects.toMatchObject({ code: 'E_BAD_OPTION' });
  });
});
