import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ensureImage, IMAGE } from '../container/helpers.js';
import { missing } from '../helpers/capability.js';
import { assertBuilt, cli, cliBackground } from '../helpers/cli.js';
import { within } from '../helpers/within.js';
import { type Baseline, baseline, cleanUpRun, dockerOf, leftoversSettled, NOTHING_LEFT } from './helpers.js';

/**
 * kill -9 of `fieldlab run --backend container` while its client container runs (scenarios/tunnel-ssh:
 * four simulator containers with a real sshd, a lab network, the client in a container of its own), then
 * `fieldlab clean`: no container, network, process or state entry of the run is left.
 */
describe.skipIf(missing('docker', 'cmd:sshd') || process.platform !== 'linux')(
  'kill -9 of a container run, then `fieldlab clean`',
  { timeout: 300_000 },
  () => {
    let tmp: string;
    let state: string;
    let before: Baseline;
    let pid: number | undefined;

    beforeAll(async () => {
      assertBuilt();
      await ensureImage();
    }, 900_000);
    beforeEach(() => {
      tmp = mkdtempSync(join(tmpdir(), 'fl-crash-container-'));
      state = join(tmp, 'state');
      before = baseline();
    });
    afterEach(async () => {
      await cleanUpRun({ state, tmp, pid });
      pid = undefined;
    });

    it('while the client container runs', async () => {
      const since = String(Math.floor(Date.now() / 1000) - 1);
      const child = cliBackground(
        [
          'run',
          'scenarios/tunnel-ssh.yaml',
          '-b',
          'container',
          '--image',
          IMAGE,
          '--only',
          'tunnel-ssh/fixed',
        ],
        { FIELDLAB_STATE_DIR: state, FORCE_COLOR: '0' },
      );
      pid = child.pid as number;
      // Docker reports each start of a container the run labelled with its PID; the client's is named
      // fl-client-*. Events since before the run started, so none is missed.
      const events = spawn('docker', [
        'events',
        '--since',
        since,
        '--filter',
        `label=dev.fieldlab.owner=${pid}`,
        '--filter',
        'type=container',
        '--filter',
        'event=start',
        '--format',
        '{{.Actor.Attributes.name}}',
      ]);
      try {
        await within(
          new Promise<void>((resolve, reject) => {
            let out = '';
            events.stdout.on('data', (d: Buffer) => {
              out += d.toString();
              if (/^fl-client-/m.test(out)) resolve();
            });
            void child.then((r) => reject(new Error(`the run ended early: ${r.stderr}`)));
          }),
          180_000,
          'the client container to start',
        );
      } finally {
        events.kill('SIGTERM');
      }
      child.kill('SIGKILL');
      expect((await child).signal).toBe('SIGKILL');
      const left = dockerOf(pid);
      expect(left.containers.length).toBeGreaterThan(1); // simulators and the client
      expect(left.networks).toHaveLength(1);

      const r = await cli(['clean'], { env: { FIELDLAB_STATE_DIR: state } });
      expect(r.code, r.stderr).toBe(0);
      // The simulators' containers at least: the client's (`--rm`) may have ended on its own meanwhile;
      // either way none may be left (below).
      expect(r.stdout).toMatch(/removed containers /);
      expect(r.stdout).toContain(`removed networks ${left.networks[0]}`);
      expect(await leftoversSettled({ stateDir: state, before, dockerOwner: pid })).toEqual(NOTHING_LEFT);
    });
  },
);
