import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { isRunning } from '../../harness/topology/netns/teardown.js';
import { type SshdHandle, sshClientArgv, start } from '../../simulators/sshd/index.js';
import { untilGone } from '../crash/helpers.js';
import { missing } from '../helpers/capability.js';
import { assertBuilt } from '../helpers/cli.js';
import { within } from '../helpers/within.js';

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

describe.skipIf(missing('cmd:sshd', 'cmd:ssh-keygen') || process.platform !== 'linux')(
  'sshd dies with its owner',
  () => {
    it('a SIGKILLed owner takes its sshd with it, without `fieldlab clean`', {
      timeout: 60_000,
    }, async () => {
      assertBuilt();
      const dir = mkdtempSync(join(tmpdir(), 'fl-sshd-owner-'));
      // The owner: a plain Node process (the built simulator) that starts sshd and prints its PID.
      const owner = execa(
        'node',
        [
          '--input-type=module',
          '-e',
          [
            `const { start } = await import(${JSON.stringify(join(process.cwd(), 'dist/simulators/sshd/index.js'))});`,
            `const h = await start({ dir: ${JSON.stringify(dir)} });`,
            'process.stdout.write(`sshd ${h.pid}\\n`);',
            'setInterval(() => {}, 1000);',
          ].join('\n'),
        ],
        { reject: false },
      );
      let sshdPid = 0;
      try {
        sshdPid = await within(
          new Promise<number>((resolve, reject) => {
            let out = '';
            owner.stdout?.on('data', (d: Buffer) => {
              out += d.toString();
              const m = /^sshd (\d+)$/m.exec(out);
              if (m) resolve(Number(m[1]));
            });
            void owner.then((r) => reject(new Error(`owner exited early: ${r.stderr}`)));
          }),
          30_000,
          'the owner to start sshd',
        );
        expect(isRunning(sshdPid)).toBe(true);
        owner.kill('SIGKILL');
        await owner;
        // No clean, no handler: the kernel's parent-death signal ends it.
        await untilGone([sshdPid], 10_000);
      } finally {
        if (sshdPid > 0 && isRunning(sshdPid)) process.kill(sshdPid, 'SIGKILL');
        owner.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);
