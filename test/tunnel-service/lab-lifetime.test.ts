import { DescribeTunnelCommand, OpenTunnelCommand } from '@aws-sdk/client-iotsecuretunneling';
import { afterEach, describe, expect, it } from 'vitest';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import type { TunnelServiceEvents } from '../../simulators/tunnel-service/index.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { tunnelSdk } from '../helpers/tunnel.js';
import { within } from './helpers.js';

/**
 * A scenario's `lifetimeMinute` (lab time scale): a tunnel opened with `maxLifetimeTimeoutMinutes: 1`, as a
 * user opens it, closes after one lab minute, as a real one closes after a minute.
 */
useTempStateDir('fl-tunnel-lifetime-');
let lab: Lab | undefined;
afterEach(async () => {
  await lab?.stop();
  lab = undefined;
});

const tunnels = (options: Record<string, unknown>) => ({
  name: 'lifetime',
  simulators: [{ name: 'tunnels', type: 'tunnel-service', host: 'tunnels.example.com', options }],
});

describe('tunnel-service lifetimeMinute in a lab', () => {
  it('closes a 1-minute tunnel after one lab minute', { timeout: 30_000 }, async () => {
    lab = await startLab(tunnels({ tls: false, lifetimeMinute: '200ms' }));
    const api = lab.sim('tunnels').endpoints.find((e) => e.name === 'api');
    const sdk = tunnelSdk(`http://${api?.host}:${api?.port}`);
    try {
      const closed = new Promise<TunnelServiceEvents['tunnel-closed']>((resolve) =>
        lab?.sim('tunnels').handle.events.onAny((e) => {
          if (e.type === 'tunnel-closed') resolve(e.data as TunnelServiceEvents['tunnel-closed']);
        }),
      );
      const open = await sdk.send(
        new OpenTunnelCommand({
          destinationConfig: { thingName: 't', services: ['SSH'] },
          timeoutConfig: { maxLifetimeTimeoutMinutes: 1 },
        }),
      );
      expect(await within(closed, 10_000, 'the lifetime to end')).toEqual({
        tunnelId: open.tunnelId,
        reason: 'lifetime',
      });
      const { tunnel } = await sdk.send(new DescribeTunnelCommand({ tunnelId: open.tunnelId }));
      expect(tunnel?.status).toBe('CLOSED');
    } finally {
      sdk.destroy();
    }
  });

  it('names lifetimeMinute when it is longer than a minute', async () => {
    await expect(startLab(tunnels({ lifetimeMinute: '2m' }))).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
      message: expect.stringContaining('lifetimeMinute'),
    });
  });
});
