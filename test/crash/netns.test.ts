import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResultPromise } from 'execa';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { NetnsRecord } from '../../harness/topology/netns/state.js';
import { missing } from '../helpers/capability.js';
import { assertBuilt, cli, cliBackground } from '../helpers/cli.js';
import { namespacesOf } from '../netns/helpers.js';
import {
  type Baseline,
  baseline,
  cleanUpRun,
  labRecords,
  leftovers,
  NOTHING_LEFT,
  netnsRecords,
  processState,
  recordedProcesses,
  untilGone,
  untilInRun,
} from './helpers.js';

/**
 * kill -9 of `fieldlab run --backend netns` at three moments (while the network is being built, while
 * the client runs, while the lab is being torn down), then `fieldlab clean`: nothing of the lab may be
 * left (namespaces, links, nft tables, wireguard-go, sshd, the client, state entries). The lab
 * (fixtures/netns-lab.yaml) has a router with an nft table, two WireGuard peers and a real sshd the
 * client logs in to through the tunnel.
 */
const LAB = join(import.meta.dirname, 'fixtures', 'netns-lab.yaml');
const isWireguard = (p: { what: string }): boolean => p.what.startsWith('wireguard-go');
/** The lab's namespaces: its four hosts, the switch, and the lab's own resolver (it declares no DNS). */
const NAMESPACES = 6;
const isWorker = (p: { what: string }): boolean => p.what.includes('serve-lab');

/**
 * The processes named `comm` inside a lab's namespaces: sshd runs in its simulator's worker process (in
 * the device's namespace), which records nothing of its own children in the host's records.
 */
function pidsInNamespaces(labId: string, comm: string): number[] {
  const pids: number[] = [];
  for (const ns of namespacesOf(labId)) {
    const out = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
    for (const pid of out.split('\n').filter(Boolean).map(Number)) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm) pids.push(pid);
      } catch {
        // gone meanwhile
      }
    }
  }
  return pids;
}

