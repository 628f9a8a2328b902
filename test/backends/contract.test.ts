import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAB_LABEL } from '../../harness/backends/container/clean.js';
import {
  type Backend,
  type BackendName,
  type BackendNetwork,
  backendFor,
  cleanAll,
  startLabOn,
} from '../../harness/backends/index.js';
import type { CommandResult } from '../../harness/clients/command.js';
import type { Lab } from '../../harness/lab/lab.js';
import { labFor } from '../../harness/lab/variant-lab.js';
import { loadYamlScenario } from '../../harness/scenario/load.js';
import { clientHostOf, type Scenario } from '../../harness/scenario/model.js';
import { listRecords } from '../../harness/topology/netns/index.js';
import { ensureImage } from '../container/helpers.js';
import { missing } from '../helpers/capability.js';
import { assertBuilt } from '../helpers/cli.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { within } from '../helpers/within.js';

/**
 * issue 14 (1): every network backend implements one `Backend` interface, and the same tests hold on
 * each: a lab with an HTTPS endpoint starts; curl on the device host reaches it by name; a fault on the
 * endpoint changes the outcome and removing it restores it; the network's own view (observe, explain)
 * answers; stop leaves nothing; after a kill -9 of the lab's owner, `clean` leaves nothing.
 */
const FIXTURE = join(import.meta.dirname, 'fixtures', 'contract.yaml');
const HOLD = join(import.meta.dirname, 'fixtures', 'hold-backend-lab.mjs');
const scenario: Scenario = loadYamlScenario(FIXTURE, readFileSync(FIXTURE, 'utf8'));
const [fixed] = scenario.variants;
if (!fixed) throw new Error(`${FIXTURE} has no variant`);
const clientHost = clientHostOf(scenario);

/** What a lab of a backend leaves on the machine besides its directory, listed while it runs. */
interface Traces {
  /** Network namespaces (netns). */
  namespaces: string[];
  /** Containers and networks labelled with the lab's id (container). */
  docker: string[];
}

function netnsOf(ownerPid: number): string[] {
  return listRecords()
    .filter((r) => r.pid === ownerPid)
    .flatMap((r) => r.namespaces);
}

function dockerOf(labId: string): string[] {
  const list = (args: string[]) =>
    execFileSync('docker', args, { encoding: 'utf8', timeout: 60_000 }).split('\n').filter(Boolean);
  const label = `label=${LAB_LABEL}=${labId}`;
  return [
    ...list(['ps', '-a', '-q', '--filter', label]),
    ...list(['network', 'ls', '-q', '--filter', label]),
  ];
}

function tracesOf(backend: BackendName, labId: string, ownerPid: number): Traces {
  return {
    namespaces: backend === 'netns' ? netnsOf(ownerPid) : [],
    docker: backend === 'container' ? dockerOf(labId) : [],
  };
}

/** Which of `traces` are still on the machine. */
function leftOf(backend: BackendName, labId: string, traces: Traces): Traces {
  const present =
    backend === 'netns'
      ? execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
          .split('\n')
          .map((l) => l.split(' ')[0] ?? '')
      : [];
  return {
    namespaces: traces.namespaces.filter((ns) => present.includes(ns)),
    docker: backend === 'container' ? dockerOf(labId) : [],
  };
}

const CASES: BackendName[] = ['loopback', 'netns', 'container'];

