import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { claimBlock } from '../../harness/lab/addresses.js';
import { clean } from '../../harness/lab/clean.js';

let state: string;
beforeEach(() => {
  state = mkdtempSync(join(tmpdir(), 'fl-state-'));
  process.env.FIELDLAB_STATE_DIR = state;
});
afterEach(() => {
  delete process.env.FIELDLAB_STATE_DIR;
  rmSync(state, { recursive: true, force: true });
});

describe('loopback address blocks', () => {
  it('gives each lab its own /24 and hosts distinct addresses in it', () => {
    const blocks = Array.from({ length: 20 }, () => claimBlock());
    expect(new Set(blocks.map((b) => b.prefix)).size).toBe(20);
    const b = blocks[0]!;
    expect(b.prefix).toMatch(/^127\.\d+\.\d+$/);
    expect(b.address(1)).toBe(`${b.prefix}.1`);
    expect(() => b.address(0)).toThrow(RangeError);
    for (const x of blocks) x.release();
  });

  it('takes over a claim whose owner died, and `clean` releases it', () => {
    const b = claimBlock();
    // Forge the claim as made by a process that has exited (a crash): its PID no longer runs.
    const dead = spawnSync('true');
    expect(dead.pid).toBeGreaterThan(0);
    writeFileSync(join(state, 'blocks', b.prefix, 'owner.json'), JSON.stringify({ pid: dead.pid }));
    const report = clean();
    expect(report.blocks).toContain(b.prefix);
    expect(existsSync(join(state, 'blocks', b.prefix))).toBe(false);
  });

  it('leaves a live claim alone', () => {
    const b = claimBlock();
    const report = clean();
    expect(report.blocks).not.toContain(b.prefix);
    expect(existsSync(join(state, 'blocks', b.prefix))).toBe(true);
    b.release();
  });
});
