import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { OWNER_LABEL } from '../../harness/backends/container/clean.js';
import { runAll } from '../../harness/runner/run.js';
import { loadScenarios } from '../../harness/scenario/load.js';
import { missing } from '../helpers/capability.js';
import { cli } from '../helpers/cli.js';
import { expectAllPassed } from '../helpers/results.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { ensureImage, IMAGE, labelled } from './helpers.js';

/**
 * `fieldlab run --backend container`: every simulator in its own container of the fieldlab image
 * (testcontainers, no Ryuk), the client in another on the lab's network; faults reach the relays in the
 * containers. Afterwards nothing of the lab is left; after a SIGKILL, `fieldlab clean` removes it.
 */
const stateDir = useTempStateDir('fl-cat-container-');

describe.skipIf(missing('docker'))('scenario catalogue on the container backend', () => {
  beforeAll(ensureImage, 900_000);

  it('the proxy, TLS inspection, MQTT and tunnel scenarios behave as expected', {
    timeout: 600_000,
  }, async () => {
    const { loaded, errors } = await loadScenarios(['scenarios']);
    expect(errors).toEqual([]);
    const capable = loaded.filter((l) => l.scenario.backends.includes('container'));
    expect(capable.map((l) => l.scenario.name)).toEqual(
      expect.arrayContaining([
        'proxy-auth',
        'proxy-port-policy',
        'tls-inspection-untrusted-root',
        'mqtt-port-blocked',
        'tunnel-ssh',
      ]),
    );
    const run = await runAll(capable, { backend: 'container', image: IMAGE, concurrency: 2 });
    expectAllPassed(run.results);
    // A toxic reached the relay inside the hub's container.
    const blackholed = run.results.find(
      (r) => r.scenario === 'mqtt-port-blocked' && r.variant === 'broken-blackholed',
    );
    expect(blackholed?.events.some((e) => e.type === 'toxic-applied')).toBe(true);
    expect(labelled(`${OWNER_LABEL}=${process.pid}`)).toEqual({ containers: '', networks: '' });
  });

  it('after its owner is SIGKILLed, `fieldlab clean` removes the lab’s containers and network', {
    timeout: 120_000,
  }, async () => {
    const child = execa('node', [join(import.meta.dirname, 'fixtures', 'hold-lab.mjs')], {
      env: { FIELDLAB_IMAGE: IMAGE, FIELDLAB_STATE_DIR: stateDir() },
      reject: false,
    });
    const owner = `${OWNER_LABEL}=${child.pid}`;
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('the lab did not come up in 60 s')), 60_000);
      child.stdout?.on('data', (d: Buffer) => {
        if (d.toString().startsWith('up ')) {
          clearTimeout(t);
          resolve();
        }
      });
    });
    expect(labelled(owner).containers).not.toBe('');
    child.kill('SIGKILL');
    await child;
    const r = await cli(['clean'], { env: { FIELDLAB_STATE_DIR: stateDir() } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/removed containers .+/);
    expect(r.stdout).toMatch(/removed networks fl-hold-/);
    expect(labelled(owner)).toEqual({ containers: '', networks: '' });
  });
});
