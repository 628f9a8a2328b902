import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { missing } from '../helpers/capability.js';
import { Cleanup, openTunnel, proxy, startService, within } from './helpers.js';

const c = new Cleanup();
afterEach(() => c.run());

// sshd needs its privilege separation directory (/run/sshd); where it is missing, sshd runs in a private
// mount namespace with a tmpfs on /run, so the host is left untouched.
const needsNamespace = !existsSync('/run/sshd');

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A throwaway sshd on 127.0.0.1 accepting one key for root; killed by PID at teardown. */
async function startSshd(): Promise<{ port: number; key: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'fieldlab-sshd-'));
  c.add(() => rm(dir, { recursive: true, force: true }));
  const keygen = (f: string) => execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, f)]);
  await Promise.all([keygen('host'), keygen('user')]);
  await execa('cp', [join(dir, 'user.pub'), join(dir, 'authorized_keys')]);
  const cfg = join(dir, 'sshd_config');
  await writeFile(
    cfg,
    [
      'ListenAddress 127.0.0.1',
      `HostKey ${join(dir, 'host')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const sshd = ['/usr/sbin/sshd', '-D', '-e', '-f', cfg, '-p', String(port)];
  // `unshare` without --fork and `exec` keep one PID: the child's PID is sshd's.
  const child = needsNamespace
    ? execa(
        'unshare',
        [
          '--mount',
          '--propagation',
          'private',
          'sh',
          '-c',
          'mount -t tmpfs none /run && mkdir -m 755 /run/sshd && exec "$@"',
          'sh',
          ...sshd,
        ],
        { reject: false, buffer: false },
      )
    : execa(sshd[0] as string, sshd.slice(1), { reject: false, buffer: false });
  c.add(async () => {
    if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, 'SIGTERM');
    await within(child, 5000, 'sshd to exit').catch(() => {});
  });
  let log = '';
  await within(
    new Promise<void>((resolve, reject) => {
      child.stderr?.on('data', (b: Buffer) => {
        log += b.toString();
        if (log.includes('Server listening on 127.0.0.1')) resolve();
      });
      void child.then(() => reject(new Error(`sshd exited: ${log}`)));
    }),
    5000,
    'sshd to listen',
  );
  return { port, key: join(dir, 'user') };
}

describe.skipIf(
  missing(
    'cmd:sshd',
    'cmd:ssh',
    'cmd:ssh-keygen',
    'root',
    ...(needsNamespace ? (['cmd:unshare'] as const) : []),
  ),
)('localproxy carries a real ssh session', () => {
  it('ssh through source localproxy → tunnel service → destination localproxy → sshd', async () => {
    const sshd = await startSshd();
    const s = await startService(c);
    const t = await openTunnel(s, ['SSH']);
    const endpoint = `ws://${s.data}`;
    await proxy(c, {
      mode: 'destination',
      accessToken: t.destination,
      endpoint,
      destinationApp: `SSH=127.0.0.1:${sshd.port}`,
    });
    const src = await proxy(c, {
      mode: 'source',
      accessToken: t.source,
      endpoint,
      sourceListenPort: 'SSH=0',
    });
    const port = src.listeners[0]?.port as number;
    const r = await execa(
      'ssh',
      [
        '-p',
        String(port),
        '-i',
        sshd.key,
        '-o',
        'StrictHostKeyChecking=no',
        '-o',
        'UserKnownHostsFile=/dev/null',
        '-o',
        'BatchMode=yes',
        '-o',
        'LogLevel=ERROR',
        'root@127.0.0.1',
        'echo tunnel-ok',
      ],
      { reject: false, timeout: 10_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('tunnel-ok');
    expect(r.exitCode).toBe(0);
    expect(src.stats().tcpConnections).toBe(1);
  });
});