describe.skipIf(missing('netns', 'cmd:wireguard-go', 'cmd:wg', 'cmd:sshd', 'cmd:ssh'))(
  'kill -9 of a netns run, then `fieldlab clean`',
  { timeout: 240_000 },
  () => {
    let tmp: string;
    let state: string;
    let marks: string;
    let before: Baseline;
    let child: ResultPromise | undefined;
    let stderr = '';

    beforeAll(() => assertBuilt());
    beforeEach(() => {
      tmp = mkdtempSync(join(tmpdir(), 'fl-crash-netns-'));
      state = join(tmp, 'state');
      marks = join(tmp, 'marks');
      mkdirSync(marks);
      before = baseline();
    });
    afterEach(async () => {
      await cleanUpRun({ state, tmp, pid: child?.pid, exited: child });
      child = undefined;
    });

    function startRun(env: Record<string, string> = {}): ResultPromise {
      stderr = '';
      const c = cliBackground(
        [
          'run',
          LAB,
          '-b',
          'netns',
          '--only',
          'crash-netns/fixed-hold',
          '--out',
          join(tmp, 'out'),
          '-r',
          'json',
        ],
        { FIELDLAB_STATE_DIR: state, CRASH_MARK_DIR: marks, FORCE_COLOR: '0', ...env },
      );
      c.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
      child = c;
      return c;
    }

    /** Waits (bounded) for `check`, failing at once if the run ends first (its stderr says why). */
    const reached = <T>(c: ResultPromise, check: () => T | undefined | false, what: string): Promise<T> =>
      untilInRun(c, () => stderr, check, what);

    /** The run's one netns record, once it exists. */
    function theRecord(): NetnsRecord | undefined {
      return netnsRecords(state)[0];
    }

    function marked(name: string): boolean {
      return existsSync(join(marks, name));
    }

    async function kill9(c: ResultPromise): Promise<void> {
      process.kill(c.pid as number, 'SIGKILL');
      const r = await c;
      expect(r.signal).toBe('SIGKILL');
    }

    it('while the network is being built: namespaces, links, nft and the first wireguard-go exist', async () => {
      const c = startRun();
      // The record is rewritten as each resource appears: the first wireguard-go is one host into the
      // WireGuard part of the set-up (the router's nft table and every namespace and link come before it).
      const seen = await reached(
        c,
        () => {
          const r = theRecord();
          return r?.processes.some(isWireguard) ? r : undefined;
        },
        'the set-up to start the first wireguard-go',
      );
      await kill9(c);
      // Set-up was under way: the simulators (sshd) start once the network is built, and none had.
      const sims = labRecords(state).flatMap((r) => r.resources);
      expect(sims.filter((p) => p.what.startsWith('sshd'))).toEqual([]);
      expect(marked('running')).toBe(false);
      expect(namespacesOf(seen.labId)).toHaveLength(NAMESPACES);
      const pids = recordedProcesses(state).map((p) => p.pid);
      expect(pids.length).toBeGreaterThan(0);

      const r = await cli(['clean'], { env: { FIELDLAB_STATE_DIR: state } });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`removed network namespaces of lab ${seen.labId}`);
      expect(r.stdout).not.toContain('nothing to clean');
      expect(leftovers({ stateDir: state, before, netnsIds: [seen.labId], pids })).toEqual(NOTHING_LEFT);
    });

    it('while the client runs: sshd and wireguard-go die with the owner, clean removes the rest', async () => {
      const c = startRun();
      await reached(c, () => marked('running'), 'the client to log in through the tunnel');
      const labId = theRecord()?.labId as string;
      const processes = recordedProcesses(state);
      const workers = processes.filter(isWorker).map((p) => p.pid);
      const sshd = pidsInNamespaces(labId, 'sshd');
      const wireguard = processes.filter(isWireguard).map((p) => p.pid);
      expect(workers.length).toBeGreaterThan(0);
      expect(sshd.length).toBeGreaterThan(0);
      expect(wireguard).toHaveLength(2);
      const client = Number(readFileSync(join(marks, 'running'), 'utf8'));
      await kill9(c);

      // Before any clean: the simulators' workers, the servers they started and the client ended with
      // the owner (parent-death signals, down the chain; the client's survives `ip netns exec`)...
      await untilGone([...workers, ...sshd, ...wireguard, client], 15_000);
      // ...while the namespaces and the records wait for clean.
      expect(namespacesOf(labId)).toHaveLength(NAMESPACES);
      expect(labRecords(state)).toHaveLength(1);

      const r = await cli(['clean'], { env: { FIELDLAB_STATE_DIR: state } });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/removed lab crash-netns-/);
      expect(r.stdout).toContain(`removed network namespaces of lab ${labId}`);
      const pids = processes.map((p) => p.pid);
      expect(leftovers({ stateDir: state, before, netnsIds: [labId], pids })).toEqual(NOTHING_LEFT);
    });

    it('while the lab is being torn down (SIGTERM, then SIGKILL half-way)', async () => {
      // The client freezes its owner when the teardown signals it (see fixtures/hold-client.mjs).
      const c = startRun({ CRASH_STOP_OWNER: '1' });
      await reached(c, () => marked('running'), 'the client to log in through the tunnel');
      const labId = theRecord()?.labId as string;
      const processes = recordedProcesses(state);
      const sshd = pidsInNamespaces(labId, 'sshd');
      expect(sshd.length).toBeGreaterThan(0);
      process.kill(c.pid as number, 'SIGTERM');
      await reached(c, () => marked('teardown'), 'the teardown to signal the client');
      // Frozen half-way: the teardown has signalled the lab's processes, its namespaces are still there.
      expect(processState(c.pid as number)).toBe('T');
      expect(namespacesOf(labId)).toHaveLength(NAMESPACES);
      await kill9(c);
      await untilGone(sshd, 15_000);

      const r = await cli(['clean'], { env: { FIELDLAB_STATE_DIR: state } });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`removed network namespaces of lab ${labId}`);
      const pids = processes.map((p) => p.pid);
      expect(leftovers({ stateDir: state, before, netnsIds: [labId], pids })).toEqual(NOTHING_LEFT);
    });
  },
);
