import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { which } from '../../harness/capabilities.js';
import { cleanNetns, leftoverEtcNetns } from '../../harness/topology/netns/clean.js';
import { runSync } from '../../harness/topology/netns/exec.js';
import { recordPath } from '../../harness/topology/netns/state.js';
import { isRunning } from '../../harness/topology/netns/teardown.js';
import { untilGone } from '../crash/helpers.js';
import { missing } from '../helpers/capability.js';
import { assertBuilt, cli } from '../helpers/cli.js';
import { namespacesOf, rootLinks, strayLinks, wireguardGoPids } from './helpers.js';

const labId = `kill${process.pid}`.slice(0, 10);
const termId = `term${process.pid}`.slice(0, 10);
const withWg = which('wireguard-go') !== undefined && which('wg') !== undefined;
const wgIf = `flkill${process.pid}`.slice(0, 15);

function topology(id: string) {
  return {
    labId: id,
    segments: [{ name: 'lan', cidr: '198.51.100.0/24' }],
    hosts: [
      {
        name: 'a',
        segments: [{ segment: 'lan', address: '198.51.100.10' }],
        ...(withWg ? { wireguard: { ifname: `${wgIf}${id[0]}`.slice(-15), address: '100.127.0.2/32' } } : {}),
      },
      {
        name: 'b',
        segments: [{ segment: 'lan', address: '198.51.100.20' }],
        firewall: [{ action: 'drop' as const, proto: 'tcp' as const, port: 1 }],
      },
    ],
  };
}

/** Starts a child process that builds a lab and waits; resolves once the lab is up. */
async function startChild(dir: string, state: string, id: string): Promise<{ child: ResultPromise }> {
  const child = execa('node', [join(dir, 'child.mjs'), JSON.stringify(topology(id))], {
    reject: false,
    env: { ...process.env, FIELDLAB_STATE_DIR: state },
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('child lab not ready in 20 s')), 20_000);
    child.stdout?.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    child.then((r) => reject(new Error(`child exited early: ${r.stderr}`)));
  });
  // Wrapped: a ResultPromise is thenable, returning it bare would wait for the child's exit.
  return { child };
}

describe.skipIf(missing('netns')).sequential('netns teardown when the owner dies', () => {
  let dir: string;
  let state: string;
  let child: ResultPromise | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fl-netns-kill-'));
    state = join(dir, 'state');
    process.env.FIELDLAB_STATE_DIR = state;
    // The child runs plain JS: bundle the backend (TypeScript) with rolldown, which ships with vite.
    const bundle = join(dir, 'netns.mjs');
    await execa(
      join('node_modules', '.bin', 'rolldown'),
      ['harness/topology/netns/index.ts', '--format', 'esm', '--platform', 'node', '--file', bundle],
      { timeout: 60_000 },
    );
    writeFileSync(
      join(dir, 'child.mjs'),
      [
        `import { applyNetns } from ${JSON.stringify(bundle)};`,
        'await applyNetns(JSON.parse(process.argv[2]));',
        "process.stdout.write('ready\\n');",
        'setInterval(() => {}, 1000);',
      ].join('\n'),
    );
  }, 90_000);

  afterAll(() => {
    if (child?.pid) child.kill('SIGKILL');
    cleanNetns(labId, { force: true });
    cleanNetns(termId, { force: true });
    delete process.env.FIELDLAB_STATE_DIR;
    rmSync(dir, { recursive: true, force: true });
  });

  it('a lab whose owner was SIGKILLed is left behind, and cleanNetns removes all of it', async () => {
    const linksBefore = rootLinks();
    child = (await startChild(dir, state, labId)).child;
    const record = JSON.parse(readFileSync(recordPath(labId), 'utf8')) as {
      pid: number;
      namespaces: string[];
      processes: Array<{ pid: number; what: string }>;
    };
    expect(record.pid).toBe(child.pid);
    expect(record.namespaces).toHaveLength(3);
    const wgPids = record.processes.filter((p) => p.what.startsWith('wireguard-go')).map((p) => p.pid);
    if (withWg) expect(wgPids).toHaveLength(1);

    // While the owner lives, a plain clean leaves the lab alone.
    expect(cleanNetns().skippedLive).toContain(labId);
    expect(namespacesOf(labId)).toHaveLength(3);

    child.kill('SIGKILL');
    await child;
    // SIGKILL ran no handler: the namespaces and files are still there; wireguard-go died with its owner
    // (parent-death signal), leaving its UAPI socket behind.
    expect(namespacesOf(labId)).toHaveLength(3);
    expect(leftoverEtcNetns()).toContain(`fl-${labId}-a`);
    await untilGone(wgPids, 10_000);

    const report = cleanNetns();
    const mine = report.labs.find((l) => l.labId === labId);
    expect(mine?.owner).toBe(child.pid);
    expect(namespacesOf(labId)).toEqual([]);
    expect(leftoverEtcNetns().filter((n) => n.startsWith(`fl-${labId}-`))).toEqual([]);
    expect(wgPids.filter(isRunning)).toEqual([]);
    expect(existsSync(`/var/run/wireguard/${`${wgIf}k`.slice(-15)}.sock`)).toBe(false);
    expect(existsSync(recordPath(labId))).toBe(false);
    expect(existsSync(join(state, 'netns', labId))).toBe(false);
    expect(strayLinks(linksBefore)).toEqual([]);
    expect(cleanNetns(labId).labs).toEqual([]);
  });

  it('removes an orphan namespace that has neither record nor owner file', () => {
    const id = `orph${process.pid}`.slice(0, 10);
    runSync(['ip', 'netns', 'add', `fl-${id}-a`]);
    mkdirSync(`/etc/netns/fl-${id}-a`, { recursive: true });
    writeFileSync(`/etc/netns/fl-${id}-a/hosts`, '127.0.0.1 localhost\n');
    expect(namespacesOf(id)).toEqual([`fl-${id}-a`]);
    const report = cleanNetns(id);
    expect(report.labs.map((l) => l.labId)).toEqual([id]);
    expect(namespacesOf(id)).toEqual([]);
    expect(existsSync(`/etc/netns/fl-${id}-a`)).toBe(false);
  });

  it('`fieldlab clean` says what it removed, and not "nothing to clean", when it removed only namespaces', async () => {
    assertBuilt();
    const id = `prnt${process.pid}`.slice(0, 10);
    runSync(['ip', 'netns', 'add', `fl-${id}-a`]);
    const r = await cli(['clean'], { env: { FIELDLAB_STATE_DIR: state } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`removed network namespaces of lab ${id}: fl-${id}-a`);
    expect(r.stdout).not.toContain('nothing to clean');
    expect(namespacesOf(id)).toEqual([]);
  });

  it('on SIGTERM the owner tears its lab down itself, then dies of the signal', async () => {
    const wgBefore = wireguardGoPids();
    const c = (await startChild(dir, state, termId)).child;
    child = c;
    expect(namespacesOf(termId)).toHaveLength(3);
    c.kill('SIGTERM');
    const r = await c;
    expect(r.signal).toBe('SIGTERM');
    expect(namespacesOf(termId)).toEqual([]);
    expect(leftoverEtcNetns().filter((n) => n.startsWith(`fl-${termId}-`))).toEqual([]);
    expect(existsSync(recordPath(termId))).toBe(false);
    expect(wireguardGoPids().filter((p) => !wgBefore.includes(p))).toEqual([]);
  });
});
