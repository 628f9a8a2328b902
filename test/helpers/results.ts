import { expect } from 'vitest';
import type { VariantResult } from '../../harness/runner/result.js';

/**
 * Every variant passed; a failure names the variant and what the report said. Variants skipped for a
 * backend they do not run on are allowed when `allowSkipped` (they print why).
 */
export function expectAllPassed(
  results: readonly VariantResult[],
  opts: { allowSkipped?: boolean } = {},
): void {
  for (const r of results) {
    if (r.status === 'skipped' && opts.allowSkipped) {
      console.warn(`[skip] ${r.scenario}/${r.variant}: ${r.skipReason}`);
      continue;
    }
    const said = [...r.explanation, r.error?.message ?? '', r.error?.hint ?? ''].filter(Boolean);
    expect(r.status, `${r.scenario}/${r.variant}: ${said.join(' | ')}`).toBe('passed');
  }
}
