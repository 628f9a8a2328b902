import { readFileSync } from 'node:fs';

/**
 * fieldlab's version, from its package.json (found from the source tree or from dist/). Here, below every
 * folder of harness/, so the CLI and the runner (which stamps it in reports) both import it.
 */
export function toolVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'fieldlab') return pkg.version ?? '0.0.0';
    } catch {
      // not at this level
    }
  }
  return '0.0.0';
}
