import { randomBytes } from 'node:crypto';
import { chmodSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { type CommandResult, runCommand } from './command.js';

/** How the client of a container lab sees the lab's files: the host's lab directory is mounted here. */
export interface ContainerPaths {
  /** The lab directory inside containers (`/lab`). */
  dir: string;
  /** fieldlab's own directory inside the image (`/app`). */
  root: string;
  /** The lab's Docker network (set once created), the image, and labels for what the lab starts. */
  network?: string;
  image: string;
  labels: Record<string, string>;
  /** `docker run --user` for the lab's containers (the lab directory's owner); absent: the image's user. */
  user?: string;
}

/**
 * A command client on the container backend: `docker run` of the fieldlab image on the lab's network,
 * with the lab directory mounted where the lab's paths point (`/lab`), the program as entry point. The
 * exit code, output and timing are the program's; a container a timeout left behind is removed.
 */
export async function runInContainer(spec: {
  lab: ContainerPaths & { hostDir: string };
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
  stdin?: string;
  timeoutMs: number;
  onSpawn?: (pid: number) => void;
  /**
   * The lab's resolv.conf for the program (a file on this side): mounted over /etc/resolv.conf, which
   * Docker then leaves alone, so lookups go to the lab's DNS and not Docker's own (127.0.0.11).
   */
  resolvConf?: string;
}): Promise<CommandResult> {
  shareDirectories(spec.lab.hostDir);
  const [program, ...args] = spec.argv;
  const name = `fl-client-${randomBytes(4).toString('hex')}`;
  const docker = ['docker', 'run', '--rm', '--name', name, '--network', spec.lab.network ?? 'none'];
  // The image's HEALTHCHECK looks for a simulator's ready file, which a client has none of: it would only
  // fail every 2 s, each time starting a node.
  docker.push('--no-healthcheck');
  for (const [k, v] of Object.entries(spec.lab.labels)) docker.push('--label', `${k}=${v}`);
  docker.push('-v', `${spec.lab.hostDir}:${spec.lab.dir}`);
  if (spec.resolvConf) docker.push('-v', `${spec.resolvConf}:/etc/resolv.conf:ro`);
  // The lab directory's owner (0700): the image's user, or the invoking user's uid:gid (see labOwner).
  if (spec.lab.user) docker.push('--user', spec.lab.user);
  for (const [k, v] of Object.entries(spec.env)) docker.push('-e', `${k}=${v}`);
  if (spec.cwd) docker.push('-w', spec.cwd);
  if (spec.stdin !== undefined) docker.push('-i');
  docker.push('--entrypoint', program ?? 'true', spec.lab.image, ...args);
  const r = await runCommand({
    argv: docker,
    timeoutMs: spec.timeoutMs,
    ...(spec.stdin !== undefined ? { stdin: spec.stdin } : {}),
    ...(spec.onSpawn ? { onSpawn: spec.onSpawn } : {}),
  });
  // `--rm` removes a container that exited; after a timeout or a kill the docker CLI is gone but the
  // container may not be.
  if (r.timedOut || r.signal !== null || r.spawnError !== undefined) {
    await execa('docker', ['rm', '-f', name], { reject: false, timeout: 15_000 });
  }
  return { ...r, argv: spec.argv };
}

/**
 * Lets the image's user into every directory of the lab (the PKI's are 0700): the client reads the
 * trust bundle and files simulators wrote. Files keep their modes, so private keys stay private.
 */
function shareDirectories(dir: string): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    try {
      chmodSync(join(dir, e.name), 0o755);
    } catch {
      // a simulator's own directory, owned by the image user: already readable to it
    }
    shareDirectories(join(dir, e.name));
  }
}