describe.each(CASES)('the %s backend', (name) => {
  const backend: Backend = backendFor(name);
  // The backend says what it needs for this scenario (the program, the namespace, Docker).
  const needs = backend.capabilities(scenario, fixed);
  const stateDir = useTempStateDir(`fl-contract-${name}-`);

  describe.skipIf(missing(...needs))('runs the contract lab', { timeout: 180_000 }, () => {
    let lab: Lab | undefined;
    let network: BackendNetwork;
    let traces: Traces = { namespaces: [], docker: [] };

    /** curl on the client's host, as the scenario gives it (references filled for the client). */
    const curl = (running: Lab): Promise<CommandResult> => {
      const client = scenario.client;
      if (client?.type !== 'command') throw new Error('the fixture has a command client');
      return network.runCommand(running, {
        host: clientHost,
        argv: running.interpolate(client.argv, 'client'),
        env: running.interpolate(client.env, 'client'),
        timeoutMs: 20_000,
        resolve: client.resolve,
      });
    };

    beforeAll(async () => {
      if (name === 'container') await ensureImage();
      const started = await startLabOn(backend, labFor(scenario, fixed), { scenario, variant: fixed });
      lab = started.lab;
      network = started.network;
      traces = tracesOf(name, lab.id, process.pid);
    }, 900_000);
    afterAll(async () => {
      await lab?.stop();
    }, 120_000);

    it('prepares what the backend builds (the lab directory, and namespaces or containers)', () => {
      expect(existsSync(lab?.dir ?? '')).toBe(true);
      if (name === 'netns') expect(traces.namespaces.length).toBeGreaterThanOrEqual(2);
      if (name === 'container') expect(traces.docker.length).toBeGreaterThanOrEqual(2);
    });

    it('a command client on the device host reaches the endpoint by name', async () => {
      const running = lab as Lab;
      const r = await curl(running);
      expect({ exit: r.exitCode, out: r.stdout, err: r.stderr }).toMatchObject({
        exit: 0,
        out: 'contract-ok',
      });
      // The URL it was given names the endpoint's host, not an address.
      expect(running.interpolate('${api.url}', 'client')).toMatch(/^https:\/\/api\.lab\.example:8443\//);
    });

    it('a fault on the endpoint changes the outcome, and removing it restores it', async () => {
      const running = lab as Lab;
      network.applyFault(running, 'api', { type: 'refuse', name: 'cut' });
      await within(running.faultsApplied(), 15_000, 'the fault to be in place');
      const refused = await curl(running);
      // The relay in front of the endpoint refuses (its listener closed): curl 7, could not connect.
      expect({ exit: refused.exitCode, out: refused.stdout }).toEqual({ exit: 7, out: '' });
      network.removeFault(running, 'api', 'cut');
      await within(running.faultsApplied(), 15_000, 'the fault to be removed');
      const back = await curl(running);
      expect({ exit: back.exitCode, out: back.stdout }).toEqual({ exit: 0, out: 'contract-ok' });
    });

    it('observe and explain answer from what the network saw (arrays)', async () => {
      const running = lab as Lab;
      const seen = await network.observe(running, Date.now());
      expect(Array.isArray(seen)).toBe(true);
      const lines = await network.explain(running, {
        clientHost,
        referenced: ['api'],
        events: running.events,
      });
      expect(Array.isArray(lines)).toBe(true);
      for (const l of lines) expect(typeof l).toBe('string');
    });

    it('stop leaves nothing: no directory, namespace or container', async () => {
      const running = lab as Lab;
      await running.stop();
      expect(existsSync(running.dir)).toBe(false);
      expect(leftOf(name, running.id, traces)).toEqual({ namespaces: [], docker: [] });
    });

    it('after a kill -9 of the lab’s owner, clean leaves nothing', async () => {
      assertBuilt();
      const child = execa('node', [HOLD, name], {
        reject: false,
        env: { FIELDLAB_STATE_DIR: stateDir() },
        buffer: false,
      });
      const up = await within(
        new Promise<{ id: string; dir: string }>((resolve, reject) => {
          let out = '';
          child.stdout?.on('data', (d: Buffer) => {
            out += d.toString();
            const m = /^up (\S+) (\S+)$/m.exec(out);
            if (m?.[1] && m[2]) resolve({ id: m[1], dir: m[2] });
          });
          child.stderr?.on('data', (d: Buffer) => process.stderr.write(d));
          void child.then((r) =>
            reject(new Error(`the lab holder exited (${r.exitCode}) before its lab was up`)),
          );
        }),
        120_000,
        'the lab holder to start its lab',
      );
      const pid = child.pid as number;
      const held = tracesOf(name, up.id, pid);
      if (name === 'netns') expect(held.namespaces.length).toBeGreaterThanOrEqual(2);
      if (name === 'container') expect(held.docker.length).toBeGreaterThanOrEqual(2);
      expect(existsSync(up.dir)).toBe(true);
      child.kill('SIGKILL');
      await within(child, 15_000, 'the killed holder to exit');

      // What `fieldlab clean` does: every backend removes what dead labs left.
      const report = cleanAll({ force: false });
      expect(report.removed.join('\n')).toContain(up.id);
      expect(existsSync(up.dir)).toBe(false);
      expect(leftOf(name, up.id, held)).toEqual({ namespaces: [], docker: [] });
    });
  });
});
