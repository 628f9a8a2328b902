import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { type SshdHandle, sshClientArgv, start } from '../../simulators/sshd/index.js';
import { missing } from '../helpers/capability.js';

let sshd: SshdHandle | undefined;
afterEach(async () => {
  await sshd?.stop();
  sshd = undefined;
});

function ssh(h: SshdHandle, key: string, command: string) {
  const ep = h.endpoints[0]!;
  const [cmd, ...args] = sshClientArgv(
    { host: ep.host, port: ep.port, key, user: h.user },
    command.split(' '),
  );
  return execa(cmd!, args, { reject: false, timeout: 20_000 });
}

describe.skipIf(missing('cmd:sshd', 'cmd:ssh', 'cmd:ssh-keygen'))('sshd simulator (Debian OpenSSH)', () => {
  it('lets the generated client key in and reports the login; refuses another key', async () => {
    sshd = await start({ name: 'device-sshd' });
    const accepted = new Promise<{ user: string; method: string }>((resolve) =>
      sshd!.events.onceEvent('accepted', resolve),
    );
    const r = await ssh(sshd, sshd.clientKeyPath, 'echo lab-ok');
    expect(r.stdout.trim(), r.stderr).toBe('lab-ok');
    expect(await accepted).toMatchObject({ user: sshd.user, method: 'publickey' });

    const other = mkdtempSync(join(tmpdir(), 'fl-key-'));
    try {
      await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(other, 'k')]);
      const denied = await ssh(sshd, join(other, 'k'), 'echo no');
      expect(denied.exitCode).toBe(255);
      expect(denied.stdout).not.toContain('no');
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('stop() ends sshd and removes its keys', async () => {
    sshd = await start();
    const dir = dirname(sshd.clientKeyPath);
    const pid = sshd.pid;
    await sshd.stop();
    expect(existsSync(dir)).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
    sshd = undefined;
  });
});
