import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { OWNER_LABEL } from '../../harness/backends/container/clean.js';
import { runAll } from '../../harness/runner/run.js';
import { loadScenarios } from '../../harness/scenario/load.js';
import { missing } from '../helpers/capability.js';
import { hasLoad } from '../helpers/catalogue-run.js';
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

  // Every scenario that declares container (issue 14.6: all that run on loopback but those the README
  // lists as loopback/netns only). Three labs at once: a lab's time is mostly Docker starting and stopping
  // its containers (each lab has its own network and addresses), which overlaps well.
  it('the catalogue behaves as expected in containers', {
    timeout: 2_400_000,
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
        // Peers in one container (a DPS and its hub; the tunnel service and its notify broker).
        'azure-tls-inspection',
        'iot-edge-proxy',
        'tunnel-notify',
        // A load from this process dialling a container's address; JITP across two regions' containers.
        'tunnel-throughput',
        'jitp-mosquitto',
        'amqp-port-blocked',
      ]),
    );
    // Variants that name their own backends without container (a netns firewall) are skipped.
    const elsewhere = new Set(
      capable.flatMap((l) =>
        l.scenario.variants
          .filter((v) => v.backends && !v.backends.includes('container'))
          .map((v) => `${l.scenario.name}/${v.name}`),
      ),
    );
    // Scenarios with a load (its thresholds measure the machine) afterwards, with no other lab beside them.
    const opts = { backend: 'container', image: IMAGE } as const;
    const results = [
      ...(
        await runAll(
          capable.filter((l) => !hasLoad(l)),
          { ...opts, concurrency: 3 },
        )
      ).results,
      ...(await runAll(capable.filter(hasLoad), { ...opts, concurrency: 2 })).results,
    ];
    const skipped = results.filter((r) => r.status === 'skipped').map((r) => `${r.scenario}/${r.variant}`);
    expect(skipped.filter((v) => !elsewhere.has(v))).toEqual([]);
    // Every other variant passed: all that did not are listed at once, with what the report said.
    const failed = results
      .filter((r) => r.status !== 'passed' && r.status !== 'skipped')
      .map((r) => `${r.scenario}/${r.variant}: ${[...r.explanation, r.error?.message ?? ''].join(' | ')}`);
    expect(failed).toEqual([]);
    expectAllPassed(results, { allowSkipped: true });
    // A toxic reached the relay inside the hub's container.
    const blackholed = results.find(
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
