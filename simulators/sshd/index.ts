import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { FieldlabError } from '../common/errors.js';
import { SimulatorEvents } from '../common/events.js';
import type { SimulatorHandle } from '../common/handle.js';
import { listen } from '../common/net.js';
import { parseOptions } from '../common/options.js';
import { dieWithParent } from '../common/parent-death.js';

/**
 * A real OpenSSH server (Debian's sshd) on a lab address, with throwaway host and client keys: the
 * device-side service that secure tunnels carry. Runs `sshd -D -e` as a child process and reports its
 * log as events (listening, accepted, disconnected).
 */
const run = promisify(execFile);

export const sshdOptionsSchema = z
  .object({
    name: z.string().default('sshd'),
    host: z.string().default('127.0.0.1'),
    /** 0 picks a free port. */
    port: z.number().int().min(0).max(65535).default(0),
    /** Extra public keys (OpenSSH format) allowed to log in, besides the generated client key. */
    authorizedKeys: z.array(z.string()).default([]),
    /** Where the throwaway keys and config go (a temp dir below it, removed on stop). */
    dir: z.string().optional(),
    sshd: z.string().default('/usr/sbin/sshd'),
    startTimeoutMs: z.number().int().positive().default(10_000),
  })
  .strict();

export type SshdOptions = z.input<typeof sshdOptionsSchema>;

export interface SshdEvents {
  [key: string]: unknown;
  listening: { host: string; port: number; pid: number };
  accepted: { user: string; from: string; method: string };
  disconnected: { user: string; from: string };
  log: { line: string };
  exited: { code: number | null; signal: string | null };
}

export interface SshdHandle extends SimulatorHandle<SshdEvents, { accepted: number }> {
  /** Private key (OpenSSH format, 0600) a client logs in with. */
  readonly clientKeyPath: string;
  /** The user to log in as: the user sshd runs as. */
  readonly user: string;
  readonly pid: number;
}

/** A free TCP port on host (sshd needs a concrete port; the tiny race is acceptable in a lab). */
async function freePort(host: string): Promise<number> {
  const s = createServer();
  const port = await listen(s, host, 0);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export async function start(options: SshdOptions = {}): Promise<SshdHandle> {
  const opts = parseOptions(sshdOptionsSchema, options, 'sshd');
  if (!existsSync(opts.sshd)) {
    throw new FieldlabError('E_NO_SSHD', `${opts.sshd} is not installed`, {
      hint: 'install openssh-server (scripts/setup.sh does)',
    });
  }
  const dir = await mkdtemp(join(opts.dir ?? tmpdir(), 'fieldlab-sshd-'));
  // As root, sshd chroots into its privilege-separation directory /run/sshd. Where the machine has none
  // (openssh-server installed but never started), sshd runs in a private mount namespace with a tmpfs
  // on /run holding one, so the host's /run is never touched and parallel labs cannot race on it.
  const privateRun = process.getuid?.() === 0 && !existsSync('/run/sshd');
  try {
    await run('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      'fieldlab-host',
      '-f',
      join(dir, 'host_ed25519'),
    ]);
    await run('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      'fieldlab-client',
      '-f',
      join(dir, 'client_ed25519'),
    ]);
    const clientPub = await readFile(join(dir, 'client_ed25519.pub'), 'utf8');
    await writeFile(
      join(dir, 'authorized_keys'),
      `${[clientPub.trim(), ...opts.authorizedKeys].join('\n')}\n`,
      { mode: 0o600 },
    );
    const port = opts.port === 0 ? await freePort(opts.host) : opts.port;
    await writeFile(
      join(dir, 'sshd_config'),
      [
        `Port ${port}`,
        `ListenAddress ${opts.host}`,
        `HostKey ${join(dir, 'host_ed25519')}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'StrictModes no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'PermitRootLogin prohibit-password',
        'LogLevel VERBOSE',
        '',
      ].join('\n'),
    );
    const events = new SimulatorEvents<SshdEvents>(opts.name);
    const sshdArgv = [opts.sshd, '-D', '-e', '-f', join(dir, 'sshd_config')];
    // setpriv, unshare and sh all exec: the child's PID is sshd's own. sshd runs as root and would
    // outlive a SIGKILLed owner until `fieldlab clean`: it gets SIGKILL when its parent dies.
    const argv = dieWithParent(
      privateRun
        ? [
            'unshare',
            '--mount',
            '--propagation',
            'private',
            'sh',
            '-c',
            'mount -t tmpfs -o mode=755 fieldlab-sshd /run && mkdir -m 755 /run/sshd && exec "$@"',
            'sh',
            ...sshdArgv,
          ]
        : sshdArgv,
    );
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    let accepted = 0;
    const ready = new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () =>
          reject(new FieldlabError('E_SSHD_START', `sshd did not listen within ${opts.startTimeoutMs} ms`)),
        opts.startTimeoutMs,
      );
      let buf = '';
      const recent: string[] = [];
      child.stderr?.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          nl = buf.indexOf('\n');
          events.emitEvent('log', { line });
          recent.push(line);
          if (recent.length > 5) recent.shift();
          if (/^Server listening on /.test(line)) {
            clearTimeout(t);
            events.emitEvent('listening', { host: opts.host, port, pid: child.pid ?? 0 });
            resolve();
          }
          const acc = /^Accepted (\S+) for (\S+) from (\S+) port (\d+)/.exec(line);
          if (acc) {
            accepted++;
            events.emitEvent('accepted', { method: acc[1]!, user: acc[2]!, from: `${acc[3]}:${acc[4]}` });
          }
          const disc = /^Disconnected from user (\S+) (\S+) port (\d+)/.exec(line);
          if (disc) events.emitEvent('disconnected', { user: disc[1]!, from: `${disc[2]}:${disc[3]}` });
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(t);
        events.emitEvent('exited', { code, signal });
        reject(
          new FieldlabError(
            'E_SSHD_START',
            `sshd exited (${signal ?? code}) before listening: ${[...recent, buf.trim()].filter(Boolean).join(' | ')}`,
          ),
        );
      });
    });
    await ready;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    let stopped: Promise<void> | undefined;
    return {
      name: opts.name,
      endpoints: [{ name: 'ssh', host: opts.host, port, protocol: 'ssh' }],
      events,
      clientKeyPath: join(dir, 'client_ed25519'),
      user: userInfo().username,
      pid: child.pid ?? 0,
      stats: () => ({ accepted }),
      stop() {
        stopped ??= stopChild(child, exited).then(() => rm(dir, { recursive: true, force: true }));
        return stopped;
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** SIGTERM, then SIGKILL if sshd has not gone within 5 s. Only our own child, by its handle. */
async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(t);
}

/**
 * The `ssh` command line for a non-interactive login with a throwaway key: no host-key prompts or
 * known_hosts writes, no password fallback, errors only.
 */
export function sshClientArgv(
  to: { host: string; port: number; key: string; user: string },
  command: string[],
): string[] {
  return [
    'ssh',
    ...['-p', String(to.port), '-i', to.key],
    ...['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes'],
    ...['-o', 'ConnectTimeout=10', '-o', 'LogLevel=ERROR'],
    `${to.user}@${to.host}`,
    ...command,
  ];
}
