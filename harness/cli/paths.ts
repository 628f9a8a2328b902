import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Default scenario paths: ./scenarios when the working directory has one, else the catalogue shipped with fieldlab. */
export function defaultScenarioPaths(paths: string[]): string[] {
  if (paths.length > 0) return paths;
  if (existsSync('scenarios')) return ['scenarios'];
  for (const rel of ['../../scenarios', '../../../scenarios']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return [p];
  }
  return ['scenarios'];
}
