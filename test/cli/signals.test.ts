import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResultPromise } from 'execa';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type Baseline,
  baseline,
  cleanUpRun,
  labRecords,
  leftovers,
  NOTHING_LEFT,
  netnsRecords,
  recordedProcesses,
  untilGone,
  untilInRun,
} from '../crash/helpers.js';
import { missing } from '../helpers/capability.js';
import { assertBuilt, cliBackground } from '../helpers/cli.js';
import { within } from '../helpers/within.js';

/**
 * SIGINT/SIGTERM to `fieldlab run` stop the run: the client ends, every lab is stopped and removed (its
 * directory with the CA keys, its address claim, its processes; on netns its namespaces), no report is
 * written, and the exit code is 128 + the signal's number. Nothing is left *without* `fieldlab clean`.
 * A SIGKILLed run cannot clean up, but its command client dies with it (parent-death signal).
 */
const FIXTURES = join(import.meta.dirname, '..', 'crash', 'fixtures');

let tmp: string;
let state: string;
let marks: string;
let out: string;
let before: Baseline;
let child: ResultPromise | undefined;
let stderr = '';

beforeAll(() => assertBuilt());
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fl-signals-'));
  state = join(tmp, 'state');
  marks = join(tmp, 'marks');
  out = join(tmp, 'out');
  mkdirSync(marks);
  before = baseline();
});
afterEach(async () => {
  await cleanUpRun({ state, tmp, pid: child?.pid, exited: child });
  child = undefined;
});

function startRun(file: string, only: string, args: string[], env: Record<string, string> = {}) {
  stderr = '';
  const c = cliBackground(['run', join(FIXTURES, file), '--only', only, '--out', out, ...args], {
    FIELDLAB_STATE_DIR: state,
    HOLD_MARKS: marks,
    CRASH_MARK_DIR: marks,
    FORCE_COLOR: '0',
    ...env,
  });
  c.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child = c;
  return c;
}

/** Waits (bounded) for the client's marker file, failing at once if the run ends first. */
function running(c: ResultPromise, name = 'running'): Promise<number> {
  return untilInRun(
    c,
    () => stderr,
    () => {
      const f = join(marks, name);
      return existsSync(f) && readFileSync(f, 'utf8').endsWith('\n')
        ? Number(readFileSync(f, 'utf8'))
        : undefined;
    },
    `the client's ${name} marker`,
  );
}

/** The run's end, bounded: a stopped run must exit on its own. */
async function ended(c: ResultPromise) {
  const r = await within(c, 60_000, 'the run to exit after the signal');
  return { code: r.exitCode, signal: r.signal ?? undefined };
}

describe.skipIf(missing('userns') || process.platform !== 'linux')(
  'a signal to `fieldlab run` (loopback)',
  { timeout: 120_000 },
  () => {
    const run = (env: Record<string, string> = {}) =>
      startRun('hold-lab.yaml', 'hold-lab/fixed-hold', ['-r', 'json', '-r', 'junit'], env);

    for (const [sig, code] of [
      ['SIGTERM', 143],
      ['SIGINT', 130],
    ] as const) {
      it(`${sig}: the client ends, the lab is removed, no report, exit ${code}`, async () => {
        const c = run();
        const client = await running(c);
        const pids = recordedProcesses(state).map((p) => p.pid);
        expect(pids).toContain(client);
        const dir = labRecords(state)[0];
        expect(dir?.block).toBeTruthy();

        process.kill(c.pid as number, sig);
        const end = await ended(c);
        // No `fieldlab clean`: the run removed everything itself.
        expect(leftovers({ stateDir: state, before, pids })).toEqual(NOTHING_LEFT);
        expect(end).toEqual({ code, signal: undefined });
        expect(stderr).toContain(`fieldlab: ${sig}: stopping the run`);
        // No report: a partial run's JUnit or JSON would read as a complete one.
        expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
      });
    }

    it('a second signal during the stop removes this run’s labs at once and exits', async () => {
      // The client ignores SIGTERM: the stop waits for its SIGKILL, and the second signal comes first.
      const c = run({ HOLD_IGNORE_TERM: '1' });
      const client = await running(c);
      const pids = recordedProcesses(state).map((p) => p.pid);
      process.kill(c.pid as number, 'SIGTERM');
      await running(c, 'term');
      process.kill(c.pid as number, 'SIGINT');
      const end = await ended(c);
      await untilGone([client], 15_000);
      expect(leftovers({ stateDir: state, before, pids })).toEqual(NOTHING_LEFT);
      // The exit code is the first signal's.
      expect(end).toEqual({ code: 143, signal: undefined });
      expect(stderr).toContain('fieldlab: SIGINT again: removing this run');
    });

    it('SIGKILL: the command client dies with its owner, before any clean', async () => {
      const c = run();
      const client = await running(c);
      process.kill(c.pid as number, 'SIGKILL');
      expect((await c).signal).toBe('SIGKILL');
      // No handler ran and no clean yet: the client (in its `unshare` namespace) went with its owner.
      await untilGone([client], 15_000);
      expect(labRecords(state)).toHaveLength(1);
    });
  },
);

describe.skipIf(missing('netns', 'cmd:wireguard-go', 'cmd:wg', 'cmd:sshd', 'cmd:ssh'))(
  'SIGTERM to `fieldlab run -b netns`',
  { timeout: 240_000 },
  () => {
    it('the client ends, the lab and its namespaces are removed, exit 143', async () => {
      const c = startRun('netns-lab.yaml', 'crash-netns/fixed-hold', ['-b', 'netns', '-r', 'json']);
      const client = await running(c);
      const labId = netnsRecords(state)[0]?.labId as string;
      expect(labId).toBeTruthy();
      const pids = recordedProcesses(state).map((p) => p.pid);
      expect(pids).toContain(client);

      process.kill(c.pid as number, 'SIGTERM');
      const end = await ended(c);
      expect(leftovers({ stateDir: state, before, netnsIds: [labId], pids })).toEqual(NOTHING_LEFT);
      expect(end).toEqual({ code: 143, signal: undefined });
    });
  },
);
