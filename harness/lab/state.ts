import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { FieldlabError } from '../../simulators/common/errors.js';
import { processStartTicks, stateDir } from '../process-state.js';

export { isAlive, processStartTicks, stateDir } from '../process-state.js';

/**
 * The on-disk record of what each running lab created, so that `fieldlab clean` can remove it after a
 * crash (SIGKILL, power loss...). One directory per lab under the state dir; the lab's own temp files
 * (PKI, hosts file) live inside it, so removing the directory removes them.
 *
 *   <state>/labs/<labId>/lab.json   owner pid + start time, address block, resources
 *   <state>/blocks/127.A.B          claim on a loopback /24 (a directory, created atomically)
 */

export interface ProcessResource {
  kind: 'process';
  pid: number;
  /** /proc start time (clock ticks since boot): guards against a reused PID. */
  startTicks: number | undefined;
  what: string;
}
/** Resources other backends add (namespaces, nft tables, containers) extend this union. */
export type LabResource = ProcessResource;

export interface LabRecord {
  labId: string;
  name: string;
  pid: number;
  pidStartTicks: number | undefined;
  createdAt: string;
  backend: string;
  block?: string;
  /** The lab's trust bundle (its root CA), for `fieldlab ca`. */
  caBundle?: string;
  resources: LabResource[];
}

/** A new lab's record, owned by this process. */
export function newLabRecord(
  labId: string,
  name: string,
  backend: LabRecord['backend'],
  block = '',
): LabRecord {
  return {
    labId,
    name,
    pid: process.pid,
    pidStartTicks: processStartTicks(process.pid),
    createdAt: new Date().toISOString(),
    backend,
    block,
    resources: [],
  };
}

export function labsDir(): string {
  return join(stateDir(), 'labs');
}

export function blocksDir(): string {
  return join(stateDir(), 'blocks');
}

/**
 * Makes `dir` (and missing parents, mode 0700) a directory of this user's that no one else can change:
 * owned by us, not a symlink, not writable by group or others; `private` also closes it to them (0700).
 * The default state directory sits in the shared /tmp, where another local user could have made it
 * first (to read a lab's CA keys, or swap a file a container reads): such a directory is refused.
 */
export function ensureOwnDir(dir: string, opts: { private?: boolean } = {}): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = process.geteuid?.();
  const problem = !st.isDirectory()
    ? 'is not a directory'
    : uid !== undefined && st.uid !== uid
      ? `is owned by uid ${st.uid}, not by this user (${uid})`
      : !opts.private && (st.mode & 0o022) !== 0
        ? `is writable by other users (mode ${(st.mode & 0o7777).toString(8)})`
        : undefined;
  if (problem) {
    throw new FieldlabError('E_STATE_DIR_UNSAFE', `fieldlab's state directory ${dir} ${problem}`, {
      hint: 'remove it, or point FIELDLAB_STATE_DIR at a directory of your own',
    });
  }
  if (opts.private && (st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

/**
 * Creates a new lab's directory, 0700, in a state directory no other user can change (see
 * `ensureOwnDir`). Fails if it exists: a lab id is random, an existing directory was not made by us.
 */
export function newLabDir(labId: string): string {
  ensureOwnDir(stateDir());
  ensureOwnDir(labsDir(), { private: true });
  const dir = join(labsDir(), labId);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

export function writeRecord(dir: string, record: LabRecord): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `lab.json.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`);
  // rename is atomic: a reader sees the old or the new record, never half of one.
  renameSync(tmp, join(dir, 'lab.json'));
}

export function readRecords(): Array<{ dir: string; record: LabRecord | undefined }> {
  let names: string[] = [];
  try {
    names = readdirSync(labsDir());
  } catch {
    return [];
  }
  return names.map((n) => {
    const dir = join(labsDir(), n);
    try {
      return { dir, record: JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8')) as LabRecord };
    } catch {
      return { dir, record: undefined };
    }
  });
}
