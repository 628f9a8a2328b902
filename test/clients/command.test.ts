import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OUTPUT_CAP_BYTES, runCommand, wrappedArgv } from '../../harness/clients/command.js';
import { missing } from '../helpers/capability.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('runCommand', () => {
  it('returns the exit code and output of a failing command without rejecting', async () => {
    const r = await runCommand({ argv: ['sh', '-c', 'echo out; echo err >&2; exit 3'], timeoutMs: 5000 });
    expect(r.exitCode).toBe(3);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toBe('err\n');
    expect(r.timedOut).toBe(false);
    expect(r.spawnError).toBeUndefined();
    expect(r.argv).toEqual(['sh', '-c', 'echo out; echo err >&2; exit 3']);
  });

  it('kills a command that overruns its timeout, within the bound', async () => {
    let pid: number | undefined;
    const r = await runCommand({ argv: ['sleep', '30'], timeoutMs: 300, onSpawn: (p) => (pid = p) });
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).toBeNull();
    expect(r.signal).toBe('SIGTERM');
    expect(r.durationMs).toBeLessThan(3000);
    expect(pid).toBeGreaterThan(0);
    expect(() => process.kill(pid!, 0)).toThrow();
  });

  it('stops on an abort signal', async () => {
    const ac = new AbortController();
    const p = runCommand({
      argv: ['sleep', '30'],
      timeoutMs: 10_000,
      signal: ac.signal,
      onSpawn: () => ac.abort(),
    });
    const r = await p;
    expect(r.exitCode).toBeNull();
    expect(r.durationMs).toBeLessThan(3000);
  });

  it('merges env over process.env, or replaces it when told', async () => {
    const merged = await runCommand({
      argv: ['sh', '-c', 'echo "$FIELDLAB_X:$HOME"'],
      env: { FIELDLAB_X: 'yes' },
      timeoutMs: 5000,
    });
    expect(merged.stdout.trim()).toBe(`yes:${process.env.HOME ?? ''}`);
    const bare = await runCommand({
      argv: ['sh', '-c', 'echo "$FIELDLAB_X:${HOME-unset}"'],
      env: { FIELDLAB_X: 'only' },
      inheritEnv: false,
      timeoutMs: 5000,
    });
    expect(bare.stdout.trim()).toBe('only:unset');
  });

  it('passes stdin and cwd', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fieldlab-cmd-'));
    dirs.push(dir);
    const r = await runCommand({
      argv: ['sh', '-c', 'cat; pwd'],
      stdin: 'hello\n',
      cwd: dir,
      timeoutMs: 5000,
    });
    expect(r.stdout).toBe(`hello\n${dir}\n`);
  });

  it('says plainly when the executable is missing', async () => {
    const r = await runCommand({ argv: ['fieldlab-no-such-tool', '--x'], timeoutMs: 5000 });
    expect(r.exitCode).toBeNull();
    expect(r.spawnError).toBe(
      'fieldlab-no-such-tool is not installed: run scripts/setup.sh (or install it with your package manager)',
    );
  });

  it('runs a relative executable from cwd and explains a missing working directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fieldlab-cmd-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'tool.sh'), '#!/bin/sh\necho tool ran\n', { mode: 0o755 });
    const r = await runCommand({ argv: ['./tool.sh'], cwd: dir, timeoutMs: 5000 });
    expect(r.stdout).toBe('tool ran\n');
    const gone = await runCommand({ argv: ['true'], cwd: join(dir, 'nope'), timeoutMs: 5000 });
    expect(gone.spawnError).toBe(`cannot start true: working directory ${join(dir, 'nope')} does not exist`);
  });

  it('keeps only the last 64 KiB of each stream', async () => {
    const r = await runCommand({
      argv: ['sh', '-c', `head -c ${OUTPUT_CAP_BYTES * 3} /dev/zero | tr '\\0' a; echo END`],
      timeoutMs: 5000,
    });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.length).toBe(OUTPUT_CAP_BYTES);
    expect(r.stdout.endsWith('aEND\n')).toBe(true);
  });

  it('wraps a namespaced command so that $0/$1 are the files and the rest is argv', () => {
    const argv = wrappedArgv({ argv: ['getent', 'hosts', 'x'], namespace: { hostsFile: '/h' } });
    expect(argv.slice(0, 5)).toEqual(['unshare', '--user', '--map-root-user', '--mount', 'sh']);
    expect(argv.slice(-5)).toEqual(['/h', '', 'getent', 'hosts', 'x']);
  });
});

describe.skipIf(missing('userns', 'cmd:getent'))('runCommand in a lab namespace', () => {
  it('resolves lab names from the bind-mounted hosts file and resolv.conf', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fieldlab-ns-'));
    dirs.push(dir);
    const hosts = join(dir, 'hosts');
    const resolv = join(dir, 'resolv.conf');
    writeFileSync(hosts, '127.0.0.1 localhost\n127.77.0.9 lab.example\n');
    writeFileSync(resolv, 'nameserver 127.77.0.53\n');
    const r = await runCommand({
      argv: ['sh', '-c', 'getent hosts lab.example; cat /etc/resolv.conf'],
      namespace: { hostsFile: hosts, resolvConf: resolv },
      timeoutMs: 10_000,
    });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^127\.77\.0\.9\s+lab\.example\n/);
    expect(r.stdout).toContain('nameserver 127.77.0.53');
    // Without resolvConf only /etc/hosts changes; an argument with spaces survives the wrapper.
    const r2 = await runCommand({
      argv: ['sh', '-c', 'getent hosts "$1" && echo "$2"', 'sh', 'lab.example', 'two words'],
      namespace: { hostsFile: hosts },
      timeoutMs: 10_000,
    });
    expect(r2.exitCode).toBe(0);
    expect(r2.stdout).toMatch(/127\.77\.0\.9\s+lab\.example\ntwo words\n/);
  });

  it('gives onSpawn the PID of the command itself (unshare and sh exec, no fork)', async () => {
    let pid: number | undefined;
    const r = await runCommand({
      argv: ['sh', '-c', 'echo $$'],
      namespace: { hostsFile: '/etc/hosts' },
      onSpawn: (p) => (pid = p),
      timeoutMs: 10_000,
    });
    expect(r.exitCode).toBe(0);
    // $$ inside is the PID in our PID namespace (only user+mount namespaces are new).
    expect(Number(r.stdout.trim())).toBe(pid);
  });

  it('reports a missing executable before entering the namespace', async () => {
    const r = await runCommand({
      argv: ['fieldlab-no-such-tool'],
      namespace: { hostsFile: '/etc/hosts' },
      timeoutMs: 5000,
    });
    expect(r.spawnError).toMatch(/^fieldlab-no-such-tool is not installed/);
  });
});
