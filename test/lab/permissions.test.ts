import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import { missing } from '../helpers/capability.js';

/**
 * issue 12 (3): a lab's files hold private keys (its CA's, its servers'): keys 0600 in 0700 directories,
 * in a state directory no other local user can change, on every backend. The loopback (and netns, which
 * starts its lab the same way) side; test/container/security.test.ts has the container side.
 */
let parent = '';
let state = '';
const labs: Lab[] = [];
beforeEach(() => {
  // A parent other users may enter (as a home directory); the state directory the lab makes itself.
  parent = mkdtempSync(join(tmpdir(), 'fl-perm-'));
  chmodSync(parent, 0o755);
  state = join(parent, 'state');
  process.env.FIELDLAB_STATE_DIR = state;
});
afterEach(async () => {
  await Promise.all(labs.splice(0).map((l) => l.stop()));
  delete process.env.FIELDLAB_STATE_DIR;
  rmSync(parent, { recursive: true, force: true });
});

const mode = (p: string) => statSync(p).mode & 0o777;

async function start(): Promise<Lab> {
  const lab = await startLab({
    name: 'perm',
    simulators: [{ name: 'api', type: 'https-server', host: 'api.iot.example.com', port: 0 }],
  });
  labs.push(lab);
  // A client certificate too: its key is written beside the server's.
  await lab.pki.issueClient('device-1');
  return lab;
}

function walk(dir: string): Array<{ path: string; dir: boolean }> {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    return e.isDirectory() ? [{ path, dir: true }, ...walk(path)] : [{ path, dir: false }];
  });
}

describe('lab files on the loopback backend', () => {
  it('are private keys 0600 in 0700 directories, in a state directory only this user can change', async () => {
    const lab = await start();
    expect(mode(state) & 0o022).toBe(0);
    expect(mode(join(state, 'labs'))).toBe(0o700);
    expect(mode(lab.dir)).toBe(0o700);
    const entries = walk(lab.dir);
    const keys = entries.filter((e) => !e.dir && /PRIVATE KEY/.test(readFileSync(e.path, 'utf8')));
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) expect([k.path, mode(k.path)]).toEqual([k.path, 0o600]);
    // The PKI's own directory (where the keys are) is 0700.
    expect(mode(lab.pki.dir)).toBe(0o700);
  });

  it.skipIf(missing('root'))(
    'another local user cannot read a key, even with the directories above open',
    async () => {
      const lab = await start();
      chmodSync(state, 0o755);
      chmodSync(join(state, 'labs'), 0o755);
      const key = walk(lab.dir).find((e) => !e.dir && /PRIVATE KEY/.test(readFileSync(e.path, 'utf8')));
      expect(key).toBeDefined();
      const r = await execa(
        'setpriv',
        ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'cat', key!.path],
        {
          reject: false,
          timeout: 10_000,
        },
      );
      expect(r.exitCode).not.toBe(0);
      expect(r.stdout).not.toMatch(/PRIVATE KEY/);
    },
  );

  it('refuses a state directory other users can write to, naming it and the fix', async () => {
    mkdirSync(state, { mode: 0o700 });
    chmodSync(state, 0o777);
    await expect(start()).rejects.toMatchObject({
      code: 'E_STATE_DIR_UNSAFE',
      message: expect.stringContaining(state),
      hint: expect.stringContaining('FIELDLAB_STATE_DIR'),
    });
  });

  it.skipIf(missing('root'))(
    'refuses a state directory another user made first (as in a shared /tmp)',
    async () => {
      mkdirSync(state, { mode: 0o700 });
      chownSync(state, 65534, 65534);
      await expect(start()).rejects.toMatchObject({
        code: 'E_STATE_DIR_UNSAFE',
        message: expect.stringMatching(/owned by uid 65534/),
      });
    },
  );

  it('closes an open labs directory of its own before putting a lab in it', async () => {
    mkdirSync(join(state, 'labs'), { recursive: true, mode: 0o700 });
    chmodSync(join(state, 'labs'), 0o755);
    await start();
    expect(mode(join(state, 'labs'))).toBe(0o700);
  });
});
