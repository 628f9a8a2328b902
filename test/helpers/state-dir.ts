import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';

/** Labs of this test file record themselves in a fresh state directory, removed afterwards. */
export function useTempStateDir(prefix: string): () => string {
  let dir = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
    process.env.FIELDLAB_STATE_DIR = dir;
  });
  afterAll(() => {
    delete process.env.FIELDLAB_STATE_DIR;
    rmSync(dir, { recursive: true, force: true });
  });
  return () => dir;
}
