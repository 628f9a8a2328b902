import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { missing } from '../helpers/capability.js';
import { assertBuilt, BIN, cli, cliBackground } from '../helpers/cli.js';
import { within } from '../helpers/within.js';
import {
  type Baseline,
  baseline,
  cleanUpRun,
  labRecords,
  leftoversSettled,
  NOTHING_LEFT,
  processState,
  until,
  untilGone,
} from './helpers.js';

/**
 * kill -9 of `fieldlab up` on the loopback backend with a real sshd in the lab (scenarios/tunnel-ssh),
 * then `fieldlab clean`: the sshd (root, here) ends with its owner before any clean, and clean removes the
 * lab's directory (keys included) and its address claim.
 */
describe.skipIf(missing('cmd:sshd', 'cmd:ssh-keygen') || process.platform !== 'linux')(
  'kill -9 of `fieldlab up` (loopback), then `fieldlab clean`',
  { timeout: 120_000 },
  () => {
    let tmp: string;
    let state: string;
    let before: Baseline;
    let pid: number | undefined;

    beforeAll(() => assertBuilt());
    beforeEach(() => {
      tmp = mkdtempSync(join(tmpdir(), 'fl-crash-up-'));
      state = join(tmp, 'state');
      before = baseline();
    });
    afterEach(async () => {
      await cleanUpRun({ state, tmp, pid });
      pid = undefined;
    });

    /** `up --json` prints one line once every simulator listens: its lab id and directory. */
    function upInfo(child: ResultPromise): Promise<{ labId: string; dir: string }> {
      return within(
        new Promise((resolve, reject) => {
          let out = '';
          child.stdout?.on('data', (d: Buffer) => {
            out += d.toString();
            const whole = out.split('\n').slice(0, -1); // the last piece may be half a line
            const line = whole.find((l) => l.startsWith('{'));
            if (line) resolve(JSON.parse(line));
          });
          void child.then((r) => reject(new Error(`up ended early: ${r.stderr}`)));
        }),
        60_000,
        'the lab to come up',
      );
    }

    it('its sshd dies with it; clean leaves no lab directory, address claim or process', async () => {
      const child = cliBackground(['up', 'scenarios/tunnel-ssh.yaml', '--json'], {
        FIELDLAB_STATE_DIR: state,
        FORCE_COLOR: '0',
      });
      pid = child.pid;
      const info = await upInfo(child);
      const sshd = labRecords(state)
        .flatMap((r) => r.resources)
        .filter((p) => p.what.startsWith('sshd'))
        .map((p) => p.pid);
      expect(sshd).toHaveLength(1);

      child.kill('SIGKILL');
      expect((await child).signal).toBe('SIGKILL');
      // No handler ran and no clean yet: the sshd went with its owner, the files stayed.
      await untilGone(sshd, 15_000);
      expect(existsSync(info.dir)).toBe(true);

      const r = await cli(['clean'], { env: { FIELDLAB_STATE_DIR: state } });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`removed lab ${info.labId}`);
      expect(await leftoversSettled({ stateDir: state, before, pids: sshd })).toEqual(NOTHING_LEFT);
    });

    it('an owner killed but not reaped by its parent (a zombie) counts as gone', async () => {
      // The parent: a shell that starts `up` in the background, then becomes `sleep`, which never reaps.
      const parent = execa(
        'sh',
        ['-c', `node ${BIN} up scenarios/https-endpoint.yaml --json & exec sleep 300`],
        {
          env: { FIELDLAB_STATE_DIR: state, FORCE_COLOR: '0' },
          reject: false,
        },
      );
      try {
        const info = await upInfo(parent);
        const owner = labRecords(state)[0]?.pid as number;
        pid = owner;
        process.kill(owner, 'SIGKILL');
        await until(() => processState(owner) === 'Z', 15_000, 'the killed owner to be a zombie');

        const r = await cli(['clean'], { env: { FIELDLAB_STATE_DIR: state } });
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toContain(`removed lab ${info.labId}`);
        // This lab only: a live lab of another run (netns namespaces are machine-wide) is rightly left alone.
        expect(r.stdout).not.toContain(`left running lab ${info.labId}`);
        expect(await leftoversSettled({ stateDir: state, before })).toEqual(NOTHING_LEFT);
      } finally {
        parent.kill('SIGKILL');
        await parent;
      }
    });
  },
);
