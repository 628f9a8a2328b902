import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { type SshdHandle, sshClientArgv, start as startSshd } from '../../simulators/sshd/index.js';
import { missing } from '../helpers/capability.js';
import { Cleanup, openTunnel, proxy, startService } from './helpers.js';

const c = new Cleanup();
afterEach(() => c.run());

describe.skipIf(missing('cmd:sshd', 'cmd:ssh', 'cmd:ssh-keygen'))(
  'localproxy carries a real ssh session',
  () => {
    it('ssh through source localproxy → tunnel service → destination localproxy → sshd', async () => {
      const sshd: SshdHandle = await startSshd({ name: 'device-sshd' });
      c.add(() => sshd.stop());
      const s = await startService(c);
      const t = await openTunnel(s, ['SSH']);
      const endpoint = `ws://${s.data}`;
      const device = sshd.endpoints[0]!;
      await proxy(c, {
        mode: 'destination',
        accessToken: t.destination,
        endpoint,
        destinationApp: `SSH=${device.host}:${device.port}`,
      });
      const src = await proxy(c, {
        mode: 'source',
        accessToken: t.source,
        endpoint,
        sourceListenPort: 'SSH=0',
      });
      const port = src.listeners[0]?.port as number;
      const [cmd, ...args] = sshClientArgv(
        { host: '127.0.0.1', port, key: sshd.clientKeyPath, user: sshd.user },
        ['echo', 'tunnel-ok'],
      );
      const r = await execa(cmd!, args, { reject: false, timeout: 20_000 });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('tunnel-ok');
      expect(r.exitCode).toBe(0);
      expect(src.stats().tcpConnections).toBe(1);
    });
  },
);
