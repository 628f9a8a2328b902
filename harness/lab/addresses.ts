import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FieldlabError } from '../../simulators/common/errors.js';
import { blocksDir, isAlive, processStartTicks } from './state.js';

/**
 * Loopback address blocks. Each lab claims one 127.A.B.0/24 (A in 20..250) so that labs running in
 * parallel (other processes, other test files) never collide; hosts get .1, .2, ... in that block.
 * A claim is a directory (mkdir is atomic) holding the owner's PID; a claim whose owner is gone is taken
 * over. Linux routes all of 127.0.0.0/8 to `lo`; macOS needs `lo0` aliases (see README).
 */
const FIRST_A = 20;
const LAST_A = 250;

export interface AddressBlock {
  /** `127.A.B` */
  prefix: string;
  /** The address of host number n (1-based, up to 250). */
  address(n: number): string;
  release(): void;
}

function claimDir(prefix: string): string {
  return join(blocksDir(), prefix);
}

function tryClaim(prefix: string): boolean {
  const dir = claimDir(prefix);
  try {
    mkdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Taken: reclaim only when the owner is dead.
    let owner: { pid: number; startTicks?: number } | undefined;
    try {
      owner = JSON.parse(readFileSync(join(dir, 'owner.json'), 'utf8'));
    } catch {
      return false; // being written right now, or broken: leave it to `fieldlab clean`
    }
    if (owner && isAlive(owner.pid, owner.startTicks)) return false;
    rmSync(dir, { recursive: true, force: true });
    try {
      mkdirSync(dir);
    } catch {
      return false; // someone else reclaimed it first
    }
  }
  writeFileSync(
    join(dir, 'owner.json'),
    JSON.stringify({ pid: process.pid, startTicks: processStartTicks(process.pid) }),
  );
  return true;
}

/** A block that gives every host the same address and claims nothing (containers: each has its own). */
export function fixedBlock(address: string): AddressBlock {
  return { prefix: address, address: () => address, release: () => {} };
}

/** Claims a free /24 in 127.0.0.0/8 for a lab. */
export function claimBlock(): AddressBlock {
  mkdirSync(blocksDir(), { recursive: true, mode: 0o700 });
  const span = (LAST_A - FIRST_A + 1) * 256;
  // Start at a PID-derived offset so parallel processes rarely contend for the same block.
  const start = (process.pid * 7919) % span;
  for (let i = 0; i < span; i++) {
    const idx = (start + i) % span;
    const prefix = `127.${FIRST_A + Math.floor(idx / 256)}.${idx % 256}`;
    if (tryClaim(prefix)) {
      return {
        prefix,
        address(n: number) {
          if (!Number.isInteger(n) || n < 1 || n > 250)
            throw new RangeError(`host number ${n} out of 1..250`);
          return `${prefix}.${n}`;
        },
        release() {
          rmSync(claimDir(prefix), { recursive: true, force: true });
        },
      };
    }
  }
  throw new FieldlabError('E_NO_ADDRESS_BLOCK', 'no free loopback address block for the lab', {
    hint: 'too many labs are running, or stale claims are left: run `fieldlab clean`',
  });
}

/** Releases a claim by prefix (used by `fieldlab clean`). */
export function releaseBlock(prefix: string): void {
  rmSync(claimDir(prefix), { recursive: true, force: true });
}
